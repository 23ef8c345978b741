//go:build linux

package main

import (
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/gocarp/gocarp/internal/netns"
)

// pinger sends ICMP echo requests at a fixed interval from a raw socket in
// a namespace and records which were answered. Unlike ping(8), it keeps its
// pace while nothing answers, so every request sent during an outage counts.
type pinger struct {
	c        *icmp.PacketConn
	dst      net.Addr
	id       int
	interval time.Duration
	stop     chan struct{}
	sent     chan struct{}
	recvd    chan struct{}

	mu     sync.Mutex
	sentAt []time.Time // by sequence number
	gotAt  map[int]time.Time
	signal chan struct{}
}

func startPinger(ns, dst string, interval time.Duration) (*pinger, error) {
	p := &pinger{
		dst: &net.IPAddr{IP: net.ParseIP(dst)}, id: os.Getpid() & 0xffff, interval: interval,
		stop: make(chan struct{}), sent: make(chan struct{}), recvd: make(chan struct{}),
		gotAt: map[int]time.Time{}, signal: make(chan struct{}, 1),
	}
	if err := netns.Do(netns.RunDir+"/"+ns, func() error {
		var err error
		p.c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return nil, err
	}
	go p.receive()
	go p.send()
	return p, nil
}

func (p *pinger) send() {
	defer close(p.sent)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for seq := 0; seq < 1<<16; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("vipbench")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.sentAt = append(p.sentAt, time.Now())
		p.mu.Unlock()
		p.c.WriteTo(b, p.dst) // an error is a lost request
		select {
		case <-tick.C:
		case <-p.stop:
			return
		}
	}
}

func (p *pinger) receive() {
	defer close(p.recvd)
	buf := make([]byte, 1500)
	for {
		n, _, err := p.c.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == p.id {
			p.mu.Lock()
			if _, dup := p.gotAt[e.Seq]; !dup {
				p.gotAt[e.Seq] = time.Now()
			}
			p.mu.Unlock()
			select {
			case p.signal <- struct{}{}:
			default:
			}
		}
	}
}

// waitReply waits for a reply to a request sent at or after since.
func (p *pinger) waitReply(since time.Time, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for seq := range p.gotAt {
			if !p.sentAt[seq].Before(since) {
				p.mu.Unlock()
				return true
			}
		}
		p.mu.Unlock()
		select {
		case <-p.signal:
		case <-deadline:
			return false
		}
	}
}

// finish stops sending, gives the last request a second to be answered and
// returns the number of requests sent and not answered.
func (p *pinger) finish() (sent, lost int) {
	close(p.stop)
	<-p.sent
	deadline := time.After(time.Second)
wait:
	for {
		p.mu.Lock()
		_, last := p.gotAt[len(p.sentAt)-1]
		p.mu.Unlock()
		if last {
			break
		}
		select {
		case <-p.signal:
		case <-deadline:
			break wait
		}
	}
	p.c.Close()
	<-p.recvd
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sentAt), len(p.sentAt) - len(p.gotAt)
}

//go:build linux

package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Pinger sends ICMP or ICMPv6 echo requests to one address at a fixed
// interval from a raw socket in a namespace and records which were
// answered. Unlike ping(8) it keeps its pace while nothing answers, so every
// request sent during an outage counts as lost; a failover test or
// benchmark bounds the loss by the master-down interval.
type Pinger struct {
	c        *icmp.PacketConn
	dst      net.Addr
	proto    int // 1 or 58, for icmp.ParseMessage
	typ      icmp.Type
	reply    icmp.Type
	id       int
	interval time.Duration

	stop      chan struct{}
	stopOnce  sync.Once
	sent      chan struct{} // closed when the sender has exited
	recvDone  chan struct{} // closed when the receiver has exited
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	sentAt []time.Time // by sequence number
	gotAt  map[int]time.Time
	err    error         // why the sender stopped early, if it did
	signal chan struct{} // receives after every reply
}

// StartPinger opens a raw ICMP (or ICMPv6, for an IPv6 dst) socket in the
// namespace bound at path (NS.Path) and sends an echo request with
// identifier id every interval, sequence numbers from 0. Close it when done.
func StartPinger(path string, dst netip.Addr, id int, interval time.Duration) (*Pinger, error) {
	p := &Pinger{
		dst: &net.IPAddr{IP: dst.AsSlice()}, id: id, interval: interval,
		stop: make(chan struct{}), sent: make(chan struct{}), recvDone: make(chan struct{}),
		gotAt: map[int]time.Time{}, signal: make(chan struct{}, 1),
	}
	network, laddr := "ip4:icmp", "0.0.0.0"
	p.proto, p.typ, p.reply = 1, ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() && !dst.Is4In6() {
		network, laddr = "ip6:ipv6-icmp", "::"
		p.proto, p.typ, p.reply = 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	if err := Do(path, func() error {
		var err error
		p.c, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return nil, fmt.Errorf("netns: pinger for %v: %w", dst, err)
	}
	go p.receive()
	go p.send()
	return p, nil
}

func (p *Pinger) send() {
	defer close(p.sent)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for seq := 0; seq < 1<<16; seq++ {
		msg := icmp.Message{Type: p.typ, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("gocarp pinger")}}
		b, err := msg.Marshal(nil) // ICMPv6: the kernel fills in the checksum
		if err != nil {
			p.mu.Lock()
			p.err = fmt.Errorf("netns: pinger for %v: %w", p.dst, err)
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.sentAt = append(p.sentAt, time.Now())
		p.mu.Unlock()
		// A send error (no neighbour yet, ...) is a lost request, like
		// ping's: the count of answered requests is what callers check.
		p.c.WriteTo(b, p.dst)
		select {
		case <-tick.C:
		case <-p.stop:
			return
		}
	}
}

func (p *Pinger) receive() {
	defer close(p.recvDone)
	buf := make([]byte, 1500)
	for {
		n, _, err := p.c.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		m, err := icmp.ParseMessage(p.proto, buf[:n])
		if err != nil || m.Type != p.reply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.ID != p.id {
			continue
		}
		p.mu.Lock()
		if _, dup := p.gotAt[e.Seq]; !dup && e.Seq < len(p.sentAt) {
			p.gotAt[e.Seq] = time.Now()
		}
		p.mu.Unlock()
		select {
		case p.signal <- struct{}{}:
		default:
		}
	}
}

// Dst returns the address the pinger sends to.
func (p *Pinger) Dst() net.Addr { return p.dst }

// Halt stops sending and waits for the sender to exit. It is idempotent.
func (p *Pinger) Halt() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.sent
}

// answeredSince counts the answered requests sent at or after since; p.mu
// must be held.
func (p *Pinger) answeredSince(since time.Time) int {
	got := 0
	for seq := range p.gotAt {
		if !p.sentAt[seq].Before(since) {
			got++
		}
	}
	return got
}

// WaitReplies waits until n echo requests sent at or after since were
// answered, or timeout passes; then it returns an error that names how
// many were.
func (p *Pinger) WaitReplies(since time.Time, n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		got := p.answeredSince(since)
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-p.signal:
		case <-deadline:
			return fmt.Errorf("netns: ping %v: %d of %d replies to requests sent since %v within %v",
				p.dst, got, n, since.Format(time.StampMilli), timeout)
		}
	}
}

// LastAnswered returns the highest sequence number answered so far (-1 if
// none).
func (p *Pinger) LastAnswered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := -1
	for seq := range p.gotAt {
		last = max(last, seq)
	}
	return last
}

// Finish stops sending, waits up to grace for the reply to the last
// request (it may be lost) and returns the number of requests sent and the
// sequence numbers never answered, in order.
func (p *Pinger) Finish(grace time.Duration) (sent int, lost []int) {
	p.Halt()
	deadline := time.After(grace)
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
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq := range p.sentAt {
		if _, ok := p.gotAt[seq]; !ok {
			lost = append(lost, seq)
		}
	}
	return len(p.sentAt), lost
}

// Close stops sending, closes the socket and waits for both goroutines. It
// returns the error that stopped the sender early, if any, and the close
// error. It is idempotent.
func (p *Pinger) Close() error {
	p.closeOnce.Do(func() {
		p.Halt()
		cerr := p.c.Close()
		<-p.recvDone
		p.mu.Lock()
		p.closeErr = errors.Join(p.err, cerr)
		p.mu.Unlock()
	})
	return p.closeErr
}

package fwbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// EchoPort is the TCP and UDP port of the echo server.
const EchoPort = 7000

// msgLen is the size of one message: sequence number and send time.
const msgLen = 16

// EchoServer echoes TCP streams byte for byte and UDP datagrams with the
// datagram's source address (4 or 16 bytes) and port appended (so a client
// sees a NAT rebinding).
type EchoServer struct {
	tcp   net.Listener
	udp   *net.UDPConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	// Resets counts TCP connections that ended with an error (a RST from
	// a firewall that did not know the flow).
	resets int
}

// family returns proto ("tcp", "udp") restricted to addr's family.
func family(proto string, addr netip.Addr) string {
	if addr.Is4() {
		return proto + "4"
	}
	return proto + "6"
}

// StartEchoServer listens on ns's addr (port EchoPort). The sockets stay in
// ns; the goroutines run anywhere.
func StartEchoServer(ns *netns.NS, addr netip.Addr) (*EchoServer, error) {
	s := &EchoServer{conns: map[net.Conn]bool{}}
	err := ns.Do(func() error {
		var err error
		if s.tcp, err = net.Listen(family("tcp", addr), netip.AddrPortFrom(addr, EchoPort).String()); err != nil {
			return err
		}
		s.udp, err = net.ListenUDP(family("udp", addr), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, EchoPort)))
		return err
	})
	if err != nil {
		if s.tcp != nil {
			s.tcp.Close()
		}
		return nil, fmt.Errorf("fwbench: echo server: %w", err)
	}
	s.wg.Add(2)
	go s.acceptLoop()
	go s.udpLoop()
	return s, nil
}

func (s *EchoServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_, err := io.Copy(c, c)
			s.mu.Lock()
			if err != nil && s.conns[c] {
				s.resets++
			}
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *EchoServer) udpLoop() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n != msgLen {
			continue
		}
		out := append(buf[:n:n], from.Addr().Unmap().AsSlice()...)
		out = binary.BigEndian.AppendUint16(out, from.Port())
		if _, err := s.udp.WriteToUDPAddrPort(out, from); err != nil {
			continue
		}
	}
}

// Resets returns how many TCP connections ended with an error.
func (s *EchoServer) Resets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resets
}

// Close stops the server and closes every connection.
func (s *EchoServer) Close() {
	s.tcp.Close()
	s.udp.Close()
	s.mu.Lock()
	for c := range s.conns {
		delete(s.conns, c)
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// flow is one client flow: a writer sending a sequence-numbered message
// every interval, a reader checking the echo.
type flow struct {
	id   int
	udp  bool
	conn net.Conn

	mu         sync.Mutex
	sent       uint64 // next sequence number to send
	next       uint64 // next sequence number expected back
	lastRecv   time.Time
	lastSentAt time.Time // send time of the newest echoed message
	maxGap     time.Duration
	gapAt      time.Time // when the largest gap ended
	err        error
	disorder   uint64 // TCP: echo out of sequence; UDP: duplicate or older datagram
	lost       uint64 // UDP: datagrams skipped
	rebinds    uint64 // UDP: the server saw another source address
	source     netip.AddrPort
	closing    bool
}

// FlowStats is the outcome of one flow.
type FlowStats struct {
	ID       int
	UDP      bool
	Sent     uint64 // messages sent
	Echoed   uint64 // TCP: in-order echoes received; UDP: highest sequence + 1 echoed
	MaxGap   time.Duration
	GapEnd   time.Time
	Err      error
	Disorder uint64
	Lost     uint64
	Rebinds  uint64
	LastSent time.Time // send time of the newest echoed message
}

// Flows is a set of client flows running from one namespace to the echo
// server.
type Flows struct {
	flows    []*flow
	interval time.Duration
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	started  time.Time
}

// StartFlows opens nTCP TCP connections and nUDP UDP sockets from ns to
// server:EchoPort and starts sending: every flow sends a 16-byte message
// (sequence number, send time) every interval (random phase) and checks the
// echo. A TCP flow records any error (a reset, EOF) and any echo out of
// sequence; a UDP flow records loss, disorder and NAT rebinding. One reader
// and one writer goroutine per flow.
func StartFlows(ns *netns.NS, server netip.Addr, nTCP, nUDP int, interval time.Duration) (*Flows, error) {
	fs := &Flows{interval: interval, stop: make(chan struct{}), started: time.Now()}
	dst := netip.AddrPortFrom(server, EchoPort).String()
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		for i := range nTCP {
			c, err := d.Dial(family("tcp", server), dst)
			if err != nil {
				return fmt.Errorf("tcp flow %d: %w", i, err)
			}
			fs.flows = append(fs.flows, &flow{id: i, conn: c})
		}
		for i := range nUDP {
			c, err := d.Dial(family("udp", server), dst)
			if err != nil {
				return fmt.Errorf("udp flow %d: %w", i, err)
			}
			fs.flows = append(fs.flows, &flow{id: nTCP + i, udp: true, conn: c})
		}
		return nil
	})
	if err != nil {
		for _, f := range fs.flows {
			f.conn.Close()
		}
		return nil, fmt.Errorf("fwbench: flows: %w", err)
	}
	now := time.Now()
	for _, f := range fs.flows {
		f.lastRecv = now
		fs.wg.Add(2)
		go fs.write(f)
		go fs.read(f)
	}
	return fs, nil
}

func (fs *Flows) write(f *flow) {
	defer fs.wg.Done()
	select { // random phase, so the flows do not send in lock step
	case <-time.After(rand.N(fs.interval)):
	case <-fs.stop:
		return
	}
	t := time.NewTicker(fs.interval)
	defer t.Stop()
	var msg [msgLen]byte
	for {
		f.mu.Lock()
		seq := f.sent
		f.sent++
		f.mu.Unlock()
		binary.BigEndian.PutUint64(msg[:8], seq)
		binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		if _, err := f.conn.Write(msg[:]); err != nil && !f.udp {
			f.fail(fmt.Errorf("write: %w", err))
			return
		}
		select {
		case <-t.C:
		case <-fs.stop:
			return
		}
	}
}

func (f *flow) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil && !f.closing {
		f.err = err
	}
}

func (fs *Flows) read(f *flow) {
	defer fs.wg.Done()
	buf := make([]byte, 64)
	for {
		var n int
		var err error
		if f.udp {
			n, err = f.conn.Read(buf)
		} else {
			n, err = io.ReadFull(f.conn, buf[:msgLen])
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.fail(fmt.Errorf("read: %w", err))
			if !f.udp {
				return
			}
			continue
		}
		now := time.Now()
		seq := binary.BigEndian.Uint64(buf[:8])
		sentAt := time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:16])))
		f.mu.Lock()
		switch {
		case f.udp && (n == msgLen+4+2 || n == msgLen+16+2):
			a, _ := netip.AddrFromSlice(buf[msgLen : n-2])
			src := netip.AddrPortFrom(a, binary.BigEndian.Uint16(buf[n-2:n]))
			if f.source.IsValid() && src != f.source {
				f.rebinds++
			}
			f.source = src
			if seq < f.next {
				f.disorder++
			} else {
				f.lost += seq - f.next
				f.next = seq + 1
				f.recv(now, sentAt)
			}
		case f.udp:
			f.disorder++
		case seq != f.next:
			f.disorder++
			f.next = seq + 1
		default:
			f.next++
			f.recv(now, sentAt)
		}
		f.mu.Unlock()
	}
}

// recv records an in-order echo. Called with mu held.
func (f *flow) recv(now, sentAt time.Time) {
	if g := now.Sub(f.lastRecv); g > f.maxGap {
		f.maxGap = g
		f.gapAt = now
	}
	f.lastRecv = now
	f.lastSentAt = sentAt
}

// ResetPhase starts a new measurement phase: every flow's largest gap and
// UDP loss count restart from zero (errors and disorder are kept: they
// fail the whole run).
func (fs *Flows) ResetPhase() {
	for _, f := range fs.flows {
		f.mu.Lock()
		f.maxGap, f.lost = 0, 0
		f.mu.Unlock()
	}
}

// Len returns the number of flows.
func (fs *Flows) Len() int { return len(fs.flows) }

// Stats returns a snapshot of every flow. A flow's MaxGap includes the
// gap still open (time since its last echo), so a stalled flow shows.
func (fs *Flows) Stats() []FlowStats {
	out := make([]FlowStats, len(fs.flows))
	now := time.Now()
	for i, f := range fs.flows {
		f.mu.Lock()
		gap := f.maxGap
		if !f.closing {
			gap = max(gap, now.Sub(f.lastRecv))
		}
		out[i] = FlowStats{ID: f.id, UDP: f.udp, Sent: f.sent, Echoed: f.next, MaxGap: gap, GapEnd: f.gapAt,
			Err: f.err, Disorder: f.disorder, Lost: f.lost, Rebinds: f.rebinds, LastSent: f.lastSentAt}
		f.mu.Unlock()
	}
	return out
}

// Recovered returns how many flows have had a message sent after t echoed.
func (fs *Flows) Recovered(t time.Time) int {
	n := 0
	for _, f := range fs.flows {
		f.mu.Lock()
		if f.lastSentAt.After(t) {
			n++
		}
		f.mu.Unlock()
	}
	return n
}

// WaitRecovered waits until every flow has had a message sent after t
// echoed, or timeout; it returns how many had. It polls the flows' state
// (they are many; a per-echo notification would cost more than it saves).
func (fs *Flows) WaitRecovered(t time.Time, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n := fs.Recovered(t)
		if n == len(fs.flows) || time.Now().After(deadline) {
			return n
		}
		<-tick.C
	}
}

// Stop stops sending, waits up to drain for the TCP echoes still in
// flight, closes every flow and returns the final statistics. Later calls
// only return the statistics.
func (fs *Flows) Stop(drain time.Duration) []FlowStats {
	first := false
	fs.stopOnce.Do(func() { first = true; close(fs.stop) })
	if !first {
		fs.wg.Wait()
		return fs.Stats()
	}
	deadline := time.Now().Add(drain)
	tick := time.NewTicker(20 * time.Millisecond)
	for time.Now().Before(deadline) {
		done := true
		for _, st := range fs.Stats() {
			if !st.UDP && st.Err == nil && st.Echoed < st.Sent {
				done = false
				break
			}
		}
		if done {
			break
		}
		<-tick.C
	}
	tick.Stop()
	// Wait for the writers to stop before reading the final counts.
	for _, f := range fs.flows {
		f.mu.Lock()
		f.closing = true
		f.mu.Unlock()
		f.conn.Close()
	}
	fs.wg.Wait()
	return fs.Stats()
}

// Summary condenses flow statistics for a report.
type Summary struct {
	TCP, UDP       int
	TCPFailed      int           // TCP flows with an error, disorder or unechoed data
	UDPFailed      int           // UDP flows with disorder or a NAT rebinding
	UDPLost        uint64        // UDP datagrams lost (expected during an outage)
	MaxGap         time.Duration // largest gap between two echoes in any flow
	MaxGapTCP      time.Duration
	P50Gap, P99Gap time.Duration // over the flows' largest gaps (TCP)
	Examples       []string      // a few failures
}

// Summarize computes a Summary of final or running statistics. With
// final, TCP data sent but never echoed counts as lost.
func Summarize(st []FlowStats, final bool) Summary {
	var s Summary
	var gaps []time.Duration
	for _, f := range st {
		s.MaxGap = max(s.MaxGap, f.MaxGap)
		if f.UDP {
			s.UDP++
			s.UDPLost += f.Lost
			if f.Disorder > 0 || f.Rebinds > 0 {
				s.UDPFailed++
				s.example(fmt.Sprintf("udp flow %d: disorder %d rebinds %d", f.ID, f.Disorder, f.Rebinds))
			}
			continue
		}
		s.TCP++
		gaps = append(gaps, f.MaxGap)
		s.MaxGapTCP = max(s.MaxGapTCP, f.MaxGap)
		bad := f.Err != nil || f.Disorder > 0 || (final && f.Echoed != f.Sent)
		if bad {
			s.TCPFailed++
			s.example(fmt.Sprintf("tcp flow %d: err %v, disorder %d, sent %d echoed %d", f.ID, f.Err, f.Disorder, f.Sent, f.Echoed))
		}
	}
	if len(gaps) > 0 {
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		s.P50Gap = gaps[len(gaps)/2]
		s.P99Gap = gaps[len(gaps)*99/100]
	}
	return s
}

func (s *Summary) example(e string) {
	if len(s.Examples) < 5 {
		s.Examples = append(s.Examples, e)
	}
}

// String formats the summary on one line.
func (s Summary) String() string {
	return fmt.Sprintf("tcp %d (failed %d), udp %d (failed %d, datagrams lost %d), largest gap %v (tcp: max %v, p50 %v, p99 %v)",
		s.TCP, s.TCPFailed, s.UDP, s.UDPFailed, s.UDPLost, s.MaxGap.Round(time.Millisecond),
		s.MaxGapTCP.Round(time.Millisecond), s.P50Gap.Round(time.Millisecond), s.P99Gap.Round(time.Millisecond))
}

// OpenConns opens n TCP connections from ns to server:EchoPort as fast as
// it can, from parallel dialers (each a thread inside ns), and returns them.
func OpenConns(ns *netns.NS, server netip.Addr, n, parallel int) ([]net.Conn, error) {
	dst := netip.AddrPortFrom(server, EchoPort).String()
	out := make([][]net.Conn, parallel)
	errs := make([]error, parallel)
	var wg sync.WaitGroup
	for w := range parallel {
		count := n / parallel
		if w < n%parallel {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = ns.Do(func() error {
				d := net.Dialer{Timeout: 10 * time.Second}
				for range count {
					c, err := d.Dial("tcp4", dst)
					if err != nil {
						return err
					}
					out[w] = append(out[w], c)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	var all []net.Conn
	for _, cs := range out {
		all = append(all, cs...)
	}
	if err := errors.Join(errs...); err != nil {
		for _, c := range all {
			c.Close()
		}
		fds, _ := os.ReadDir("/proc/self/fd")
		return nil, fmt.Errorf("fwbench: opening %d connections (%d opened, %d fds): %w", n, len(all), len(fds), err)
	}
	return all, nil
}

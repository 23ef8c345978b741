// Package carptest provides an in-memory Ethernet segment for testing CARP
// groups without sockets or root: any number of ports (one per group, as
// carp.Transport), with per-link loss, delay, duplication, partitions,
// silent crashes and raw packet injection.
//
// Everything is deterministic for a given seed, and all blocking is on
// channels and time timers, so tests can run it inside a testing/synctest
// bubble and get exact simulated times.
package carptest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// queueLen is the receive queue of a port, like a socket buffer: packets
// arriving at a full queue are dropped.
const queueLen = 256

// Link describes the path from one port to another. The zero value is a
// perfect link: no loss, no delay, TTL 255 and the receiver's ifindex.
type Link struct {
	Loss      float64       // probability in [0, 1] that a packet is lost
	Duplicate float64       // probability in [0, 1] that a packet arrives twice
	Delay     time.Duration // one-way delay
	// TTL, if not zero, replaces the TTL of delivered packets (use it to
	// test TTL checks: the default is 255, what CARP requires).
	TTL int
	// IfIndex, if not zero, replaces the receiver's ifindex in delivered
	// packets (use it to test interface checks).
	IfIndex int
}

// Segment is a simulated LAN segment. Create it with NewSegment.
type Segment struct {
	mu        sync.Mutex
	rng       *rand.Rand
	ports     []*Port
	def       Link
	links     map[[2]*Port]Link
	partition map[*Port]int // partition id per port; nil when healed
}

// NewSegment returns an empty segment whose random decisions (loss,
// duplication) derive from seed.
func NewSegment(seed uint64) *Segment {
	return &Segment{
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		links: map[[2]*Port]Link{},
	}
}

// Join adds a port for the given families (both if none are given). Port n
// (1-based) gets interface index n, source 192.0.2.n and fe80::n.
func (s *Segment) Join(families ...carp.Family) *Port {
	if len(families) == 0 {
		families = []carp.Family{carp.IPv4, carp.IPv6}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.ports) + 1
	p := &Port{
		seg:      s,
		ifindex:  n,
		families: slices.Clone(families),
		src4:     netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}),
		src6:     netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 14: byte(n >> 8), 15: byte(n)}),
		in:       make(chan carp.Packet, queueLen),
		closed:   make(chan struct{}),
	}
	s.ports = append(s.ports, p)
	return p
}

// SetLink sets the link from one port to another (one direction).
func (s *Segment) SetLink(from, to *Port, l Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.links[[2]*Port{from, to}] = l
}

// SetDefaultLink sets the link used between ports without a SetLink entry.
func (s *Segment) SetDefaultLink(l Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = l
}

// Partition splits the segment: ports in the same group still reach each
// other, ports in different groups do not, and ports in no group reach
// nobody. Heal undoes it.
func (s *Segment) Partition(groups ...[]*Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partition = map[*Port]int{}
	for i, g := range groups {
		for _, p := range g {
			s.partition[p] = i + 1
		}
	}
}

// Heal ends a partition.
func (s *Segment) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partition = nil
}

// reachable reports whether a packet from one port can reach another.
// s.mu must be held.
func (s *Segment) reachable(from, to *Port) bool {
	if s.partition == nil {
		return true
	}
	a, b := s.partition[from], s.partition[to]
	return a != 0 && a == b
}

// send delivers payload from port from to every other port, or with
// unicast peers to the ports whose address is one of them.
func (s *Segment) send(from *Port, f carp.Family, payload []byte, peers []netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, to := range s.ports {
		if to == from || !to.has(f) || !s.reachable(from, to) {
			continue
		}
		dst, b := group(f), payload
		if len(peers) > 0 {
			if !slices.Contains(peers, to.Addr(f)) {
				continue
			}
			dst = to.Addr(f)
			if b = retarget(payload, from.Addr(f), append([]netip.Addr{group(f)}, peers...), dst); b == nil {
				continue
			}
		}
		l, ok := s.links[[2]*Port{from, to}]
		if !ok {
			l = s.def
		}
		if l.Loss > 0 && s.rng.Float64() < l.Loss {
			continue
		}
		copies := 1
		if l.Duplicate > 0 && s.rng.Float64() < l.Duplicate {
			copies = 2
		}
		p := carp.Packet{
			Family:  f,
			Payload: append([]byte(nil), b...),
			Src:     from.Addr(f),
			Dst:     dst,
			TTL:     255,
			IfIndex: to.ifindex,
		}
		if l.TTL != 0 {
			p.TTL = l.TTL
		}
		if l.IfIndex != 0 {
			p.IfIndex = l.IfIndex
		}
		for range copies {
			to.deliver(p, l.Delay)
		}
	}
}

// retarget returns a VRRPv3 advert encoded for a packet from src to one
// of encs (the multicast group or a peer: the group encodes for the
// destination it learnt at start) re-encoded for dst, its checksum
// covering the destination; a CARP advert is returned unchanged. It
// returns nil if a VRRPv3-shaped payload decodes for none of encs.
func retarget(b []byte, src netip.Addr, encs []netip.Addr, dst netip.Addr) []byte {
	if len(b) == carp.AdvertisementLen || len(b) == 0 || b[0]>>4 != carp.VRRPVersion {
		return b
	}
	for _, enc := range encs {
		var a carp.VRRPAdvertisement
		if a.Unmarshal(b, src, enc) != nil {
			continue
		}
		if out, err := a.Append(nil, src, dst); err == nil {
			return out
		}
	}
	return nil
}

// group returns the CARP multicast group of a family.
func group(f carp.Family) netip.Addr {
	if f == carp.IPv6 {
		return netip.MustParseAddr("ff02::12")
	}
	return netip.AddrFrom4([4]byte{224, 0, 0, 18})
}

// Port is one node's attachment to a Segment. It implements carp.Transport.
type Port struct {
	seg      *Segment
	ifindex  int
	families []carp.Family
	src4     netip.Addr
	src6     netip.Addr
	in       chan carp.Packet
	closed   chan struct{}

	mu        sync.Mutex
	isClosed  bool
	crashed   bool
	loopback  bool
	sendErr   error
	sent      map[carp.Family][]byte
	sentCount int
	peers     map[carp.Family][]netip.Addr // unicast peers (SetPeers)
}

var (
	_ carp.Transport = (*Port)(nil)
	_ carp.Addresser = (*Port)(nil)
)

// IfIndex returns the interface index the port stamps on packets it
// receives (use it as carp.Config.IfIndex).
func (p *Port) IfIndex() int { return p.ifindex }

// Addr returns the port's source address for a family.
func (p *Port) Addr(f carp.Family) netip.Addr {
	if f == carp.IPv6 {
		return p.src6
	}
	return p.src4
}

// Source implements carp.Addresser: it is Addr.
func (p *Port) Source(f carp.Family) netip.Addr { return p.Addr(f) }

// Destination implements carp.Addresser: the segment delivers every advert
// as sent to 224.0.0.18 or ff02::12, or with unicast peers (SetPeers) to
// each peer, of which this is the first.
func (p *Port) Destination(f carp.Family) netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps := p.peers[f]; len(ps) > 0 {
		return ps[0]
	}
	return group(f)
}

// SetPeers switches family f of the port to unicast (like
// carp.RawConfig.Peers4 / Peers6): its adverts reach only the ports whose
// Addr is one of peers, each with that address as the destination. Empty
// peers means multicast again. It may be called while a group runs. A
// VRRPv3 advert, whose checksum covers the destination, is re-encoded
// for each peer, as carp.RawTransport does.
func (p *Port) SetPeers(f carp.Family, peers []netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peers == nil {
		p.peers = map[carp.Family][]netip.Addr{}
	}
	p.peers[f] = slices.Clone(peers)
}

func (p *Port) has(f carp.Family) bool { return slices.Contains(p.families, f) }

// Families implements carp.Transport.
func (p *Port) Families() []carp.Family { return slices.Clone(p.families) }

// Send implements carp.Transport: it delivers payload to every reachable
// port of the segment that has the family, through the links' loss, delay
// and duplication. A crashed port silently drops it.
func (p *Port) Send(f carp.Family, payload []byte) error {
	p.mu.Lock()
	switch {
	case p.isClosed:
		p.mu.Unlock()
		return fmt.Errorf("carptest: send: %w", net.ErrClosed)
	case !p.has(f):
		p.mu.Unlock()
		return fmt.Errorf("carptest: send: family %v not configured", f)
	case p.sendErr != nil:
		err := p.sendErr
		p.mu.Unlock()
		return err
	case p.crashed:
		p.mu.Unlock()
		return nil
	}
	if p.sent == nil {
		p.sent = map[carp.Family][]byte{}
	}
	p.sent[f] = append(p.sent[f][:0], payload...)
	p.sentCount++
	loop := p.loopback
	peers := p.peers[f]
	p.mu.Unlock()
	if loop {
		p.deliver(carp.Packet{
			Family: f, Payload: append([]byte(nil), payload...),
			Src: p.Addr(f), Dst: group(f), TTL: 255, IfIndex: p.ifindex,
		}, 0)
	}
	p.seg.send(p, f, payload, peers)
	return nil
}

// Receive implements carp.Transport.
func (p *Port) Receive() (carp.Packet, error) {
	select {
	case pkt := <-p.in:
		return pkt, nil
	case <-p.closed:
		return carp.Packet{}, fmt.Errorf("carptest: receive: %w", net.ErrClosed)
	}
}

// Pending implements carp.PendingReporter: it reports whether packets
// delivered to the port wait for Receive.
func (p *Port) Pending() bool { return len(p.in) > 0 }

// Close implements carp.Transport. It is idempotent.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isClosed {
		p.isClosed = true
		close(p.closed)
	}
	return nil
}

// deliver queues pkt after delay, dropping it if the port is closed,
// crashed or its queue is full.
func (p *Port) deliver(pkt carp.Packet, delay time.Duration) {
	if delay > 0 {
		time.AfterFunc(delay, func() { p.deliver(pkt, 0) })
		return
	}
	p.mu.Lock()
	drop := p.isClosed || p.crashed
	p.mu.Unlock()
	if drop {
		return
	}
	select {
	case p.in <- pkt:
	default:
	}
}

// Inject delivers a raw packet to this port as if it had arrived from the
// wire, bypassing links and partitions (for forged, truncated or looped
// packets). Zero TTL and IfIndex fields are not filled in: set them.
func (p *Port) Inject(pkt carp.Packet) {
	pkt.Payload = append([]byte(nil), pkt.Payload...)
	p.deliver(pkt, 0)
}

// Crash makes the port silently stop sending and receiving, like a node
// that lost power: no bow-out reaches anyone. Send still succeeds.
// Revive undoes it.
func (p *Port) Crash() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crashed = true
}

// Revive undoes Crash.
func (p *Port) Revive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crashed = false
}

// SetSendError makes Send fail with err (nil restores it). The packet is
// not sent.
func (p *Port) SetSendError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendErr = err
}

// SetLoopback makes the port receive its own packets, as behind a switch
// loop or a hypervisor vSwitch that reflects multicast.
func (p *Port) SetLoopback(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loopback = on
}

// LastSent returns a copy of the last payload successfully sent on f, or nil.
func (p *Port) LastSent(f carp.Family) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.sent[f]...)
}

// SentCount returns how many payloads the port has sent (crashed and
// failed sends excluded).
func (p *Port) SentCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sentCount
}

// ErrSend is a convenient error for SetSendError.
var ErrSend = errors.New("carptest: simulated send failure")

package pfsynctest

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"github.com/gocarp/gocarp/pfsync"
)

// Faults describes how the network mistreats frames. The zero value is a
// perfect network: no loss, no duplicates, in-order, instant delivery.
type Faults struct {
	// Loss is the probability, 0 to 1, that a frame to one receiver is lost.
	Loss float64
	// Duplicate is the probability, 0 to 1, that a delivered frame is
	// delivered twice.
	Duplicate float64
	// Reorder is the probability, 0 to 1, that a frame is held back by a
	// random extra delay below ReorderWindow, so later frames overtake it.
	Reorder float64
	// ReorderWindow bounds the extra delay of a reordered frame; zero means
	// 20 ms.
	ReorderWindow time.Duration
	// Delay is the one-way latency added to every frame; zero means none
	// (frames are queued to the receiver inside Send).
	Delay time.Duration
	// Jitter adds a random delay below Jitter to every frame.
	Jitter time.Duration
}

// validate checks f; field names it in errors ("Config.Faults" or
// "Faults").
func (f Faults) validate(field string) error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", f.Loss}, {"Duplicate", f.Duplicate}, {"Reorder", f.Reorder}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("pfsynctest: %s.%s %v out of range 0-1", field, p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ReorderWindow", f.ReorderWindow}, {"Delay", f.Delay}, {"Jitter", f.Jitter}} {
		if d.v < 0 {
			return fmt.Errorf("pfsynctest: %s.%s %v out of range (0 or more)", field, d.name, d.v)
		}
	}
	return nil
}

// Config configures a Network. A nil *Config means the defaults.
type Config struct {
	// Seed makes every fault decision reproducible.
	Seed uint64
	// MTU is the largest frame Send accepts; zero means 1500, the common
	// Ethernet sync link (pfsync does not fragment either).
	MTU int
	// QueueLen is how many frames wait in a node's receive queue before
	// further frames to it are dropped, like a full socket buffer; zero
	// means 4096.
	QueueLen int
	// Faults are the initial faults; SetFaults changes them.
	Faults Faults
}

// Stats counts what happened to frames, one count per receiver.
type Stats struct {
	Sent        uint64 // frames accepted by Send (a Broadcast counts once)
	Delivered   uint64 // frames queued to a receiver, duplicates included
	Lost        uint64 // frames dropped by the Loss fault
	Duplicated  uint64 // extra copies delivered
	Reordered   uint64 // frames held back by the Reorder fault
	Partitioned uint64 // frames dropped because a partition separates the nodes
	Overflow    uint64 // frames dropped because the receive queue was full
	Unreachable uint64 // frames to a node that is not attached
	TooBig      uint64 // Send calls refused for exceeding the MTU
}

// Network is an in-memory network of nodes. Its methods may be called
// concurrently.
type Network struct {
	mtu      int
	queueLen int
	seed     uint64

	mu        sync.Mutex
	faults    Faults
	endpoints map[pfsync.NodeID]*Endpoint
	links     map[[2]pfsync.NodeID]uint64 // frames sent per directed link
	group     map[pfsync.NodeID]int       // partition group per node; nil when healed
	stats     Stats
}

// New returns a network configured by cfg (nil means defaults).
func New(cfg *Config) (*Network, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 64 || c.MTU > 1<<20 {
		return nil, fmt.Errorf("pfsynctest: Config.MTU %d out of range 64-%d", c.MTU, 1<<20)
	}
	if c.QueueLen == 0 {
		c.QueueLen = 4096
	}
	if c.QueueLen < 1 || c.QueueLen > 1<<24 {
		return nil, fmt.Errorf("pfsynctest: Config.QueueLen %d out of range 1-%d", c.QueueLen, 1<<24)
	}
	if err := c.Faults.validate("Config.Faults"); err != nil {
		return nil, err
	}
	return &Network{
		mtu:       c.MTU,
		queueLen:  c.QueueLen,
		seed:      c.Seed,
		faults:    c.Faults,
		endpoints: make(map[pfsync.NodeID]*Endpoint),
		links:     make(map[[2]pfsync.NodeID]uint64),
	}, nil
}

// MTU returns the network's MTU.
func (n *Network) MTU() int { return n.mtu }

// SetFaults replaces the faults applied to frames sent from now on.
func (n *Network) SetFaults(f Faults) error {
	if err := f.validate("Faults"); err != nil {
		return err
	}
	n.mu.Lock()
	n.faults = f
	n.mu.Unlock()
	return nil
}

// Partition splits the network: a frame is delivered only between two nodes
// listed in the same group. A node listed in no group is cut off from every
// other node. Frames already in flight are still delivered.
func (n *Network) Partition(groups ...[]pfsync.NodeID) {
	g := make(map[pfsync.NodeID]int)
	for i, nodes := range groups {
		for _, id := range nodes {
			g[id] = i + 1
		}
	}
	n.mu.Lock()
	n.group = g
	n.mu.Unlock()
}

// Heal removes any partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.group = nil
	n.mu.Unlock()
}

// Stats returns the frame counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Attach connects node id to the network and returns its transport. If id
// is already attached, the old endpoint is closed first, which simulates a
// crash and restart of the node; frames in flight reach the new endpoint.
// Attach with id 0 (never a valid NodeID) returns an endpoint whose Send
// fails.
func (n *Network) Attach(id pfsync.NodeID) *Endpoint {
	ep := &Endpoint{
		net:    n,
		id:     id,
		inbox:  make(chan pfsync.Datagram, n.queueLen),
		closed: make(chan struct{}),
	}
	n.mu.Lock()
	old := n.endpoints[id]
	if id != 0 {
		n.endpoints[id] = ep
	}
	n.mu.Unlock()
	if old != nil {
		old.closeOnce()
	}
	return ep
}

// splitmix64 is the mixing step of SplitMix64; it turns the seed, the link
// and the frame's index on the link into independent pseudo-random numbers.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// fate draws the random numbers deciding what happens to one frame.
type fate struct{ state uint64 }

func (f *fate) float() float64 {
	f.state = splitmix64(f.state)
	return float64(f.state>>11) / (1 << 53)
}

func (f *fate) dur(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	f.state = splitmix64(f.state)
	return time.Duration(f.state % uint64(max))
}

type delivery struct {
	to    pfsync.NodeID
	delay time.Duration
}

func (n *Network) send(from pfsync.NodeID, to pfsync.NodeID, frame []byte) error {
	if len(frame) > n.mtu {
		n.mu.Lock()
		n.stats.TooBig++
		n.mu.Unlock()
		return fmt.Errorf("pfsynctest: frame of %d bytes exceeds MTU %d", len(frame), n.mtu)
	}
	var out [8]delivery
	ds := out[:0]
	n.mu.Lock()
	n.stats.Sent++
	f := n.faults
	plan := func(dst pfsync.NodeID) {
		if n.group != nil && (n.group[from] == 0 || n.group[from] != n.group[dst]) {
			n.stats.Partitioned++
			return
		}
		link := [2]pfsync.NodeID{from, dst}
		k := n.links[link]
		n.links[link] = k + 1
		r := fate{state: n.seed ^ uint64(from)<<40 ^ uint64(dst)<<20 ^ splitmix64(k)}
		if r.float() < f.Loss {
			n.stats.Lost++
			return
		}
		copies := 1
		if r.float() < f.Duplicate {
			copies = 2
			n.stats.Duplicated++
		}
		for range copies {
			d := f.Delay + r.dur(f.Jitter)
			if r.float() < f.Reorder {
				w := f.ReorderWindow
				if w == 0 {
					w = 20 * time.Millisecond
				}
				d += r.dur(w)
				n.stats.Reordered++
			}
			ds = append(ds, delivery{to: dst, delay: d})
		}
	}
	if to == pfsync.Broadcast {
		for dst := range n.endpoints {
			if dst != from {
				plan(dst)
			}
		}
	} else if _, ok := n.endpoints[to]; ok {
		plan(to)
	} else {
		n.stats.Unreachable++
	}
	n.mu.Unlock()
	for _, d := range ds {
		p := make([]byte, len(frame))
		copy(p, frame)
		if d.delay == 0 {
			n.deliver(from, d.to, p)
			continue
		}
		time.AfterFunc(d.delay, func() { n.deliver(from, d.to, p) })
	}
	return nil
}

func (n *Network) deliver(from, to pfsync.NodeID, p []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep := n.endpoints[to]
	if ep == nil {
		n.stats.Unreachable++
		return
	}
	select {
	case ep.inbox <- pfsync.Datagram{From: from, Payload: p}:
		n.stats.Delivered++
	default:
		n.stats.Overflow++
	}
}

// Endpoint is one node's attachment to a Network; it implements
// pfsync.Transport.
type Endpoint struct {
	net    *Network
	id     pfsync.NodeID
	inbox  chan pfsync.Datagram
	closed chan struct{}
	once   sync.Once
}

var _ pfsync.Transport = (*Endpoint)(nil)

// MTU returns the network's MTU.
func (e *Endpoint) MTU() int { return e.net.mtu }

// Send queues frame to node to, or to every other attached node when to is
// pfsync.Broadcast, applying the network's faults. It never blocks.
func (e *Endpoint) Send(to pfsync.NodeID, frame []byte) error {
	select {
	case <-e.closed:
		return fmt.Errorf("pfsynctest: send from node %d: %w", e.id, net.ErrClosed)
	default:
	}
	if e.id == 0 {
		return errors.New("pfsynctest: send from node 0, which is not a valid NodeID")
	}
	return e.net.send(e.id, to, frame)
}

// Receive returns the next frame for this node. Datagram.From is the
// sender's id. After Close it returns an error wrapping net.ErrClosed.
func (e *Endpoint) Receive() (pfsync.Datagram, error) {
	select {
	case <-e.closed:
		return pfsync.Datagram{}, fmt.Errorf("pfsynctest: receive on node %d: %w", e.id, net.ErrClosed)
	default:
	}
	select {
	case d := <-e.inbox:
		return d, nil
	case <-e.closed:
		return pfsync.Datagram{}, fmt.Errorf("pfsynctest: receive on node %d: %w", e.id, net.ErrClosed)
	}
}

// Close detaches the endpoint from the network and unblocks Receive. It is
// idempotent.
func (e *Endpoint) Close() error {
	e.net.mu.Lock()
	if e.net.endpoints[e.id] == e {
		delete(e.net.endpoints, e.id)
	}
	e.net.mu.Unlock()
	e.closeOnce()
	return nil
}

func (e *Endpoint) closeOnce() { e.once.Do(func() { close(e.closed) }) }

package udp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gocarp/gocarp/pfsync"
)

// UnicastConfig configures a Unicast transport.
type UnicastConfig struct {
	// Local is the address and port to bind. The address may be
	// unspecified (0.0.0.0 or ::) when Interface is set; port 0 picks a
	// free port (tests). Its family is the transport's family.
	Local netip.AddrPort
	// Interface, if not empty, binds the socket to that interface
	// (SO_BINDTODEVICE): nothing arriving on another interface is read and
	// nothing is sent elsewhere. Linux only.
	Interface string
	// Peers are the other nodes and where they listen; at least one.
	// Addresses must be of Local's family. SetPeers replaces them at run
	// time.
	Peers map[pfsync.NodeID]netip.AddrPort
	// MTU is the largest frame sent or received. Zero means DefaultMTU4 or
	// DefaultMTU6 by family.
	MTU int
	// ReadBuffer is the socket receive buffer in bytes. Zero means
	// DefaultReadBuffer. Bulk syncs arrive in bursts; a buffer that
	// overflows costs retransmissions (conntrackd's RcvSocketBuffer).
	ReadBuffer int
}

// Unicast is a pfsync.Transport sending UDP datagrams to a list of peers
// from one socket. The list can change at run time (SetPeers).
type Unicast struct {
	conn  *net.UDPConn
	v6    bool
	local netip.AddrPort // as configured, for errors
	mtu   int
	peers atomic.Pointer[peerTable]
	stats counters

	closeOnce sync.Once
	closeErr  error
}

// peerTable is a Unicast's peer list, replaced whole by SetPeers so that
// Send and Receive read one consistent version without a lock.
type peerTable struct {
	peers map[pfsync.NodeID]netip.AddrPort
	order []pfsync.NodeID // Broadcast sends in this order
	byAP  map[netip.AddrPort]pfsync.NodeID
	byIP  map[netip.Addr]pfsync.NodeID // only addresses used by one peer
}

var _ pfsync.Transport = (*Unicast)(nil)

// NewUnicast validates cfg and opens the socket.
func NewUnicast(cfg UnicastConfig) (*Unicast, error) {
	if !cfg.Local.Addr().IsValid() {
		return nil, fmt.Errorf("udp: UnicastConfig.Local %v is not an address and port", cfg.Local)
	}
	v6 := cfg.Local.Addr().Is6() && !cfg.Local.Addr().Is4In6()
	mtu, err := mtuFor("UnicastConfig", cfg.MTU, v6)
	if err != nil {
		return nil, err
	}
	u := &Unicast{mtu: mtu, v6: v6, local: cfg.Local}
	t, err := u.peerTable("UnicastConfig.Peers", cfg.Peers)
	if err != nil {
		return nil, err
	}
	u.peers.Store(t)

	rbuf, err := readBufferFor("UnicastConfig", cfg.ReadBuffer)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: bindControl(cfg.Interface)}
	pc, err := lc.ListenPacket(context.Background(), network, cfg.Local.String())
	if err != nil {
		return nil, fmt.Errorf("udp: listen on %v (interface %q): %w", cfg.Local, cfg.Interface, err)
	}
	u.conn = pc.(*net.UDPConn)
	if err := setReadBuffer(u.conn, rbuf); err != nil {
		return nil, errors.Join(err, u.conn.Close())
	}
	return u, nil
}

// peerTable validates peers, named field in errors, and indexes them.
func (u *Unicast) peerTable(field string, peers map[pfsync.NodeID]netip.AddrPort) (*peerTable, error) {
	if len(peers) == 0 {
		return nil, fmt.Errorf("udp: %s is empty, want at least one peer", field)
	}
	t := &peerTable{
		peers: make(map[pfsync.NodeID]netip.AddrPort, len(peers)),
		byAP:  make(map[netip.AddrPort]pfsync.NodeID, len(peers)),
		byIP:  make(map[netip.Addr]pfsync.NodeID, len(peers)),
	}
	// In node id order, so that the error for a duplicate address names
	// the same node every time.
	ids := slices.Sorted(maps.Keys(peers))
	ipCount := make(map[netip.Addr]int)
	for _, id := range ids {
		ap := peers[id]
		a := ap.Addr().Unmap()
		switch {
		case id == pfsync.Broadcast:
			return nil, fmt.Errorf("udp: %s node id 0 (%v) out of range 1-4294967295", field, ap)
		case !a.IsValid() || ap.Port() == 0 || a.IsUnspecified() || a.IsMulticast():
			return nil, fmt.Errorf("udp: %s[%d] %v is not a unicast address and port", field, id, ap)
		case a.Is6() != u.v6:
			return nil, fmt.Errorf("udp: %s[%d] %v is not of the family of UnicastConfig.Local %v", field, id, ap, u.local)
		}
		if _, dup := t.byAP[netip.AddrPortFrom(peerKey(a), ap.Port())]; dup {
			return nil, fmt.Errorf("udp: %s[%d] %v is also another peer's address", field, id, ap)
		}
		t.peers[id] = netip.AddrPortFrom(a, ap.Port())
		t.order = append(t.order, id)
		t.byAP[netip.AddrPortFrom(peerKey(a), ap.Port())] = id
		ipCount[peerKey(a)]++
		t.byIP[peerKey(a)] = id
	}
	for a, n := range ipCount {
		if n > 1 {
			delete(t.byIP, a)
		}
	}
	return t, nil
}

// SetPeers replaces the peer list at run time, validated as
// UnicastConfig.Peers is (errors name "SetPeers peers"); on error the list
// in use is kept. From its return, Send reaches only the new peers and
// Receive delivers only their datagrams (a datagram already being read
// when it is called may still come from a removed peer). The socket is
// kept. Pair it with pfsync.Engine.AddPeer and RemovePeer for the nodes
// that came and went.
func (u *Unicast) SetPeers(peers map[pfsync.NodeID]netip.AddrPort) error {
	t, err := u.peerTable("SetPeers peers", peers)
	if err != nil {
		return err
	}
	u.peers.Store(t)
	return nil
}

// Peers returns a copy of the peer list in use.
func (u *Unicast) Peers() map[pfsync.NodeID]netip.AddrPort {
	return maps.Clone(u.peers.Load().peers)
}

// LocalAddr is the address the socket is bound to, with the port chosen
// when Local's port was 0.
func (u *Unicast) LocalAddr() netip.AddrPort {
	return u.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// MTU is the largest frame Send accepts.
func (u *Unicast) MTU() int { return u.mtu }

// Send transmits frame to peer to, or to every peer when to is
// pfsync.Broadcast. A failure towards one peer does not stop the others;
// the error joins every failure.
func (u *Unicast) Send(to pfsync.NodeID, frame []byte) error {
	if len(frame) > u.mtu {
		return fmt.Errorf("udp: %d-byte frame exceeds MTU %d", len(frame), u.mtu)
	}
	t := u.peers.Load()
	if to != pfsync.Broadcast {
		ap, ok := t.peers[to]
		if !ok {
			return fmt.Errorf("udp: no peer with node id %d", to)
		}
		return u.sendTo(to, ap, frame)
	}
	var errs []error
	for _, id := range t.order {
		if err := u.sendTo(id, t.peers[id], frame); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (u *Unicast) sendTo(id pfsync.NodeID, ap netip.AddrPort, frame []byte) error {
	if _, err := u.conn.WriteToUDPAddrPort(frame, ap); err != nil {
		u.stats.sendErrors.Add(1)
		return fmt.Errorf("udp: send to node %d at %v: %w", id, ap, err)
	}
	u.stats.sent.Add(1)
	return nil
}

// Receive returns the next datagram from a peer. Datagrams larger than MTU,
// and datagrams whose source is no peer's (by address and port, or by
// address alone when only one peer uses it), are dropped and counted: every
// datagram returned has a non-zero From. After Close it returns an error
// wrapping net.ErrClosed.
func (u *Unicast) Receive() (pfsync.Datagram, error) {
	// One buffer for every datagram dropped: a flood of them costs no
	// allocation each.
	buf := make([]byte, u.mtu+1)
	for {
		n, src, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return pfsync.Datagram{}, fmt.Errorf("udp: receive: %w", err)
		}
		if n > u.mtu {
			u.stats.oversize.Add(1)
			continue
		}
		from := u.lookup(src)
		if from == 0 {
			u.stats.unknown.Add(1)
			continue
		}
		u.stats.received.Add(1)
		return pfsync.Datagram{From: from, Src: src, Payload: buf[:n:n]}, nil
	}
}

// lookup maps a source to a peer: by address and port, else by address if
// only one peer uses it.
func (u *Unicast) lookup(src netip.AddrPort) pfsync.NodeID {
	t := u.peers.Load()
	a := peerKey(src.Addr())
	if id, ok := t.byAP[netip.AddrPortFrom(a, src.Port())]; ok {
		return id
	}
	return t.byIP[a]
}

// Stats returns a snapshot of the counters.
func (u *Unicast) Stats() Stats { return u.stats.stats() }

// Close closes the socket, which unblocks Receive. It is idempotent.
func (u *Unicast) Close() error {
	u.closeOnce.Do(func() {
		if err := u.conn.Close(); err != nil {
			u.closeErr = fmt.Errorf("udp: close: %w", err)
		}
	})
	return u.closeErr
}

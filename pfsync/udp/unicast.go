package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

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
	// Addresses must be of Local's family.
	Peers map[pfsync.NodeID]netip.AddrPort
	// MTU is the largest frame sent or received. Zero means DefaultMTU4 or
	// DefaultMTU6 by family.
	MTU int
	// ReadBuffer is the socket receive buffer in bytes. Zero means
	// DefaultReadBuffer. Bulk syncs arrive in bursts; a buffer that
	// overflows costs retransmissions (conntrackd's RcvSocketBuffer).
	ReadBuffer int
}

// Unicast is a pfsync.Transport sending UDP datagrams to a static list of
// peers from one socket.
type Unicast struct {
	conn  *net.UDPConn
	mtu   int
	peers map[pfsync.NodeID]netip.AddrPort
	order []pfsync.NodeID // Broadcast sends in this order
	byAP  map[netip.AddrPort]pfsync.NodeID
	byIP  map[netip.Addr]pfsync.NodeID // only addresses used by one peer
	stats counters

	closeOnce sync.Once
	closeErr  error
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
	if len(cfg.Peers) == 0 {
		return nil, fmt.Errorf("udp: UnicastConfig.Peers is empty, want at least one peer")
	}
	u := &Unicast{
		mtu:   mtu,
		peers: make(map[pfsync.NodeID]netip.AddrPort, len(cfg.Peers)),
		byAP:  make(map[netip.AddrPort]pfsync.NodeID, len(cfg.Peers)),
		byIP:  make(map[netip.Addr]pfsync.NodeID, len(cfg.Peers)),
	}
	ipCount := make(map[netip.Addr]int)
	for id, ap := range cfg.Peers {
		a := ap.Addr().Unmap()
		switch {
		case id == pfsync.Broadcast:
			return nil, fmt.Errorf("udp: UnicastConfig.Peers node id 0 (%v) out of range 1-4294967295", ap)
		case !a.IsValid() || ap.Port() == 0 || a.IsUnspecified() || a.IsMulticast():
			return nil, fmt.Errorf("udp: UnicastConfig.Peers[%d] %v is not a unicast address and port", id, ap)
		case a.Is6() != v6:
			return nil, fmt.Errorf("udp: UnicastConfig.Peers[%d] %v is not of the family of UnicastConfig.Local %v", id, ap, cfg.Local)
		}
		if _, dup := u.byAP[netip.AddrPortFrom(peerKey(a), ap.Port())]; dup {
			return nil, fmt.Errorf("udp: UnicastConfig.Peers[%d] %v is also another peer's address", id, ap)
		}
		u.peers[id] = netip.AddrPortFrom(a, ap.Port())
		u.order = append(u.order, id)
		u.byAP[netip.AddrPortFrom(peerKey(a), ap.Port())] = id
		ipCount[peerKey(a)]++
		u.byIP[peerKey(a)] = id
	}
	for a, n := range ipCount {
		if n > 1 {
			delete(u.byIP, a)
		}
	}
	slices.Sort(u.order)

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
	if to != pfsync.Broadcast {
		ap, ok := u.peers[to]
		if !ok {
			return fmt.Errorf("udp: no peer with node id %d", to)
		}
		return u.sendTo(to, ap, frame)
	}
	var errs []error
	for _, id := range u.order {
		if err := u.sendTo(id, u.peers[id], frame); err != nil {
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
	a := peerKey(src.Addr())
	if id, ok := u.byAP[netip.AddrPortFrom(a, src.Port())]; ok {
		return id
	}
	return u.byIP[a]
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

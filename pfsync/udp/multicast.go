package udp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/gocarp/gocarp/pfsync"
)

// MulticastConfig configures a Multicast transport.
type MulticastConfig struct {
	// Interface is the sync interface: the group is joined there, the
	// socket is bound to it and datagrams arriving elsewhere are dropped.
	// Required.
	Interface string
	// Group is the multicast group; its family is the transport's family.
	// The zero value means DefaultGroup4 (224.0.0.240); use DefaultGroup6
	// (ff12::f0) for IPv6. Link-local groups are recommended.
	Group netip.Addr
	// Port is the UDP port sent to and listened on. Zero means
	// DefaultPort.
	Port uint16
	// Peers optionally maps node ids to their addresses on the sync link.
	// It fills Datagram.From, and Send to one of them goes by unicast
	// (still TTL 255). Send to a node not listed goes to the group. With a
	// link-local IPv6 group the kernel sends from the link-local address
	// (RFC 6724 scope matching), so list IPv6 peers by their fe80::
	// address; the zone is implied by Interface.
	Peers map[pfsync.NodeID]netip.Addr
	// Sources are the prefixes datagrams may come from; datagrams from
	// elsewhere are dropped and counted (Stats.UnknownSource). Empty
	// means the addresses of Peers when Peers is set, else the on-link
	// prefixes of Interface's addresses of the group's family when
	// NewMulticast runs (with fe80::/10 for IPv6). Prefixes must be of the
	// group's family.
	Sources []netip.Prefix
	// MTU is the largest frame sent or received. Zero means DefaultMTU4 or
	// DefaultMTU6 by family.
	MTU int
	// ReadBuffer is the socket receive buffer in bytes. Zero means
	// DefaultReadBuffer. Bulk syncs arrive in bursts; a buffer that
	// overflows costs retransmissions (conntrackd's RcvSocketBuffer).
	ReadBuffer int
}

// Multicast is a pfsync.Transport on a multicast group joined on one
// interface, with pfsync's TTL-255 and interface checks on every received
// datagram.
type Multicast struct {
	conn  *net.UDPConn
	p4    *ipv4.PacketConn
	p6    *ipv6.PacketConn
	ifi   *net.Interface
	group netip.AddrPort
	mtu   int
	v6    bool
	peers atomic.Pointer[mcastPeers] // replaced whole by SetPeers
	// sources are the allowed source prefixes; nil means only the
	// addresses of the peers.
	sources []netip.Prefix
	stats   counters

	closeOnce sync.Once
	closeErr  error
}

// mcastPeers are a Multicast's listed peers.
type mcastPeers struct {
	peers map[pfsync.NodeID]netip.AddrPort
	byIP  map[netip.Addr]pfsync.NodeID
}

var _ pfsync.Transport = (*Multicast)(nil)

// NewMulticast validates cfg, opens the socket bound to the interface, sets
// TTL (hop limit) 255 for multicast and unicast, turns multicast loopback and
// IP_MULTICAST_ALL off, asks for the TTL and arrival interface of every
// datagram, and joins the group. Every socket option error is returned.
func NewMulticast(cfg MulticastConfig) (*Multicast, error) {
	if cfg.Interface == "" {
		return nil, fmt.Errorf("udp: MulticastConfig.Interface is empty, want the sync interface")
	}
	group := cfg.Group
	if !group.IsValid() {
		group = netip.MustParseAddr(DefaultGroup4)
	}
	if !group.IsMulticast() || group.Zone() != "" {
		return nil, fmt.Errorf("udp: MulticastConfig.Group %v is not a multicast address (without zone)", cfg.Group)
	}
	v6 := group.Is6()
	mtu, err := mtuFor("MulticastConfig", cfg.MTU, v6)
	if err != nil {
		return nil, err
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("udp: MulticastConfig.Interface %q: %w", cfg.Interface, err)
	}
	m := &Multicast{
		ifi:   ifi,
		mtu:   mtu,
		v6:    v6,
		group: netip.AddrPortFrom(withLinkZone(group, ifi), port),
	}
	t, err := m.peerTable("MulticastConfig.Peers", cfg.Peers)
	if err != nil {
		return nil, err
	}
	m.peers.Store(t)
	if m.sources, err = sourcesFor(cfg.Sources, len(cfg.Peers) > 0, ifi, v6); err != nil {
		return nil, err
	}

	rbuf, err := readBufferFor("MulticastConfig", cfg.ReadBuffer)
	if err != nil {
		return nil, err
	}
	network, laddr := "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(int(port)))
	if v6 {
		network, laddr = "udp6", net.JoinHostPort("::", strconv.Itoa(int(port)))
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		return errors.Join(bindControl(ifi.Name)(network, address, c), multicastAllOff(c, v6))
	}}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("udp: listen on %s port %d: %w", ifi.Name, port, err)
	}
	m.conn = pc.(*net.UDPConn)
	if err := setReadBuffer(m.conn, rbuf); err != nil {
		return nil, errors.Join(err, m.conn.Close())
	}
	if err := m.setup(group); err != nil {
		return nil, errors.Join(err, m.conn.Close())
	}
	return m, nil
}

// peerTable validates peers, named field in errors, and indexes them.
func (m *Multicast) peerTable(field string, peers map[pfsync.NodeID]netip.Addr) (*mcastPeers, error) {
	t := &mcastPeers{
		peers: make(map[pfsync.NodeID]netip.AddrPort, len(peers)),
		byIP:  make(map[netip.Addr]pfsync.NodeID, len(peers)),
	}
	// In node id order, so that the error for a duplicate address names
	// the same node every time.
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		a := peers[id].Unmap()
		switch {
		case id == pfsync.Broadcast:
			return nil, fmt.Errorf("udp: %s node id 0 (%v) out of range 1-4294967295", field, a)
		case !a.IsValid() || a.IsUnspecified() || a.IsMulticast():
			return nil, fmt.Errorf("udp: %s[%d] %v is not a unicast address", field, id, a)
		case a.Is6() != m.v6:
			return nil, fmt.Errorf("udp: %s[%d] %v is not of the family of MulticastConfig.Group %v", field, id, a, m.group.Addr().WithZone(""))
		}
		if other, dup := t.byIP[peerKey(a)]; dup {
			return nil, fmt.Errorf("udp: %s[%d] %v is also the address of node %d", field, id, a, other)
		}
		t.peers[id] = netip.AddrPortFrom(withLinkZone(a.WithZone(""), m.ifi), m.group.Port())
		t.byIP[peerKey(a)] = id
	}
	return t, nil
}

// SetPeers replaces MulticastConfig.Peers at run time, validated the same
// way (errors name "SetPeers peers"); on error the list in use is kept.
// When the allowed sources defaulted to the peers' addresses (Peers set,
// Sources empty), they follow the new list, which may then not be empty;
// otherwise Sources stay as they were. Frames to Broadcast still go to the
// group, which every node on the link that joined it receives: the
// engine's AddPeer and RemovePeer decide which of them it listens to.
func (m *Multicast) SetPeers(peers map[pfsync.NodeID]netip.Addr) error {
	if len(peers) == 0 && m.sources == nil {
		return fmt.Errorf("udp: SetPeers peers is empty, but the allowed sources are the peers' addresses (MulticastConfig.Sources empty): nothing would be received")
	}
	t, err := m.peerTable("SetPeers peers", peers)
	if err != nil {
		return err
	}
	m.peers.Store(t)
	return nil
}

func (m *Multicast) setup(group netip.Addr) error {
	g := &net.UDPAddr{IP: group.AsSlice()}
	wrap := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("udp: %s on %s: %w", what, m.ifi.Name, err)
		}
		return nil
	}
	if group.Is4() {
		p := ipv4.NewPacketConn(m.conn)
		m.p4 = p
		return errors.Join(
			wrap("IP_MULTICAST_IF", p.SetMulticastInterface(m.ifi)),
			wrap("IP_MULTICAST_TTL 255", p.SetMulticastTTL(255)),
			wrap("IP_TTL 255", p.SetTTL(255)),
			wrap("IP_MULTICAST_LOOP 0", p.SetMulticastLoopback(false)),
			wrap("IP_RECVTTL/IP_PKTINFO", p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagInterface, true)),
			wrap("joining "+group.String(), p.JoinGroup(m.ifi, g)),
		)
	}
	p := ipv6.NewPacketConn(m.conn)
	m.p6 = p
	return errors.Join(
		wrap("IPV6_MULTICAST_IF", p.SetMulticastInterface(m.ifi)),
		wrap("IPV6_MULTICAST_HOPS 255", p.SetMulticastHopLimit(255)),
		wrap("IPV6_UNICAST_HOPS 255", p.SetHopLimit(255)),
		wrap("IPV6_MULTICAST_LOOP 0", p.SetMulticastLoopback(false)),
		wrap("IPV6_RECVHOPLIMIT/IPV6_RECVPKTINFO", p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true)),
		wrap("joining "+group.String(), p.JoinGroup(m.ifi, g)),
	)
}

// sourcesFor validates the configured Sources or works out the default:
// nil (the peers' addresses) when there are peers, else the prefixes of
// ifi's addresses of the family.
func sourcesFor(cfg []netip.Prefix, havePeers bool, ifi *net.Interface, v6 bool) ([]netip.Prefix, error) {
	family := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
	var out []netip.Prefix
	for i, p := range cfg {
		if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is6() != v6 || p.Addr().Is4In6() {
			return nil, fmt.Errorf("udp: MulticastConfig.Sources[%d] %v is not an %s prefix (the family of MulticastConfig.Group)", i, p, family)
		}
		out = append(out, p.Masked())
	}
	if len(cfg) > 0 || havePeers {
		return out, nil
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("udp: addresses of MulticastConfig.Interface %q, for the default Sources: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		ones, _ := n.Mask.Size()
		if !ok || ip.Unmap().Is6() != v6 {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(ip, ones).Masked())
	}
	if v6 {
		out = append(out, netip.MustParsePrefix("fe80::/10"))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("udp: MulticastConfig.Interface %q has no %s address to take the default Sources from; set MulticastConfig.Sources or Peers", ifi.Name, family)
	}
	return out, nil
}

// allowed reports whether a datagram from a (normalised by peerKey) may be
// delivered; from is the peer a belongs to, or 0.
func (m *Multicast) allowed(a netip.Addr, from pfsync.NodeID) bool {
	if m.sources == nil {
		return from != 0
	}
	for _, p := range m.sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// withLinkZone scopes link-local IPv6 addresses to the interface. The zone
// is the interface index, not its name: a name would be looked up again at
// every send, in the network namespace of whichever thread sends.
func withLinkZone(a netip.Addr, ifi *net.Interface) netip.Addr {
	if a.Is6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()) {
		return a.WithZone(strconv.Itoa(ifi.Index))
	}
	return a
}

// MTU is the largest frame Send accepts.
func (m *Multicast) MTU() int { return m.mtu }

// Group is the group and port datagrams are sent to.
func (m *Multicast) Group() netip.AddrPort { return m.group }

// Send transmits frame to the group, or by unicast to peer to when it is in
// Config.Peers.
func (m *Multicast) Send(to pfsync.NodeID, frame []byte) error {
	if len(frame) > m.mtu {
		return fmt.Errorf("udp: %d-byte frame exceeds MTU %d", len(frame), m.mtu)
	}
	dst := m.group
	if ap, ok := m.peers.Load().peers[to]; ok && to != pfsync.Broadcast {
		dst = ap
	}
	if _, err := m.conn.WriteToUDPAddrPort(frame, dst); err != nil {
		m.stats.sendErrors.Add(1)
		return fmt.Errorf("udp: send to %v: %w", dst, err)
	}
	m.stats.sent.Add(1)
	return nil
}

// Receive returns the next datagram that arrived on the sync interface with
// TTL (hop limit) 255 from an allowed source (Config.Sources) and fits the
// MTU; others are dropped and counted.
// After Close it returns an error wrapping net.ErrClosed.
func (m *Multicast) Receive() (pfsync.Datagram, error) {
	// One buffer for every datagram dropped: a flood of them costs no
	// allocation each.
	buf := make([]byte, m.mtu+1)
	for {
		var (
			n       int
			src     net.Addr
			ttl     = -1
			ifindex = -1
			err     error
		)
		if m.p4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = m.p4.ReadFrom(buf)
			if cm != nil {
				ttl, ifindex = cm.TTL, cm.IfIndex
			}
		} else {
			var cm *ipv6.ControlMessage
			n, cm, src, err = m.p6.ReadFrom(buf)
			if cm != nil {
				ttl, ifindex = cm.HopLimit, cm.IfIndex
			}
		}
		if err != nil {
			return pfsync.Datagram{}, fmt.Errorf("udp: receive: %w", err)
		}
		switch {
		case ttl != 255:
			m.stats.badTTL.Add(1)
			continue
		case ifindex != m.ifi.Index:
			m.stats.badIf.Add(1)
			continue
		case n > m.mtu:
			m.stats.oversize.Add(1)
			continue
		}
		var ap netip.AddrPort
		if ua, ok := src.(*net.UDPAddr); ok {
			// The net package names the zone in the network namespace
			// of the reading thread; the datagram came in on the sync
			// interface, so name that.
			a := ua.AddrPort().Addr().WithZone("")
			if a.Is6() && a.IsLinkLocalUnicast() {
				a = a.WithZone(m.ifi.Name)
			}
			ap = netip.AddrPortFrom(a, ua.AddrPort().Port())
		}
		srcIP := peerKey(ap.Addr())
		from := m.peers.Load().byIP[srcIP]
		if !m.allowed(srcIP, from) {
			m.stats.unknown.Add(1)
			continue
		}
		m.stats.received.Add(1)
		return pfsync.Datagram{From: from, Src: ap, Payload: buf[:n:n]}, nil
	}
}

// Stats returns a snapshot of the counters.
func (m *Multicast) Stats() Stats { return m.stats.stats() }

// Close leaves the group (by closing the socket), unblocks Receive and is
// idempotent.
func (m *Multicast) Close() error {
	m.closeOnce.Do(func() {
		if err := m.conn.Close(); err != nil {
			m.closeErr = fmt.Errorf("udp: close: %w", err)
		}
	})
	return m.closeErr
}

package carp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/internal/sockopt"
)

const (
	// rawTOS is IPTOS_LOWDELAY, what OpenBSD and ucarp put in adverts.
	rawTOS = 0x10
	// rawTTL is the TTL / hop limit every CARP advert carries and every
	// receiver expects (docs/interop.md, "Encapsulation").
	rawTTL = 255
	// rawBufLen is larger than any IPv4/IPv6 packet on an Ethernet link;
	// oversized protocol 112 packets must reach the codec intact to be
	// classified, not be truncated into something that looks valid.
	rawBufLen = 9000
)

// RawTransport is the Linux [Transport]: raw IP protocol 112 sockets bound
// to one interface, one per family.
//
// IPv4: adverts leave with TTL 255 (multicast and unicast), TOS 0x10 and
// the interface's primary address (or RawConfig.Src4) as source; the socket
// joins 224.0.0.18 on the interface only and has IP_MULTICAST_ALL off, so
// adverts from other interfaces are not delivered even when other sockets
// joined the group there.
//
// IPv6: adverts leave with hop limit 255 from the interface's link-local
// address; the socket joins ff02::12 on the interface (which also keeps
// MLD-snooping switches forwarding the group to us) with
// IPV6_MULTICAST_ALL off. Kernel checksum offload stays off: the CARP
// checksum has no pseudo-header.
//
// Both sockets are bound to the interface (SO_BINDTODEVICE), have multicast
// loopback off, and report TTL / hop limit, destination and arrival
// interface through control messages. Packets from another interface or
// from one of the interface's own addresses are dropped and counted
// ([RawTransport.Stats]); everything else, VRRP included, is delivered.
//
// With RawConfig.SendInterface, adverts leave through send-only sockets on
// that interface (a virtual-MAC macvlan) and so carry its MAC; receiving
// stays as above.
//
// Addresses are looked up once, in NewRawTransport; sockets stay in the
// network namespace they were created in, so a RawTransport created inside
// a namespace can be used from any goroutine.
type RawTransport struct {
	ifname  string
	ifindex int
	log     *slog.Logger

	v4   *ipv4.PacketConn
	v6   *ipv6.PacketConn
	rc   []syscall.RawConn // the sockets, for Pending
	out  []net.PacketConn  // send-only sockets on RawConfig.SendInterface
	snd  [2]*rawSender     // per family index (rawsend_linux.go)
	via  [2]*rawSender     // on RawConfig.SendInterface, if set (rawsendif_linux.go)
	rcv  [2]*rawReceiver   // per family index (rawrecv_linux.go)
	held atomic.Int32      // packets read from a socket and not yet returned by Receive
	src4 netip.Addr
	src6 netip.Addr
	// dsts are where adverts go per family index: the multicast group
	// or the unicast peers (SetPeers swaps them).
	dsts   [2]atomic.Pointer[[]netip.Addr]
	self   []netip.Addr
	fams   []Family
	pkts   chan Packet
	errs   chan error
	closed chan struct{}
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	wrongIf atomic.Uint64
	ownSrc  atomic.Uint64
}

var _ Transport = (*RawTransport)(nil)

// NewRawTransport opens raw CARP sockets on interface ifname. It needs
// CAP_NET_RAW. cfg may be nil. It fails, naming the option, if any socket
// option cannot be set: a silently missing TTL or group membership breaks
// the protocol in ways that are hard to see.
func NewRawTransport(ifname string, cfg *RawConfig) (*RawTransport, error) {
	if cfg == nil {
		cfg = &RawConfig{}
	}
	fams := slices.Clone(cfg.Families)
	if len(fams) == 0 {
		fams = []Family{IPv4, IPv6}
	}
	for i, f := range fams {
		if f != IPv4 && f != IPv6 {
			return nil, fmt.Errorf("carp: RawConfig.Families[%d] %v out of range (ipv4, ipv6)", i, f)
		}
	}
	slices.Sort(fams)
	fams = slices.Compact(fams)
	has := func(f Family) bool { return slices.Contains(fams, f) }
	if cfg.Peer4.IsValid() && (!cfg.Peer4.Unmap().Is4() || cfg.Peer4.Unmap().IsMulticast()) {
		return nil, fmt.Errorf("carp: RawConfig.Peer4 %v is not an IPv4 unicast address", cfg.Peer4)
	}
	if cfg.Peer6.IsValid() && (!cfg.Peer6.Is6() || cfg.Peer6.Is4In6() || cfg.Peer6.IsMulticast()) {
		return nil, fmt.Errorf("carp: RawConfig.Peer6 %v is not an IPv6 unicast address", cfg.Peer6)
	}
	peers4, err := checkPeers("RawConfig.Peers4", IPv4, cfg.Peer4, cfg.Peers4)
	if err != nil {
		return nil, err
	}
	peers6, err := checkPeers("RawConfig.Peers6", IPv6, cfg.Peer6, cfg.Peers6)
	if err != nil {
		return nil, err
	}
	if cfg.Src4.IsValid() && !cfg.Src4.Unmap().Is4() {
		return nil, fmt.Errorf("carp: RawConfig.Src4 %v is not an IPv4 address", cfg.Src4)
	}

	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("carp: interface %q: %w", ifname, err)
	}
	all, err := rawListAddrs()
	if err != nil {
		return nil, fmt.Errorf("carp: addresses of %s: %w", ifname, err)
	}
	var addrs []rawAddr
	for _, a := range all {
		if a.index == ifi.Index {
			addrs = append(addrs, a)
		}
	}

	t := &RawTransport{
		ifname:  ifname,
		ifindex: ifi.Index,
		log:     cfg.Logger,
		fams:    fams,
		pkts:    make(chan Packet),
		errs:    make(chan error),
		closed:  make(chan struct{}),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("iface", ifname)
	for _, a := range addrs {
		t.self = append(t.self, a.addr)
	}

	if has(IPv4) {
		t.src4 = cfg.Src4.Unmap()
		if t.src4.IsValid() && !slices.ContainsFunc(all, func(a rawAddr) bool { return a.addr == t.src4 }) {
			return nil, fmt.Errorf("carp: RawConfig.Src4 %v is not an address of this host; the kernel would refuse to send from it", t.src4)
		}
		if !t.src4.IsValid() {
			for _, a := range addrs {
				if a.addr.Is4() && a.flags&unix.IFA_F_SECONDARY == 0 {
					t.src4 = a.addr
					break
				}
			}
			if !t.src4.IsValid() {
				return nil, fmt.Errorf("carp: %s has no IPv4 address to send adverts from; add one or set RawConfig.Src4", ifname)
			}
		}
		t.self = append(t.self, t.src4)
		t.setDsts(IPv4, peers4)
	}
	if has(IPv6) {
		var tentative netip.Addr
		for _, a := range addrs {
			if !a.addr.Is6() || !a.addr.IsLinkLocalUnicast() {
				continue
			}
			if a.flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				tentative = a.addr
				continue
			}
			t.src6 = a.addr
			break
		}
		if !t.src6.IsValid() {
			if tentative.IsValid() {
				return nil, fmt.Errorf("carp: %s: link-local address %v is still tentative (duplicate address detection); retry later or set accept_dad=0", ifname, tentative)
			}
			return nil, fmt.Errorf("carp: %s has no IPv6 link-local address to send adverts from", ifname)
		}
		t.setDsts(IPv6, peers6)
	}

	if has(IPv4) {
		var rc syscall.RawConn
		if t.v4, rc, err = rawOpen4(ifi); err != nil {
			return nil, err
		}
		t.rc = append(t.rc, rc)
		t.snd[0] = newRawSender(IPv4, rc, t.src4, t.ifindex)
		t.rcv[0] = newRawReceiver(IPv4, rc)
	}
	if has(IPv6) {
		var rc syscall.RawConn
		if t.v6, rc, err = rawOpen6(ifi); err != nil {
			if t.v4 != nil {
				t.v4.Close()
			}
			return nil, err
		}
		t.rc = append(t.rc, rc)
		t.snd[1] = newRawSender(IPv6, rc, t.src6, t.ifindex)
		t.rcv[1] = newRawReceiver(IPv6, rc)
	}
	if cfg.SendInterface != "" {
		if err := t.openSend(cfg.SendInterface); err != nil {
			t.closeSockets()
			return nil, err
		}
	}
	if t.v4 != nil {
		t.wg.Add(1)
		go t.read(IPv4, 0)
	}
	if t.v6 != nil {
		t.wg.Add(1)
		go t.read(IPv6, 1)
	}
	return t, nil
}

// rawOpen4 opens and configures the IPv4 socket.
func rawOpen4(ifi *net.Interface) (*ipv4.PacketConn, syscall.RawConn, error) {
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		return nil, nil, fmt.Errorf("carp: ipv4 raw socket: %w", err)
	}
	p := ipv4.NewPacketConn(c)
	fail := func(what string, err error) (*ipv4.PacketConn, syscall.RawConn, error) {
		p.Close()
		return nil, nil, fmt.Errorf("carp: ipv4 socket on %s: %s: %w", ifi.Name, what, err)
	}
	rc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		return fail("raw conn", err)
	}
	if err := sockopt.BindToDevice(rc, ifi.Name); err != nil {
		return fail("bind to device", err)
	}
	if err := sockopt.SetMulticastAll(rc, false, false); err != nil {
		return fail("multicast all off", err)
	}
	if err := p.JoinGroup(ifi, &net.IPAddr{IP: rawGroup4().AsSlice()}); err != nil {
		return fail("join 224.0.0.18", err)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fail("multicast interface", err)
	}
	if err := p.SetMulticastTTL(rawTTL); err != nil {
		return fail("multicast TTL", err)
	}
	if err := p.SetTTL(rawTTL); err != nil {
		return fail("TTL", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fail("multicast loopback off", err)
	}
	if err := p.SetTOS(rawTOS); err != nil {
		return fail("TOS", err)
	}
	if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface|ipv4.FlagSrc, true); err != nil {
		return fail("control messages", err)
	}
	return p, rc, nil
}

// rawOpen6 opens and configures the IPv6 socket.
func rawOpen6(ifi *net.Interface) (*ipv6.PacketConn, syscall.RawConn, error) {
	c, err := net.ListenPacket("ip6:112", "::")
	if err != nil {
		return nil, nil, fmt.Errorf("carp: ipv6 raw socket: %w", err)
	}
	p := ipv6.NewPacketConn(c)
	fail := func(what string, err error) (*ipv6.PacketConn, syscall.RawConn, error) {
		p.Close()
		return nil, nil, fmt.Errorf("carp: ipv6 socket on %s: %s: %w", ifi.Name, what, err)
	}
	rc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		return fail("raw conn", err)
	}
	if err := sockopt.BindToDevice(rc, ifi.Name); err != nil {
		return fail("bind to device", err)
	}
	if err := sockopt.SetMulticastAll(rc, true, false); err != nil {
		return fail("multicast all off", err)
	}
	if err := p.JoinGroup(ifi, &net.IPAddr{IP: rawGroup6().AsSlice()}); err != nil {
		return fail("join ff02::12", err)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fail("multicast interface", err)
	}
	if err := p.SetMulticastHopLimit(rawTTL); err != nil {
		return fail("multicast hop limit", err)
	}
	if err := p.SetHopLimit(rawTTL); err != nil {
		return fail("hop limit", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fail("multicast loopback off", err)
	}
	if err := p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return fail("control messages", err)
	}
	return p, rc, nil
}

// rawGroup4 is INADDR_CARP_GROUP, 224.0.0.18 (shared with VRRP).
func rawGroup4() netip.Addr { return netip.AddrFrom4([4]byte{224, 0, 0, 18}) }

// rawGroup6 is ff02::12, the link-local CARP/VRRP group.
func rawGroup6() netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
}

// rawAddr is an interface address with its IFA_F_* flags.
type rawAddr struct {
	addr  netip.Addr
	index int
	flags uint32
}

// rawListAddrs lists the addresses of every interface in netlink dump
// order (per interface, primary addresses first), with their flags, in the
// calling thread's network namespace.
func rawListAddrs() ([]rawAddr, error) {
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := c.Address.List()
	if err != nil {
		return nil, err
	}
	var out []rawAddr
	for _, m := range msgs {
		a, ok := sockopt.AddrOf(&m)
		if !ok {
			continue
		}
		flags := uint32(m.Flags)
		if m.Attributes.Flags != 0 {
			flags = m.Attributes.Flags
		}
		out = append(out, rawAddr{addr: a, index: int(m.Index), flags: flags})
	}
	return out, nil
}

// Families reports the families opened, IPv4 first.
func (t *RawTransport) Families() []Family { return slices.Clone(t.fams) }

// Interface returns the interface name and index the transport is bound to.
func (t *RawTransport) Interface() (name string, index int) { return t.ifname, t.ifindex }

// Source returns the source address adverts of family f are sent from.
func (t *RawTransport) Source(f Family) netip.Addr {
	if f == IPv4 {
		return t.src4
	}
	return t.src6
}

// Destination returns where adverts of family f go: the multicast group or
// the unicast peer.
// With several peers it is the first: a VRRPv3 advert is encoded for it,
// and Send rewrites the checksum for each other peer.
func (t *RawTransport) Destination(f Family) netip.Addr {
	if d := t.dsts[familyIndex(f)].Load(); d != nil {
		return (*d)[0]
	}
	return netip.Addr{}
}

// Stats returns counts of packets dropped by the transport.
func (t *RawTransport) Stats() RawStats {
	return RawStats{OtherInterface: t.wrongIf.Load(), OwnSource: t.ownSrc.Load()}
}

// Send transmits an advert on family f to the group or peer: a 36-byte
// CARP advert, or a VRRPv3 advert of 8 bytes plus its addresses.
func (t *RawTransport) Send(f Family, payload []byte) error {
	if len(payload) != AdvertisementLen && !vrrpShaped(f, payload) {
		return fmt.Errorf("carp: send %v: payload of %d bytes, want %d (CARP) or a VRRPv3 advert",
			f, len(payload), AdvertisementLen)
	}
	select {
	case <-t.closed:
		return fmt.Errorf("carp: send %v: %w", f, net.ErrClosed)
	default:
	}
	if (f == IPv4 && t.v4 == nil) || (f == IPv6 && t.v6 == nil) {
		return fmt.Errorf("carp: send: family %v not configured on %s", f, t.ifname)
	}
	dsts := *t.dsts[familyIndex(f)].Load()
	var errs []error
	for _, dst := range dsts {
		b := payload
		if len(payload) != AdvertisementLen && !dst.IsMulticast() {
			// The VRRP checksum covers the destination: re-sum it
			// for each peer (the group encoded it for Destination
			// as it was at NewGroup).
			b = vrrpRetarget(payload, t.Source(f), dst)
		}
		if err := t.send(f, b, dst); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// send writes one advert to dst, allocating nothing unless it fails. An
// IPv6 destination has no zone: resolving a zone name would look up
// interfaces in the calling thread's namespace, not the socket's; the
// packet info carries the interface index instead.
func (t *RawTransport) send(f Family, payload []byte, dst netip.Addr) error {
	s := t.snd[familyIndex(f)]
	if v := t.via[familyIndex(f)]; v != nil && (f == IPv4 || dst.IsMulticast()) {
		s = v
	}
	if err := s.send(payload, dst); err != nil {
		return fmt.Errorf("carp: send %v to %v on %s: %w", f, dst, t.ifname, err)
	}
	return nil
}

// setDsts sets where adverts of family f go: the peers, or the multicast
// group if there are none.
func (t *RawTransport) setDsts(f Family, peers []netip.Addr) {
	if len(peers) == 0 {
		g := rawGroup4()
		if f == IPv6 {
			g = rawGroup6()
		}
		peers = []netip.Addr{g}
	}
	t.dsts[familyIndex(f)].Store(&peers)
}

// SetPeers replaces the unicast peers of family f while the transport
// runs: the next advert goes to each of peers, or to the multicast group
// if peers is empty. It fails, changing nothing, if the family is not
// open or an address is not a unicast address of the family.
//
// A VRRPv3 advert's checksum covers the destination: Send computes it
// for each peer. Only a VRRPv3 group started with unicast peers cannot go
// back to multicast live (its adverts are encoded for the peer).
func (t *RawTransport) SetPeers(f Family, peers []netip.Addr) error {
	name := "RawConfig.Peers4"
	if f == IPv6 {
		name = "RawConfig.Peers6"
	}
	if !slices.Contains(t.fams, f) {
		return fmt.Errorf("carp: SetPeers: family %v not configured on %s", f, t.ifname)
	}
	p, err := checkPeers(name, f, netip.Addr{}, peers)
	if err != nil {
		return err
	}
	t.setDsts(f, p)
	return nil
}

// checkPeers validates the unicast peers of family f (first, if valid,
// then list) and returns them without duplicates.
func checkPeers(name string, f Family, first netip.Addr, list []netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	if first.IsValid() {
		out = append(out, first.Unmap())
	}
	for i, a := range list {
		ok := a.IsValid() && !a.IsMulticast() && !a.Unmap().IsUnspecified()
		if f == IPv4 {
			ok = ok && a.Unmap().Is4()
		} else {
			ok = ok && a.Is6() && !a.Is4In6()
		}
		if !ok {
			return nil, fmt.Errorf("carp: %s[%d] %v is not an %v unicast address", name, i, a, f)
		}
		if f == IPv4 {
			a = a.Unmap()
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Receive returns the next packet from either family. Errors other than
// one wrapping net.ErrClosed concern a single read; Receive may be called
// again.
func (t *RawTransport) Receive() (Packet, error) {
	select {
	case p := <-t.pkts:
		t.held.Add(-1)
		return p, nil
	case err := <-t.errs:
		return Packet{}, err
	case <-t.closed:
		return Packet{}, fmt.Errorf("carp: receive on %s: %w", t.ifname, net.ErrClosed)
	}
}

// Close closes the sockets, unblocks Receive and waits for the reader
// goroutines. It is idempotent.
func (t *RawTransport) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		errs := t.closeSockets()
		t.wg.Wait()
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// closeSockets closes every socket of the transport.
func (t *RawTransport) closeSockets() []error {
	var errs []error
	if t.v4 != nil {
		if err := t.v4.Close(); err != nil {
			errs = append(errs, fmt.Errorf("carp: close ipv4 socket: %w", err))
		}
	}
	if t.v6 != nil {
		if err := t.v6.Close(); err != nil {
			errs = append(errs, fmt.Errorf("carp: close ipv6 socket: %w", err))
		}
	}
	for _, c := range t.out {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("carp: close send socket: %w", err))
		}
	}
	return errs
}

// read reads packets of family f (index i) until the transport closes.
func (t *RawTransport) read(f Family, i int) {
	defer t.wg.Done()
	r := t.rcv[i]
	for {
		p, payload, err := r.next()
		if err != nil {
			if !t.readErr(f, err) {
				return
			}
			continue
		}
		if !t.deliver(p, payload, r) {
			return
		}
	}
}

// readErr hands a read error to Receive. It returns false when the
// transport is closed and the reader must stop.
func (t *RawTransport) readErr(f Family, err error) bool {
	select {
	case <-t.closed:
		return false
	default:
	}
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	select {
	case t.errs <- fmt.Errorf("carp: receive %v on %s: %w", f, t.ifname, err):
		return true
	case <-t.closed:
		return false
	}
}

// deliver filters p and hands it to Receive with a private copy of the
// payload. It returns false when the transport is closed.
func (t *RawTransport) deliver(p Packet, payload []byte, r *rawReceiver) bool {
	if p.IfIndex != 0 && p.IfIndex != t.ifindex {
		t.wrongIf.Add(1)
		t.log.Debug("carp: dropped packet from another interface", "family", p.Family, "src", p.Src, "ifindex", p.IfIndex)
		return true
	}
	if slices.Contains(t.self, p.Src) {
		t.ownSrc.Add(1)
		t.log.Debug("carp: dropped own packet", "family", p.Family, "src", p.Src)
		return true
	}
	p.Payload = r.keep(payload)
	t.held.Add(1) // Receive takes it off
	select {
	case t.pkts <- p:
		return true
	case <-t.closed:
		t.held.Add(-1)
		return false
	}
}

// Pending reports whether packets have been received that Receive has not
// returned yet: queued in a socket or held by a reader goroutine. It
// implements [PendingReporter].
func (t *RawTransport) Pending() bool {
	if t.held.Load() > 0 {
		return true
	}
	for _, rc := range t.rc {
		// A failed query (a closed socket) says nothing is known to
		// wait: the group then takes over as it would without Pending.
		if n, err := sockopt.Queued(rc); err == nil && n > 0 {
			return true
		}
	}
	return false
}

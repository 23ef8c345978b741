package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// AnnouncerConfig holds the optional settings of a PacketAnnouncer. A nil
// *AnnouncerConfig means all defaults.
type AnnouncerConfig struct {
	// HardwareAddr is the MAC announced for the addresses and used as the
	// Ethernet source: the interface's own MAC, or CARP's virtual MAC
	// (VirtualMAC.HardwareAddr) when the addresses live on a macvlan. Nil
	// means the interface's MAC.
	HardwareAddr net.HardwareAddr

	// Router sets the Router flag of Neighbor Advertisements. OpenBSD sets
	// it when the node forwards IPv6 (net.inet6.ip6.forwarding=1); a router
	// that omits it makes hosts drop it from their default-router lists
	// (RFC 4861 §7.2.5).
	Router bool

	// Source is the IPv6 source address of Neighbor Advertisements. The zero
	// value means the interface's link-local address, looked up when the
	// announcer is created and again while none is known; when the
	// interface has none (IPv6 link-local generation disabled), the
	// announced address itself is used, which Linux accepts.
	Source netip.Addr

	// Logger receives a warning when the link-local lookup fails. Nil
	// discards.
	Logger *slog.Logger
}

// AnnouncerStats counts what a PacketAnnouncer sent.
type AnnouncerStats struct {
	GratuitousARPs  uint64 // ARP frames written (a request and a reply per IPv4 address and round)
	NeighborAdverts uint64 // NA frames written (one per IPv6 address and round)
	Errors          uint64 // frames that could not be built or written
}

// PacketAnnouncer is the Linux Announcer: it writes complete Ethernet frames
// on AF_PACKET sockets bound to one interface.
//
// Why AF_PACKET for both families rather than arp.Dial and ndp.Listen:
// arp.Dial fails on an interface without an IPv4 address, which is the
// normal state of a CARP backup whose only IPv4 address is the VIP
// (mdlayher/arp#30); ndp.Listen binds to the link-local address and fails
// while it is tentative, for about 2 s after a macvlan is created. A frame
// built here (ARP via mdlayher/arp's Packet codec, NA via ndp's
// MarshalMessageChecksum) goes out as soon as the link is up, and the write
// is a single system call with no route or neighbour lookup, which keeps the
// first announcement within a millisecond of promotion.
//
// The sockets carry a BPF filter that accepts nothing, attached before bind,
// so they never queue received traffic.
type PacketAnnouncer struct {
	ifi    *net.Interface
	mac    net.HardwareAddr
	router bool
	arp    net.PacketConn // frames of EtherType 0x0806
	ip6    net.PacketConn // frames of EtherType 0x86dd
	lookup func() (netip.Addr, error)
	log    *slog.Logger

	mu  sync.Mutex
	src netip.Addr // IPv6 source of NAs; invalid while unknown
	fix bool       // src came from the config

	garps, nas, errs atomic.Uint64
	closeOnce        sync.Once
	closeErr         error
}

var _ Announcer = (*PacketAnnouncer)(nil)

// newPacketAnnouncer builds an announcer on already open conns; the Linux
// constructor and the tests (with recording conns) share it. lookup returns
// the interface's link-local address, or an invalid Addr when it has none.
func newPacketAnnouncer(ifi *net.Interface, arpConn, ip6Conn net.PacketConn, lookup func() (netip.Addr, error), cfg *AnnouncerConfig) (*PacketAnnouncer, error) {
	if cfg == nil {
		cfg = &AnnouncerConfig{}
	}
	mac := cfg.HardwareAddr
	if mac == nil {
		mac = ifi.HardwareAddr
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("vip: announcer on %s: AnnouncerConfig.HardwareAddr (or the interface's) %q is not a 6-byte Ethernet MAC", ifi.Name, mac)
	}
	if cfg.Source.IsValid() && (!cfg.Source.Is6() || cfg.Source.Is4In6()) {
		return nil, fmt.Errorf("vip: announcer on %s: AnnouncerConfig.Source %v is not an IPv6 address", ifi.Name, cfg.Source)
	}
	a := &PacketAnnouncer{
		ifi:    ifi,
		mac:    append(net.HardwareAddr(nil), mac...),
		router: cfg.Router,
		arp:    arpConn,
		ip6:    ip6Conn,
		lookup: lookup,
		src:    cfg.Source.WithZone(""),
		fix:    cfg.Source.IsValid(),
		log:    orDiscard(cfg.Logger),
	}
	if !a.fix {
		// Best effort now; Announce retries while no link-local is known.
		a.src = a.lookupSource()
	}
	return a, nil
}

// HardwareAddr returns the MAC this announcer announces.
func (a *PacketAnnouncer) HardwareAddr() net.HardwareAddr { return a.mac }

// Announce sends one round for addrs: a gratuitous ARP request and reply per
// IPv4 address, an unsolicited Neighbor Advertisement per IPv6 address. See
// the Announcer contract.
func (a *PacketAnnouncer) Announce(addrs []netip.Addr) error {
	var errs []error
	fail := func(addr netip.Addr, what string, err error) {
		a.errs.Add(1)
		errs = append(errs, fmt.Errorf("vip: announce %v on %s: %s: %w", addr, a.ifi.Name, what, err))
	}
	for _, addr := range addrs {
		switch {
		case addr.Is4():
			for _, op := range [...]arp.Operation{arp.OperationRequest, arp.OperationReply} {
				f, err := garpFrame(op, a.mac, addr)
				if err != nil {
					fail(addr, "gratuitous ARP", err)
					continue
				}
				if _, err := a.arp.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
					fail(addr, "gratuitous ARP "+opName(op), err)
					continue
				}
				a.garps.Add(1)
			}
		case addr.Is6() && !addr.Is4In6():
			f, err := naFrame(a.mac, a.source(addr), addr, a.router)
			if err != nil {
				fail(addr, "neighbor advertisement", err)
				continue
			}
			if _, err := a.ip6.WriteTo(f, &packet.Addr{HardwareAddr: allNodesMAC}); err != nil {
				fail(addr, "neighbor advertisement", err)
				continue
			}
			a.nas.Add(1)
		default:
			fail(addr, "address", errors.New("not an IPv4 or IPv6 address"))
		}
	}
	return errors.Join(errs...)
}

// opName names the two forms of gratuitous ARP in errors.
func opName(op arp.Operation) string {
	if op == arp.OperationReply {
		return "reply"
	}
	return "request"
}

// source returns the IPv6 source of an NA for target.
func (a *PacketAnnouncer) source(target netip.Addr) netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.src.IsValid() && !a.fix {
		a.src = a.lookupSource()
	}
	if a.src.IsValid() {
		return a.src
	}
	return target
}

// lookupSource returns the link-local address, or an invalid Addr (and
// logs why) when there is none.
func (a *PacketAnnouncer) lookupSource() netip.Addr {
	ll, err := a.lookup()
	if err != nil {
		a.log.Warn("vip: no link-local source for neighbor advertisements; using the announced address", "iface", a.ifi.Name, "err", err)
		return netip.Addr{}
	}
	return ll
}

// Stats returns the counters.
func (a *PacketAnnouncer) Stats() AnnouncerStats {
	return AnnouncerStats{
		GratuitousARPs:  a.garps.Load(),
		NeighborAdverts: a.nas.Load(),
		Errors:          a.errs.Load(),
	}
}

// Close closes the sockets. It is idempotent; Announce fails afterwards.
func (a *PacketAnnouncer) Close() error {
	a.closeOnce.Do(func() {
		err := errors.Join(a.arp.Close(), a.ip6.Close())
		if err != nil {
			a.closeErr = fmt.Errorf("vip: close announcer on %s: %w", a.ifi.Name, err)
		}
	})
	return a.closeErr
}

// linkLocal returns the first IPv6 link-local address of ifi, or an
// invalid Addr when it has none.
func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	as, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vip: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, nil
}

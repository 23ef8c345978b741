package vip

import (
	"fmt"
	"net"
	"net/netip"
)

// AddrManager adds and removes addresses on one network interface.
//
// The Linux implementation is NetlinkManager; package viptest provides a
// recording fake for embedders' tests.
//
// Contract:
//   - Add installs p on the interface. Adding an address that is already
//     there is not an error. IPv6 addresses are added without duplicate
//     address detection (IFA_F_NODAD), so they are usable at once instead of
//     "tentative" for a second (docs/interop.md, "Host sysctls").
//   - Remove deletes p. Removing an address that is already gone is not an
//     error.
//   - List returns every address currently on the interface, of both
//     families, link-local ones included. A list may be momentarily stale
//     (an interrupted netlink dump is not reported by the kernel API we use),
//     so callers must treat it as a hint and list again on the next pass.
//   - Changes returns a channel that receives a value after the interface's
//     addresses may have changed. One value may stand for many changes, and
//     spurious values are allowed. It returns nil when the manager cannot
//     notify; callers then rely on periodic passes alone.
//   - Errors name the interface and the address.
//
// All methods may be called concurrently.
type AddrManager interface {
	Add(p netip.Prefix) error
	Remove(p netip.Prefix) error
	List() ([]netip.Prefix, error)
	Changes() <-chan struct{}
}

// Announcer tells the neighbours of one interface that this node now owns
// some addresses.
//
// The Linux implementation is PacketAnnouncer; package viptest provides a
// recording fake.
//
// Contract:
//   - Announce sends one round of announcements, immediately and without
//     waiting for anything: for each IPv4 address a gratuitous ARP request
//     and a gratuitous ARP reply, for each IPv6 address an unsolicited
//     Neighbor Advertisement with the Override flag. The schedule of rounds
//     (repeats, refresh) is the caller's job.
//   - It returns every failure (errors.Join), each naming the interface and
//     the address; a failure for one address does not stop the others.
//
// Announce may be called concurrently.
type Announcer interface {
	Announce(addrs []netip.Addr) error
}

// VIP is one virtual address and the prefix length it is installed with.
//
// The zero Bits means "choose": if the interface already carries an
// address of the same family whose subnet contains Addr, the VIP takes that
// subnet's prefix length (so it becomes a secondary address of the on-link
// subnet, as an OpenBSD carp interface's address does, and the kernel's
// source-address selection and connected route behave as for any address of
// that subnet); otherwise it is a host address, /32 or /128 (as Talos and
// kube-vip install VIPs). The choice is made from the addresses seen on the
// latest reconciliation pass before promotion.
type VIP struct {
	Addr netip.Addr
	Bits int
}

// String returns "addr/bits", or just the address when Bits is zero.
func (v VIP) String() string {
	if v.Bits == 0 {
		return v.Addr.String()
	}
	return fmt.Sprintf("%s/%d", v.Addr, v.Bits)
}

// Host returns the VIPs for addrs with the default (zero) prefix length.
// It fits carp.Config.Addrs.
func Host(addrs ...netip.Addr) []VIP {
	vs := make([]VIP, len(addrs))
	for i, a := range addrs {
		vs[i] = VIP{Addr: a}
	}
	return vs
}

// validate checks one VIP, named field in errors ("Config.Addrs[0]"); it
// is a config error otherwise.
func (v VIP) validate(field string) error {
	a := v.Addr
	switch {
	case !a.IsValid():
		return fmt.Errorf("vip: %s.Addr %v is not a valid IP address", field, a)
	case a.Is4In6():
		return fmt.Errorf("vip: %s.Addr %v is IPv4-mapped IPv6; use the plain IPv4 form", field, a)
	case a.Zone() != "":
		return fmt.Errorf("vip: %s.Addr %v has a zone; the interface is given separately", field, a)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return fmt.Errorf("vip: %s.Addr %v is not a unicast address", field, a)
	case v.Bits < 0 || v.Bits > a.BitLen():
		return fmt.Errorf("vip: %s.Bits %d out of range 0-%d (prefix length of %v)", field, v.Bits, a.BitLen(), a)
	}
	return nil
}

// resolve returns the prefix v is installed with, given the addresses
// currently on the interface (see VIP).
func (v VIP) resolve(onIf []netip.Prefix) netip.Prefix {
	if v.Bits != 0 {
		return netip.PrefixFrom(v.Addr, v.Bits)
	}
	for _, p := range onIf {
		// A prefix that is the VIP itself says nothing about the subnet, and a
		// host route (/32, /128) has no on-link subnet.
		if p.Addr() == v.Addr || p.Bits() == p.Addr().BitLen() {
			continue
		}
		if p.Addr().Is4() == v.Addr.Is4() && p.Contains(v.Addr) {
			return netip.PrefixFrom(v.Addr, p.Bits())
		}
	}
	return netip.PrefixFrom(v.Addr, v.Addr.BitLen())
}

// VirtualMACAddr returns CARP's virtual MAC for vhid, 00:00:5e:00:01:<vhid>,
// for both IPv4 and IPv6 (OpenBSD and FreeBSD carp(4); CARP does not use
// VRRPv3's 00:00:5e:00:02 prefix for IPv6). A CARP vhid and a VRRP VRID with
// the same number on one LAN therefore share a MAC. For a VRRPv3 group use
// [VRRPVirtualMACAddr].
func VirtualMACAddr(vhid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vhid}
}

// VRRPVirtualMACAddr returns VRRP's virtual MAC for vrid in one address
// family: 00:00:5e:00:01:<vrid> for IPv4 and 00:00:5e:00:02:<vrid> for IPv6
// (RFC 5798 section 7.3). A VRRP router is one instance per family, so an
// IPv4 and an IPv6 router with the same VRID have different MACs; a
// dual-stack group that wants virtual MACs needs one [VirtualMAC] link per
// family.
func VRRPVirtualMACAddr(vrid uint8, ipv6 bool) net.HardwareAddr {
	if ipv6 {
		return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, vrid}
	}
	return VirtualMACAddr(vrid)
}

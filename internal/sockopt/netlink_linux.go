package sockopt

import (
	"net/netip"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// AddrOf returns the interface's own address in an RTM_NEWADDR message, as
// carp (choosing advert sources) and vip (reconciling VIPs) both read
// address dumps. For IPv4 that is IFA_LOCAL, since IFA_ADDRESS is the peer
// on point-to-point links; IPv6 reports only IFA_ADDRESS unless
// point-to-point. IPv4 addresses are returned unmapped. ok is false when
// the message carries no usable address.
func AddrOf(m *rtnetlink.AddressMessage) (a netip.Addr, ok bool) {
	if m.Attributes == nil {
		return netip.Addr{}, false
	}
	ip := m.Attributes.Local
	if ip == nil {
		ip = m.Attributes.Address
	}
	a, ok = netip.AddrFromSlice(ip)
	if ok && m.Family == unix.AF_INET {
		a = a.Unmap()
	}
	return a, ok
}

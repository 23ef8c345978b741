//go:build linux

package vip

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

func TestAddrMessage(t *testing.T) {
	tests := []struct {
		p    string
		want rtnetlink.AddressMessage
	}{
		{"192.0.2.10/32", rtnetlink.AddressMessage{
			Family: unix.AF_INET, PrefixLength: 32, Index: 3, Scope: unix.RT_SCOPE_UNIVERSE,
			// IFA_LOCAL too: deletion matches on it.
			Attributes: &rtnetlink.AddressAttributes{Address: net.IP{192, 0, 2, 10}, Local: net.IP{192, 0, 2, 10}},
		}},
		{"2001:db8::10/128", rtnetlink.AddressMessage{
			Family: unix.AF_INET6, PrefixLength: 128, Index: 3, Scope: unix.RT_SCOPE_UNIVERSE,
			Flags:      unix.IFA_F_NODAD,
			Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("2001:db8::10"), Flags: unix.IFA_F_NODAD},
		}},
		{"fe80::10/64", rtnetlink.AddressMessage{
			Family: unix.AF_INET6, PrefixLength: 64, Index: 3, Scope: unix.RT_SCOPE_LINK,
			Flags:      unix.IFA_F_NODAD,
			Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("fe80::10"), Flags: unix.IFA_F_NODAD},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.p, func(t *testing.T) {
			got := addrMessage(3, netip.MustParsePrefix(tt.p))
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPrefixesOf(t *testing.T) {
	msgs := []rtnetlink.AddressMessage{
		{Family: unix.AF_INET, PrefixLength: 24, Index: 3, Attributes: &rtnetlink.AddressAttributes{Address: net.IP{192, 0, 2, 1}, Local: net.IP{192, 0, 2, 1}}},
		// Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
		{Family: unix.AF_INET, PrefixLength: 32, Index: 3, Attributes: &rtnetlink.AddressAttributes{Address: net.IP{10, 0, 0, 2}, Local: net.IP{10, 0, 0, 1}}},
		{Family: unix.AF_INET6, PrefixLength: 64, Index: 3, Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("fe80::1")}},
		{Family: unix.AF_INET, PrefixLength: 8, Index: 1, Attributes: &rtnetlink.AddressAttributes{Local: net.IP{127, 0, 0, 1}}},            // another interface
		{Family: unix.AF_INET6, PrefixLength: 200, Index: 3, Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("2001:db8::1")}}, // nonsense length
		{Family: unix.AF_INET, Index: 3}, // no attributes
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("fe80::1/64")}
	if diff := cmp.Diff(want, prefixesOf(msgs, 3), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
}

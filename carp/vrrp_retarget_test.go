package carp

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestVRRPRetarget checks that an advert encoded for one peer and
// retargeted to another is exactly the advert encoded for the other.
func TestVRRPRetarget(t *testing.T) {
	for _, tc := range []struct{ src, dst1, dst2, vip string }{
		{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.254"},
		{"fe80::1", "2001:db8::2", "2001:db8::3", "2001:db8::254"},
	} {
		src, d1, d2 := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst1), netip.MustParseAddr(tc.dst2)
		a := VRRPAdvertisement{VRID: 7, Priority: 150, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr(tc.vip)}}
		b1, err := a.Append(nil, src, d1)
		if err != nil {
			t.Fatal(err)
		}
		want, err := a.Append(nil, src, d2)
		if err != nil {
			t.Fatal(err)
		}
		got := vrrpRetarget(b1, src, d2)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: retargeted advert (-want +got):\n%s", tc.dst2, diff)
		}
		var back VRRPAdvertisement
		if err := back.Unmarshal(got, src, d2); err != nil {
			t.Errorf("%s: %v", tc.dst2, err)
		}
	}
}

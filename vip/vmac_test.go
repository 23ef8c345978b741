package vip_test

import (
	"testing"

	"github.com/gocarp/gocarp/vip"
)

// TestVirtualMACAddrs: CARP uses the IPv4 prefix for both families; VRRP
// (RFC 5798) has one prefix per family.
func TestVirtualMACAddrs(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"CARP", vip.VirtualMACAddr(10).String(), "00:00:5e:00:01:0a"},
		{"VRRP IPv4", vip.VRRPVirtualMACAddr(10, false).String(), "00:00:5e:00:01:0a"},
		{"VRRP IPv6", vip.VRRPVirtualMACAddr(10, true).String(), "00:00:5e:00:02:0a"},
		{"VRRP IPv6 VRID 255", vip.VRRPVirtualMACAddr(255, true).String(), "00:00:5e:00:02:ff"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, tc.got, tc.want)
		}
	}
}

package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGroupPeers(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(edit(t, func(m map[string]any) {
		group(m)["addresses"] = []string{"10.1.0.254", "fd00::254"}
		group(m)["peers"] = []string{"10.1.0.2", "fd00::2", "10.1.0.3"}
	})))
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := groupPeers(c.Groups[0])
	want4 := []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.1.0.3")}
	want6 := []netip.Addr{netip.MustParseAddr("fd00::2")}
	if diff := cmp.Diff(want4, v4, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("IPv4 peers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want6, v6, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("IPv6 peers (-want +got):\n%s", diff)
	}
}

func TestGroupPeersErrors(t *testing.T) {
	tests := []struct {
		name  string
		peers []string
		want  string
	}{
		{"multicast", []string{"224.0.0.18"}, "groups[0].peers[0] 224.0.0.18 is not a unicast address"},
		{"twice", []string{"10.1.0.2", "10.1.0.2"}, "groups[0].peers[1] 10.1.0.2 listed twice"},
		{"family without address", []string{"fd00::2"}, "groups[0].peers[0] fd00::2: no address of its family in groups[0].addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(edit(t, func(m map[string]any) { group(m)["peers"] = tt.peers })))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

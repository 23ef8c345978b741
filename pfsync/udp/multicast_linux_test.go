package udp

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/pfsync"
)

func TestMulticastConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  MulticastConfig
		want string
	}{
		{"no interface", MulticastConfig{}, "udp: MulticastConfig.Interface is empty, want the sync interface"},
		{"unicast group", MulticastConfig{Interface: "lo", Group: netip.MustParseAddr("10.0.0.1")}, "udp: MulticastConfig.Group 10.0.0.1 is not a multicast address (without zone)"},
		{"mtu", MulticastConfig{Interface: "lo", Group: netip.MustParseAddr(DefaultGroup6), MTU: 65528}, "udp: MulticastConfig.MTU 65528 out of range 64-65527 (0 means 1452)"},
		{"missing interface", MulticastConfig{Interface: "gsu-nonexistent"}, "udp: MulticastConfig.Interface \"gsu-nonexistent\": route ip+net: no such network interface"},
		{"peer family", MulticastConfig{Interface: "lo", Peers: map[pfsync.NodeID]netip.Addr{2: netip.MustParseAddr("fe80::2")}},
			"udp: MulticastConfig.Peers[2] fe80::2 is not of the family of MulticastConfig.Group 224.0.0.240"},
		{"peer zero", MulticastConfig{Interface: "lo", Peers: map[pfsync.NodeID]netip.Addr{0: netip.MustParseAddr("10.0.0.2")}},
			"udp: MulticastConfig.Peers node id 0 (10.0.0.2) out of range 1-4294967295"},
		{"source family", MulticastConfig{Interface: "lo", Sources: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}},
			"udp: MulticastConfig.Sources[0] fd00::/8 is not an IPv4 prefix (the family of MulticastConfig.Group)"},
		{"source invalid", MulticastConfig{Interface: "lo", Group: netip.MustParseAddr(DefaultGroup6), Sources: []netip.Prefix{{}}},
			"udp: MulticastConfig.Sources[0] invalid Prefix is not an IPv6 prefix (the family of MulticastConfig.Group)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMulticast(tt.cfg)
			if err == nil {
				m.Close()
				t.Fatal("NewMulticast succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetnsMulticastClose: Close unblocks a blocked Receive with
// net.ErrClosed and is idempotent.
func TestNetnsMulticastClose(t *testing.T) {
	f := families()[0]
	_, nsB := twoNodes(t, f)
	m := multicastIn(t, nsB, f, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := m.Receive()
		errc <- err
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "udp: receive: ") {
		t.Fatalf("Receive = %v, want a udp error wrapping net.ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.Send(pfsync.Broadcast, []byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
}

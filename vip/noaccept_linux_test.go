package vip_test

import (
	"net"
	"net/netip"
	"regexp"
	"testing"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/vip"
)

// TestIntegrationNoAccept: with the no-accept rule a master holding the
// virtual addresses still resolves them for its neighbours (ARP, Neighbor
// Discovery) but drops what is addressed to them; Close lets them through.
func TestIntegrationNoAccept(t *testing.T) {
	netns.RequireBinary(t, "ping")
	netns.RequireBinary(t, "nft")
	l := newLAN(t, false)
	v4, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	l.a.IP("addr", "add", v4.String()+"/32", "dev", "eth0")
	l.a.IP("addr", "add", v6.String()+"/128", "dev", "eth0", "nodad")
	var n *vip.NoAccept
	var mac string
	inNS(t, l.a, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr.String()
		n, err = vip.NewNoAccept(10, []netip.Addr{v4, v6}, nil)
		return err
	})
	closed := false
	t.Cleanup(func() {
		if !closed {
			inNS(t, l.a, n.Close)
		}
	})

	for _, v := range []netip.Addr{v4, v6} {
		if out, err := l.c.Output("ping", "-c", "1", "-W", "1", v.String()); err == nil {
			t.Errorf("ping %v answered with the no-accept rule in place:\n%s", v, out)
		}
		// The neighbour was resolved all the same.
		if got := neighMAC(t, l.c, v); got != mac {
			t.Errorf("client's entry for %v: %q; want the master's %s", v, got, mac)
		}
	}
	// Both drops were counted, in the table named for the vhid.
	out := l.a.Run("nft", "list", "table", "inet", "gocarp_noaccept_10")
	if got := regexp.MustCompile(`counter packets [1-9]`).FindAllString(out, -1); len(got) != 2 {
		t.Errorf("want two drop counters above 0:\n%s", out)
	}

	// A changed set: IPv4 accepted again, IPv6 still dropped.
	inNS(t, l.a, func() error { return n.SetAddresses([]netip.Addr{v6}) })
	l.c.Run("ping", "-c", "1", "-W", "2", v4.String())
	if out, err := l.c.Output("ping", "-c", "1", "-W", "1", v6.String()); err == nil {
		t.Errorf("ping %v answered after SetAddresses kept it:\n%s", v6, out)
	}

	inNS(t, l.a, n.Close)
	closed = true
	l.c.Run("ping", "-c", "1", "-W", "2", v6.String())
	if out, err := l.a.Output("nft", "list", "table", "inet", "gocarp_noaccept_10"); err == nil {
		t.Errorf("table still there after Close:\n%s", out)
	}
}

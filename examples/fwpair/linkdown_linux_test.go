package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
)

// TestLinkDownRouteIgnored: while a firewall's WAN link has no carrier,
// a client's packet for the server finds no route there (and is dropped
// at once) instead of taking the route through the dead link, where it
// would wait for the next hop's resolution and arrive after the link came
// back, behind newer packets that went through the peer. The lab's hosts
// are set up as docs/interop.md ("Host sysctls") asks of a firewall.
func TestLinkDownRouteIgnored(t *testing.T) {
	l := fwbench.NewLab(t, "lkd")
	fw := l.FW[1]
	route := func(dst, src netip.Addr) (string, error) {
		return fw.Output("ip", "route", "get", dst.String(), "from", src.String(), "iif", fwbench.LANIf)
	}
	families := []struct{ dst, src netip.Addr }{
		{fwbench.ServerAddr, fwbench.ClientAddr},
		{fwbench.ServerAddr6, fwbench.ClientAddr6},
	}
	for _, f := range families {
		if out, err := route(f.dst, f.src); err != nil {
			t.Fatalf("route to %v with the WAN link up: %v %s", f.dst, err, out)
		}
	}
	l.Switch().SetLink(l.WANPort[1], false) // fw1's wan0 loses carrier
	for _, f := range families {
		out, err := route(f.dst, f.src)
		if err == nil || !strings.Contains(out, "unreachable") {
			t.Errorf("route to %v through a WAN link without carrier = %v %q, want it unreachable", f.dst, err, out)
		}
	}
	l.Switch().SetLink(l.WANPort[1], true)
	fw.WaitReady(fwbench.WANIf)
	for _, f := range families {
		if out, err := route(f.dst, f.src); err != nil {
			t.Errorf("route to %v with the WAN link back: %v %s", f.dst, err, out)
		}
	}
}

package carp_test

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/packet"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// TestRawTransportSendInterface: with RawConfig.SendInterface naming a
// macvlan that carries the virtual MAC, adverts leave with the virtual MAC
// as Ethernet source and the parent's addresses as IP source (the IPv6 one
// the parent's link-local address, which the macvlan does not carry), to
// the multicast group or to a unicast peer, and the peer's transport
// accepts them. Receiving stays on the parent.
func TestRawTransportSendInterface(t *testing.T) {
	for _, fam := range rawFamilies() {
		for _, unicast := range []bool{false, true} {
			name := fam.name
			if unicast {
				name += "/unicast"
			}
			t.Run(name, func(t *testing.T) { testRawSendInterface(t, fam.fam, unicast) })
		}
	}
}

func testRawSendInterface(t *testing.T, f carp.Family, unicast bool) {
	_, nodes := rawLAN(t, "a", "b")
	a, b := nodes[0], nodes[1]
	mac := net.HardwareAddr{0, 0, 0x5e, 0, 1, 7}
	etype, src, peer := 0x0800, a.v4, b.v4
	if f == carp.IPv6 {
		mac[4], etype, src, peer = 2, 0x86dd, a.ll, b.v6
	}
	want := mac
	if unicast && f == carp.IPv6 {
		want = a.mac(t)
	}
	a.ns.IP("link", "add", "vm7", "link", a.ifname, "address", mac.String(), "type", "macvlan", "mode", "bridge")
	a.ns.SetSysctls(map[string]string{"net/ipv6/conf/vm7/addr_gen_mode": "1"})
	a.ns.IP("link", "set", "vm7", "up")

	var sniff *packet.Conn
	err := b.ns.Do(func() error {
		ifi, err := net.InterfaceByName(b.ifname)
		if err != nil {
			return err
		}
		sniff, err = packet.Listen(ifi, packet.Raw, etype, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sniff.Close()

	cfg := &carp.RawConfig{Families: []carp.Family{f}, SendInterface: "vm7"}
	if unicast && f == carp.IPv4 {
		cfg.Peers4 = []netip.Addr{peer}
	} else if unicast {
		cfg.Peers6 = []netip.Addr{peer}
	}
	ta := rawOpen(t, a.ns, a.ifname, cfg)
	tb := rawOpen(t, b.ns, b.ifname, &carp.RawConfig{Families: []carp.Family{f}})
	if err := ta.Send(f, rawPayload(t, 7, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if p := tb.next(t, nil); p.Src != src {
		t.Errorf("b got an advert from %v, want %v", p.Src, src)
	}

	// The frame on b's wire: IP protocol / next header 112.
	got, err := netns.AdvertSourceMAC(sniff, rawWait)
	if err != nil {
		t.Fatalf("on b: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("advert frame from MAC %v, want %v (virtual MAC %v)", got, want, mac)
	}
}

// TestRawTransportSendInterfaceMissing: an unknown send interface is a
// configuration error naming the field.
func TestRawTransportSendInterfaceMissing(t *testing.T) {
	_, nodes := rawLAN(t, "a")
	a := nodes[0]
	err := a.ns.Do(func() error {
		tr, err := carp.NewRawTransport(a.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}, SendInterface: "nosuch7"})
		if err == nil {
			tr.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "RawConfig.SendInterface") {
		t.Errorf("NewRawTransport with a missing send interface: %v, want an error naming RawConfig.SendInterface", err)
	}
}

// mac returns the MAC address of the node's interface.
func (n *rawNode) mac(t testing.TB) net.HardwareAddr {
	t.Helper()
	var hw net.HardwareAddr
	err := n.ns.Do(func() error {
		ifi, err := net.InterfaceByName(n.ifname)
		if err == nil {
			hw = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

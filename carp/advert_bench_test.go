package carp

import (
	"net/netip"
	"testing"
)

// BenchmarkAdvertise measures building and signing one advert and handing
// it to the transport, as a MASTER's advert timer does, without the
// transport's own cost (BenchmarkRawSend has it).
func BenchmarkAdvertise(b *testing.B) {
	vips := []netip.Addr{netip.MustParseAddr("10.0.0.254")}
	g, err := NewGroup(Config{VHID: 1, ZeroAdvBase: true, AdvSkew: 26, Password: []byte("secret"), Addrs: vips, Transport: nullTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	r := &run{g: g, state: Master, linkUp: true, counter: 1 << 40}
	b.ReportAllocs()
	for b.Loop() {
		r.advertise(0, 26)
	}
}

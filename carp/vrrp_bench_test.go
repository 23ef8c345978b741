package carp

import (
	"net/netip"
	"testing"
)

// addrTransport is nullTransport that reports its addresses, as VRRPv3
// needs.
type addrTransport struct{ nullTransport }

func (addrTransport) Source(Family) netip.Addr      { return netip.MustParseAddr("192.0.2.2") }
func (addrTransport) Destination(Family) netip.Addr { return netip.MustParseAddr("224.0.0.18") }

// BenchmarkReceiveVRRP measures the VRRPv3 advert receive path of the
// protocol loop (checks, checksum, address list, state machine) of a backup
// hearing its master, without the transport.
func BenchmarkReceiveVRRP(b *testing.B) {
	vips := []netip.Addr{netip.MustParseAddr("10.0.0.254")}
	g, err := NewGroup(Config{VHID: 1, Protocol: ProtocolVRRPv3, Addrs: vips, Transport: addrTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	r := &run{g: g, state: Backup, linkUp: true}
	b.Cleanup(r.stopTimers)
	r.startDown()
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("224.0.0.18")
	a := VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: vips}
	payload, err := a.Append(nil, src, dst)
	if err != nil {
		b.Fatal(err)
	}
	p := Packet{Family: IPv4, Payload: payload, Src: src, Dst: dst, TTL: 255}
	b.ReportAllocs()
	for b.Loop() {
		r.receive(p)
	}
	if r.state != Backup || g.st.badauth.Load() != 0 {
		b.Fatalf("state %v, badauth %d; want BACKUP and 0", r.state, g.st.badauth.Load())
	}
}

package udp

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/pfsync"
)

// TestUnicastSetPeers: a peer removed at run time is no longer sent to and
// its datagrams are dropped; added back, it is both again. Ordering on
// loopback is causal: a datagram sent before another one that was sent in
// answer to it is queued first, so "the next datagram is the marker"
// proves the one before it was not delivered.
//
// Each node has its own address, so that the removed peer's datagrams are
// not taken for those of the one peer left on a shared address.
func TestUnicastSetPeers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs the whole of 127.0.0.0/8 on loopback (Linux)")
	}
	var aps []netip.AddrPort
	for i := range 3 {
		addr := netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
		aps = append(aps, netip.AddrPortFrom(addr, freePorts(t, addr, 1)[0]))
	}
	var trs []*Unicast
	for i := range aps {
		peers := map[pfsync.NodeID]netip.AddrPort{}
		for j, ap := range aps {
			if j != i {
				peers[pfsync.NodeID(j+1)] = ap
			}
		}
		u, err := NewUnicast(UnicastConfig{Local: aps[i], Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, u)
	}
	a, b, c := trs[0], trs[1], trs[2]
	ra, rb, rc := startReceiver(t, a), startReceiver(t, b), startReceiver(t, c)
	all := a.Peers()

	only2 := map[pfsync.NodeID]netip.AddrPort{2: b.LocalAddr()}
	if err := a.SetPeers(only2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(only2, a.Peers(), cmpAddrPort()); diff != "" {
		t.Errorf("Peers (-want +got):\n%s", diff)
	}
	if err := a.Send(3, []byte("x")); err == nil {
		t.Error("Send to the removed peer succeeded")
	}
	if err := a.Send(pfsync.Broadcast, []byte("to all")); err != nil {
		t.Fatal(err)
	}
	if d := rb.next(t); string(d.Payload) != "to all" {
		t.Fatalf("node 2 got %q", d.Payload)
	}
	if err := b.Send(3, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	if d := rc.next(t); d.From != 2 || string(d.Payload) != "marker" {
		t.Errorf("node 3 got (%d, %q) first, want node 2's marker: the broadcast reached the removed peer", d.From, d.Payload)
	}

	// The removed peer's datagrams are dropped and counted.
	if err := c.Send(1, []byte("from 3")); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(1, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	if d := ra.next(t); d.From != 2 || string(d.Payload) != "marker" {
		t.Errorf("node 1 got (%d, %q) first, want node 2's marker", d.From, d.Payload)
	}
	if got := a.Stats().UnknownSource; got != 1 {
		t.Errorf("UnknownSource = %d, want 1", got)
	}

	// Back again.
	if err := a.SetPeers(all); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(1, []byte("from 3")); err != nil {
		t.Fatal(err)
	}
	if d := ra.next(t); d.From != 3 || string(d.Payload) != "from 3" {
		t.Errorf("node 1 got (%d, %q), want node 3's datagram", d.From, d.Payload)
	}
	if err := a.Send(3, []byte("to 3")); err != nil {
		t.Fatal(err)
	}
	if d := rc.next(t); d.From != 1 || string(d.Payload) != "to 3" {
		t.Errorf("node 3 got (%d, %q), want node 1's datagram", d.From, d.Payload)
	}
}

// TestUnicastSetPeersErrors: a refused list names the argument and keeps
// the list in use.
func TestUnicastSetPeersErrors(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	trs := cluster(t, lo, 2)
	a := trs[0]
	before := a.Peers()
	for _, tt := range []struct {
		peers map[pfsync.NodeID]netip.AddrPort
		want  string
	}{
		{nil, "udp: SetPeers peers is empty, want at least one peer"},
		{map[pfsync.NodeID]netip.AddrPort{0: netip.MustParseAddrPort("127.0.0.2:7240")}, "udp: SetPeers peers node id 0 (127.0.0.2:7240) out of range 1-4294967295"},
		{map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("[::1]:7240")}, "udp: SetPeers peers[2] [::1]:7240 is not of the family of UnicastConfig.Local " + a.local.String()},
		{map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("127.0.0.2:0")}, "udp: SetPeers peers[2] 127.0.0.2:0 is not a unicast address and port"},
		{map[pfsync.NodeID]netip.AddrPort{
			2: netip.MustParseAddrPort("127.0.0.2:7240"),
			3: netip.MustParseAddrPort("127.0.0.2:7240"),
		}, "udp: SetPeers peers[3] 127.0.0.2:7240 is also another peer's address"},
	} {
		err := a.SetPeers(tt.peers)
		if err == nil || err.Error() != tt.want {
			t.Errorf("SetPeers(%v) = %v, want %q", tt.peers, err, tt.want)
		}
	}
	if diff := cmp.Diff(before, a.Peers(), cmpAddrPort()); diff != "" {
		t.Errorf("peers after refused lists (-want +got):\n%s", diff)
	}
}

package carp_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// rawWait bounds every wait for a packet or an event in the netns tests. It
// is generous: the tests never measure time, they only refuse to hang.
const rawWait = 10 * time.Second

var (
	rawGroup4 = netip.MustParseAddr("224.0.0.18")
	rawGroup6 = netip.MustParseAddr("ff02::12")
)

// rawNode is one namespace with its LAN interface.
type rawNode struct {
	ns      *netns.NS
	ifname  string
	ifindex int
	v4      netip.Addr // primary IPv4 address on ifname
	v6      netip.Addr // global IPv6 address on ifname
	ll      netip.Addr // link-local address of ifname
	port    string     // switch-side port of ifname
}

// rawLAN builds a switch with bridge "lan" and one node per name, node i
// having 10.77.0.<i+1>/24 and fd77::<i+1>/64 on eth0.
func rawLAN(t testing.TB, names ...string) (*netns.Topology, []*rawNode) {
	t.Helper()
	tp := netns.New(t, "carp")
	br := tp.Bridge("lan")
	var nodes []*rawNode
	for i, name := range names {
		n := &rawNode{
			ns:     tp.Node(name),
			ifname: "eth0",
			v4:     netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}),
			v6:     netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 15: byte(i + 1)}),
		}
		n.port = tp.Attach(n.ns, br, n.ifname, netip.PrefixFrom(n.v4, 24), netip.PrefixFrom(n.v6, 64))
		n.ifindex, n.ll = rawIfInfo(t, n.ns, n.ifname)
		nodes = append(nodes, n)
	}
	return tp, nodes
}

// rawIfInfo returns the index and the link-local address of ifname in ns.
func rawIfInfo(t testing.TB, ns *netns.NS, ifname string) (int, netip.Addr) {
	t.Helper()
	var (
		index int
		ll    netip.Addr
	)
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		index = ifi.Index
		as, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() {
				ll = p.Addr()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ll.IsValid() {
		t.Fatalf("%s in %s has no link-local address", ifname, ns.Name)
	}
	return index, ll
}

// rawEndpoint is a RawTransport whose received packets are pumped into a
// channel, so tests can wait for them with a timeout.
type rawEndpoint struct {
	*carp.RawTransport
	pkts chan carp.Packet
	done chan error // the pump's final Receive error
}

// rawOpen creates a RawTransport on ifname inside ns. It is closed in
// t.Cleanup.
func rawOpen(t testing.TB, ns *netns.NS, ifname string, cfg *carp.RawConfig) *rawEndpoint {
	t.Helper()
	var tr *carp.RawTransport
	err := ns.Do(func() error {
		var err error
		tr, err = carp.NewRawTransport(ifname, cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &rawEndpoint{RawTransport: tr, pkts: make(chan carp.Packet, 64), done: make(chan error, 1)}
	go func() {
		for {
			p, err := tr.Receive()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					e.done <- err
					close(e.pkts)
					return
				}
				t.Errorf("receive: %v", err)
				continue
			}
			e.pkts <- p
		}
	}()
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for range e.pkts {
		}
	})
	return e
}

// next returns the next packet accepted by keep (nil keeps all), failing
// the test after rawWait.
func (e *rawEndpoint) next(t testing.TB, keep func(carp.Packet) bool) carp.Packet {
	t.Helper()
	timeout := time.After(rawWait)
	for {
		select {
		case p, ok := <-e.pkts:
			if !ok {
				t.Fatal("transport closed while waiting for a packet")
			}
			if keep == nil || keep(p) {
				return p
			}
		case <-timeout:
			t.Fatalf("no packet within %v", rawWait)
		}
	}
}

// rawPayload returns a signed, valid CARP advert for vhid with a marker in
// the counter so tests can tell packets apart.
func rawPayload(t testing.TB, vhid, advskew uint8, counter uint64) []byte {
	t.Helper()
	auth, err := carp.NewAuthenticator([]byte("secret"), vhid, []netip.Addr{netip.MustParseAddr("10.77.0.254")})
	if err != nil {
		t.Fatal(err)
	}
	adv := carp.Advertisement{VHID: vhid, AdvSkew: advskew, AdvBase: 1, Counter: counter}
	auth.Sign(&adv)
	b, err := adv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawFamilies() []struct {
	name string
	fam  carp.Family
} {
	return []struct {
		name string
		fam  carp.Family
	}{{"ipv4", carp.IPv4}, {"ipv6", carp.IPv6}}
}

// TestRawTransportExchange: adverts cross the bridge with TTL/hop limit 255,
// the right source, destination and arrival interface, unmodified, and a
// sender never reads its own multicast adverts back.
func TestRawTransportExchange(t *testing.T) {
	_, nodes := rawLAN(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ta := rawOpen(t, a.ns, a.ifname, nil)
	tb := rawOpen(t, b.ns, b.ifname, nil)

	if diff := cmp.Diff([]carp.Family{carp.IPv4, carp.IPv6}, ta.Families()); diff != "" {
		t.Errorf("Families() (-want +got):\n%s", diff)
	}
	for _, f := range rawFamilies() {
		t.Run(f.name, func(t *testing.T) {
			src, group := a.v4, rawGroup4
			bsrc := b.v4
			if f.fam == carp.IPv6 {
				src, group, bsrc = a.ll, rawGroup6, b.ll
			}
			if got := ta.Source(f.fam); got != src {
				t.Errorf("Source(%v) = %v, want %v", f.fam, got, src)
			}
			out := rawPayload(t, 7, 0, 1)
			for range 3 {
				if err := ta.Send(f.fam, out); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				got := tb.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
				want := carp.Packet{Family: f.fam, Payload: out, Src: src, Dst: group, TTL: 255, IfIndex: b.ifindex}
				if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
					t.Fatalf("packet at b (-want +got):\n%s", diff)
				}
			}
			// The reply proves the path back works; by the time it
			// arrives, a looped-back copy of a's own adverts would have
			// been delivered (loopback happens inside a's Send).
			reply := rawPayload(t, 7, 0, 2)
			if err := tb.Send(f.fam, reply); err != nil {
				t.Fatal(err)
			}
			got := ta.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
			if got.Src != bsrc || string(got.Payload) != string(reply) {
				t.Errorf("a received %+v, want b's reply from %v", got, bsrc)
			}
			if s := ta.Stats(); s.OwnSource != 0 {
				t.Errorf("a's stats %+v: own adverts came back (multicast loopback on?)", s)
			}
		})
	}
}

// TestRawTransportOtherInterface: a node with ports on two LANs. Adverts
// on lan2 reach the transport bound to eth1 but never the one bound to
// eth0, although both sockets joined 224.0.0.18 / ff02::12
// (IP_MULTICAST_ALL off, SO_BINDTODEVICE, ifindex check).
func TestRawTransportOtherInterface(t *testing.T) {
	tp, nodes := rawLAN(t, "a", "b")
	a, b := nodes[0], nodes[1]
	br2 := tp.Bridge("lan2")
	c := tp.Node("c")
	tp.Attach(b.ns, br2, "eth1", netip.MustParsePrefix("10.78.0.2/24"))
	tp.Attach(c, br2, "eth0", netip.MustParsePrefix("10.78.0.3/24"))
	eth1, _ := rawIfInfo(t, b.ns, "eth1")

	tb0 := rawOpen(t, b.ns, "eth0", nil)
	tb1 := rawOpen(t, b.ns, "eth1", nil)
	tc := rawOpen(t, c, "eth0", nil)
	ta := rawOpen(t, a.ns, a.ifname, nil)

	for _, f := range rawFamilies() {
		t.Run(f.name, func(t *testing.T) {
			fromC := rawPayload(t, 9, 0, 100)
			if err := tc.Send(f.fam, fromC); err != nil {
				t.Fatal(err)
			}
			got := tb1.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
			if string(got.Payload) != string(fromC) || got.IfIndex != eth1 {
				t.Fatalf("eth1 transport got %+v, want c's advert on ifindex %d", got, eth1)
			}
			// The kernel delivers one packet to all raw sockets at once;
			// eth1's socket has it, so eth0's socket has already been
			// passed over. A marker from lan must be eth0's next packet.
			marker := rawPayload(t, 9, 0, 200)
			if err := ta.Send(f.fam, marker); err != nil {
				t.Fatal(err)
			}
			got = tb0.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
			if string(got.Payload) != string(marker) || got.IfIndex != b.ifindex {
				t.Fatalf("eth0 transport got %+v, want only a's marker on ifindex %d", got, b.ifindex)
			}
		})
	}
}

// TestRawTransportUnicast: with peers configured, adverts go to the peer's
// unicast address with TTL 255, and multicast adverts are still accepted.
func TestRawTransportUnicast(t *testing.T) {
	_, nodes := rawLAN(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ta := rawOpen(t, a.ns, a.ifname, &carp.RawConfig{Peer4: b.v4, Peer6: b.ll})
	tb := rawOpen(t, b.ns, b.ifname, &carp.RawConfig{Peer4: a.v4, Peer6: a.ll})
	tc := rawOpen(t, c.ns, c.ifname, nil)

	for _, f := range rawFamilies() {
		t.Run(f.name, func(t *testing.T) {
			src, dst, bsrc, adst, group := a.v4, b.v4, b.v4, a.v4, rawGroup4
			if f.fam == carp.IPv6 {
				src, dst, bsrc, adst, group = a.ll, b.ll, b.ll, a.ll, rawGroup6
			}
			if got := ta.Destination(f.fam); got != dst {
				t.Errorf("Destination(%v) = %v, want %v", f.fam, got, dst)
			}
			out := rawPayload(t, 3, 0, 1)
			if err := ta.Send(f.fam, out); err != nil {
				t.Fatal(err)
			}
			got := tb.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
			want := carp.Packet{Family: f.fam, Payload: out, Src: src, Dst: dst, TTL: 255, IfIndex: b.ifindex}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Fatalf("packet at b (-want +got):\n%s", diff)
			}
			back := rawPayload(t, 3, 0, 2)
			if err := tb.Send(f.fam, back); err != nil {
				t.Fatal(err)
			}
			got = ta.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
			if got.Src != bsrc || got.Dst != adst || got.TTL != 255 {
				t.Fatalf("packet at a = %+v, want from %v to %v with TTL 255", got, bsrc, adst)
			}
			// A node in unicast mode still accepts multicast adverts.
			marker := rawPayload(t, 3, 0, 3)
			if err := tc.Send(f.fam, marker); err != nil {
				t.Fatal(err)
			}
			got = ta.next(t, func(p carp.Packet) bool { return p.Family == f.fam })
			if string(got.Payload) != string(marker) || got.Dst != group {
				t.Fatalf("a got %+v, want c's multicast marker to %v", got, group)
			}
		})
	}
}

// TestRawTransportClose: Close unblocks a pending Receive with an error
// wrapping net.ErrClosed, later calls fail the same way, and Close is
// idempotent.
func TestRawTransportClose(t *testing.T) {
	_, nodes := rawLAN(t, "a")
	a := nodes[0]
	var tr *carp.RawTransport
	if err := a.ns.Do(func() error {
		var err error
		tr, err = carp.NewRawTransport(a.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Receive()
		errc <- err
	}()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Receive after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(rawWait):
		t.Fatal("Receive still blocked after Close")
	}
	if _, err := tr.Receive(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Receive = %v, want net.ErrClosed", err)
	}
	if err := tr.Send(carp.IPv4, rawPayload(t, 1, 0, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close = %v, want net.ErrClosed", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestRawTransportPending: Pending reports adverts received but not yet
// returned by Receive, and nothing once they have been.
func TestRawTransportPending(t *testing.T) {
	_, nodes := rawLAN(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ta := rawOpen(t, a.ns, a.ifname, nil)
	var tb *carp.RawTransport
	if err := b.ns.Do(func() error {
		var err error
		tb, err = carp.NewRawTransport(b.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	if tb.Pending() {
		t.Fatal("Pending before anything was sent")
	}
	for c := range uint64(2) {
		if err := ta.Send(carp.IPv4, rawPayload(t, 7, 0, c)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Receive(); err != nil {
		t.Fatal(err)
	}
	// The second advert was sent after the first, which has arrived; the
	// bridge delivers within the sender's system call, so it waits in the
	// socket or with the reader goroutine.
	if !tb.Pending() {
		t.Fatal("Pending false with a second advert sent and not yet received")
	}
	if _, err := tb.Receive(); err != nil {
		t.Fatal(err)
	}
	if tb.Pending() {
		t.Error("Pending true after both adverts were received")
	}
}

// TestRawTransportErrors: configuration mistakes are reported by name.
func TestRawTransportErrors(t *testing.T) {
	_, nodes := rawLAN(t, "a")
	a := nodes[0]
	for _, tt := range []struct {
		name    string
		ifname  string
		cfg     *carp.RawConfig
		wantErr string
	}{
		{"no such interface", "nope0", nil, `interface "nope0"`},
		{"bad family", a.ifname, &carp.RawConfig{Families: []carp.Family{5}}, "RawConfig.Families[0] family(5) out of range"},
		{"multicast peer4", a.ifname, &carp.RawConfig{Peer4: rawGroup4}, "RawConfig.Peer4 224.0.0.18 is not an IPv4 unicast"},
		{"ipv6 peer4", a.ifname, &carp.RawConfig{Peer4: a.v6}, "RawConfig.Peer4 fd77::1 is not"},
		{"ipv4 peer6", a.ifname, &carp.RawConfig{Peer6: a.v4}, "RawConfig.Peer6 10.77.0.1 is not"},
		{"ipv6 src4", a.ifname, &carp.RawConfig{Src4: a.v6}, "RawConfig.Src4 fd77::1 is not"},
		{"foreign src4", a.ifname, &carp.RawConfig{Src4: netip.MustParseAddr("10.77.0.99")}, "RawConfig.Src4 10.77.0.99 is not an address of this host"},
		{"no link-local on lo", "lo", &carp.RawConfig{Families: []carp.Family{carp.IPv6}}, "lo has no IPv6 link-local"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := a.ns.Do(func() error {
				tr, err := carp.NewRawTransport(tt.ifname, tt.cfg)
				if err == nil {
					tr.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRawTransport = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("send wrong length or family", func(t *testing.T) {
		tr := rawOpen(t, a.ns, a.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
		if err := tr.Send(carp.IPv4, make([]byte, 35)); err == nil {
			t.Error("Send of 35 bytes succeeded")
		}
		if err := tr.Send(carp.IPv6, rawPayload(t, 1, 0, 1)); err == nil {
			t.Error("Send on an unconfigured family succeeded")
		}
	})
}

// TestRawTransportTentativeLinkLocal: while the interface's link-local
// address is still tentative (duplicate address detection running), the
// IPv6 transport refuses to start and says why, instead of sending from an
// address the kernel would not let it use.
func TestRawTransportTentativeLinkLocal(t *testing.T) {
	_, nodes := rawLAN(t, "a")
	a := nodes[0]
	// DAD with 100 probes 1 s apart: the new link-local stays tentative
	// for the whole test.
	a.ns.SetSysctls(map[string]string{
		"net/ipv6/conf/eth0/accept_dad":    "1",
		"net/ipv6/conf/eth0/dad_transmits": "100",
	})
	a.ns.SetLink("eth0", false)
	a.ns.SetLink("eth0", true)
	a.ns.WaitReady("eth0")
	err := a.ns.Do(func() error {
		tr, err := carp.NewRawTransport("eth0", &carp.RawConfig{Families: []carp.Family{carp.IPv6}})
		if err == nil {
			tr.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "tentative") {
		t.Fatalf("NewRawTransport on a tentative link-local = %v, want an error about it being tentative", err)
	}
	// IPv4 alone does not need it.
	rawOpen(t, a.ns, "eth0", &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
}

// BenchmarkRawTransportRoundTrip measures one advert from a to b and one
// back, through two veths and a bridge, per iteration (root only).
func BenchmarkRawTransportRoundTrip(b *testing.B) {
	_, nodes := rawLAN(b, "a", "b")
	ta := rawOpen(b, nodes[0].ns, nodes[0].ifname, nil)
	tb := rawOpen(b, nodes[1].ns, nodes[1].ifname, nil)
	payload := rawPayload(b, 1, 0, 1)
	for _, f := range rawFamilies() {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				if err := ta.Send(f.fam, payload); err != nil {
					b.Fatal(err)
				}
				tb.next(b, nil)
				if err := tb.Send(f.fam, payload); err != nil {
					b.Fatal(err)
				}
				ta.next(b, nil)
			}
		})
	}
}

// TestRawTransportSrc4: Src4 picks the IPv4 source (ucarp --srcip), here a
// secondary address of the interface; the receiver sees it as the source.
func TestRawTransportSrc4(t *testing.T) {
	_, nodes := rawLAN(t, "a", "b")
	a, b := nodes[0], nodes[1]
	src := netip.MustParseAddr("10.77.0.11")
	a.ns.AddAddr(a.ifname, netip.PrefixFrom(src, 24))
	ta := rawOpen(t, a.ns, a.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}, Src4: src})
	tb := rawOpen(t, b.ns, b.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
	if got := ta.Source(carp.IPv4); got != src {
		t.Errorf("Source = %v, want %v", got, src)
	}
	if err := ta.Send(carp.IPv4, rawPayload(t, 1, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if p := tb.next(t, nil); p.Src != src {
		t.Errorf("b got a packet from %v, want %v", p.Src, src)
	}
}

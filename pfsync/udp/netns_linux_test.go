package udp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// These tests need root: they build namespaces (prefix "gsu") joined by
// veths or a bridge, and every packet stays inside them.

type family struct {
	name  string
	addrs [3]netip.Prefix // node 1, 2, 3
	group netip.Addr
}

func families() []family {
	return []family{
		{"IPv4", [3]netip.Prefix{
			netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("10.77.0.2/24"), netip.MustParsePrefix("10.77.0.3/24"),
		}, netip.MustParseAddr(DefaultGroup4)},
		{"IPv6", [3]netip.Prefix{
			netip.MustParsePrefix("fd77::1/64"), netip.MustParsePrefix("fd77::2/64"), netip.MustParsePrefix("fd77::3/64"),
		}, netip.MustParseAddr(DefaultGroup6)},
	}
}

// inNS runs a constructor inside ns; the socket it opens stays there.
func inNS[T any](t *testing.T, ns *netns.NS, fn func() (T, error)) T {
	t.Helper()
	var v T
	if err := ns.Do(func() error {
		var err error
		v, err = fn()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// twoNodes attaches namespaces a and b by veths "sync0", carrying f's
// addresses, to one bridge (the sync segment).
func twoNodes(t *testing.T, f family) (a, b *netns.NS) {
	tp := netns.New(t, "gsu")
	br := tp.Bridge("br0")
	a, b = tp.Node("a"), tp.Node("b")
	tp.Attach(a, br, "sync0", f.addrs[0])
	tp.Attach(b, br, "sync0", f.addrs[1])
	return a, b
}

func TestNetnsUnicast(t *testing.T) {
	for _, f := range families() {
		t.Run(f.name, func(t *testing.T) {
			nsA, nsB := twoNodes(t, f)
			ap := func(i int) netip.AddrPort { return netip.AddrPortFrom(f.addrs[i].Addr(), DefaultPort) }
			a := inNS(t, nsA, func() (*Unicast, error) {
				return NewUnicast(UnicastConfig{Local: ap(0), Interface: "sync0", Peers: map[pfsync.NodeID]netip.AddrPort{2: ap(1)}})
			})
			b := inNS(t, nsB, func() (*Unicast, error) {
				return NewUnicast(UnicastConfig{Local: ap(1), Interface: "sync0", Peers: map[pfsync.NodeID]netip.AddrPort{1: ap(0)}})
			})
			ra, rb := startReceiver(t, a), startReceiver(t, b)
			if err := a.Send(pfsync.Broadcast, []byte("to b")); err != nil {
				t.Fatal(err)
			}
			want := pfsync.Datagram{From: 1, Src: ap(0), Payload: []byte("to b")}
			if diff := cmp.Diff(want, rb.next(t), cmpAddrPort()); diff != "" {
				t.Errorf("b got (-want +got):\n%s", diff)
			}
			if err := b.Send(1, []byte("to a")); err != nil {
				t.Fatal(err)
			}
			want = pfsync.Datagram{From: 2, Src: ap(1), Payload: []byte("to a")}
			if diff := cmp.Diff(want, ra.next(t), cmpAddrPort()); diff != "" {
				t.Errorf("a got (-want +got):\n%s", diff)
			}
		})
	}
}

// linkLocal returns the fe80:: address of sync0 in ns.
func linkLocal(t *testing.T, ns *netns.NS) netip.Addr {
	t.Helper()
	return inNS(t, ns, func() (netip.Addr, error) {
		ifi, err := net.InterfaceByName("sync0")
		if err != nil {
			return netip.Addr{}, err
		}
		as, err := ifi.Addrs()
		if err != nil {
			return netip.Addr{}, err
		}
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() {
				return p.Addr(), nil
			}
		}
		return netip.Addr{}, errors.New("sync0 has no link-local address")
	})
}

func multicastIn(t *testing.T, ns *netns.NS, f family, peers map[pfsync.NodeID]netip.Addr) *Multicast {
	t.Helper()
	return inNS(t, ns, func() (*Multicast, error) {
		return NewMulticast(MulticastConfig{Interface: "sync0", Group: f.group, Peers: peers})
	})
}

func TestNetnsMulticast(t *testing.T) {
	for _, f := range families() {
		t.Run(f.name, func(t *testing.T) {
			nsA, nsB := twoNodes(t, f)
			addrA, addrB := f.addrs[0].Addr(), f.addrs[1].Addr()
			if f.group.Is6() {
				addrA, addrB = linkLocal(t, nsA), linkLocal(t, nsB)
			}
			a := multicastIn(t, nsA, f, map[pfsync.NodeID]netip.Addr{2: addrB})
			b := multicastIn(t, nsB, f, map[pfsync.NodeID]netip.Addr{1: addrA})
			ra, rb := startReceiver(t, a), startReceiver(t, b)
			if a.MTU() != map[bool]int{false: 1472, true: 1452}[f.group.Is6()] {
				t.Errorf("MTU = %d", a.MTU())
			}

			if err := a.Send(pfsync.Broadcast, []byte("group")); err != nil {
				t.Fatal(err)
			}
			d := rb.next(t)
			wantSrc := netip.AddrPortFrom(addrA, DefaultPort)
			if f.group.Is6() {
				wantSrc = netip.AddrPortFrom(addrA.WithZone("sync0"), DefaultPort)
			}
			if d.From != 1 || string(d.Payload) != "group" || d.Src != wantSrc {
				t.Errorf("b got (%d, %q from %v), want (1, \"group\" from %v)", d.From, d.Payload, d.Src, wantSrc)
			}
			// Send to a listed peer goes by unicast, also with TTL 255.
			if err := b.Send(1, []byte("unicast")); err != nil {
				t.Fatal(err)
			}
			if d := ra.next(t); d.From != 2 || string(d.Payload) != "unicast" {
				t.Errorf("a got (%d, %q), want (2, \"unicast\")", d.From, d.Payload)
			}
			if diff := cmp.Diff(Stats{Sent: 1, Received: 1}, b.Stats()); diff != "" {
				t.Errorf("b stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetnsMulticastBadTTL: a datagram sent to the group with TTL (hop
// limit) 64, as from a router or a host off the link, is dropped and counted;
// the same datagram with 255 is delivered.
func TestNetnsMulticastBadTTL(t *testing.T) {
	for _, f := range families() {
		t.Run(f.name, func(t *testing.T) {
			nsA, nsB := twoNodes(t, f)
			b := multicastIn(t, nsB, f, nil)
			rb := startReceiver(t, b)
			err := nsA.Do(func() error {
				if err := pinToOneCPU(); err != nil { // delivered in the order sent
					return err
				}
				ifi, err := net.InterfaceByName("sync0")
				if err != nil {
					return err
				}
				group := netip.AddrPortFrom(withLinkZone(f.group, ifi), DefaultPort)
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: f.addrs[0].Addr().AsSlice()})
				if err != nil {
					return err
				}
				defer c.Close()
				setTTL := func(ttl int) error {
					if f.group.Is4() {
						p := ipv4.NewPacketConn(c)
						return errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastTTL(ttl))
					}
					p := ipv6.NewPacketConn(c)
					return errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(ttl))
				}
				for _, ttl := range []int{64, 255} {
					if err := setTTL(ttl); err != nil {
						return err
					}
					if _, err := c.WriteToUDPAddrPort([]byte{byte(ttl)}, group); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// Datagrams of one sender on a veth arrive in order: once the
			// TTL-255 one is delivered, the TTL-64 one has been judged.
			if d := rb.next(t); len(d.Payload) != 1 || d.Payload[0] != 255 {
				t.Fatalf("delivered %v, want the TTL-255 datagram", d.Payload)
			}
			if diff := cmp.Diff(Stats{Received: 1, BadTTL: 1}, b.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// sendGroup sends one datagram to f's group and port from ns's sync0 for
// each source address, in order, with TTL (hop limit) 255, its payload the
// source's index in srcs. They go from one CPU, so they arrive in order
// (pinToOneCPU).
func sendGroup(t *testing.T, ns *netns.NS, f family, port uint16, srcs ...netip.Addr) {
	t.Helper()
	err := ns.Do(func() error {
		if err := pinToOneCPU(); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("sync0")
		if err != nil {
			return err
		}
		group := netip.AddrPortFrom(withLinkZone(f.group, ifi), port)
		for i, src := range srcs {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: src.AsSlice()})
			if err != nil {
				return err
			}
			if f.group.Is4() {
				p := ipv4.NewPacketConn(c)
				err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastTTL(255))
			} else {
				p := ipv6.NewPacketConn(c)
				err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(255))
			}
			if err == nil {
				_, err = c.WriteToUDPAddrPort([]byte{byte(i)}, group)
			}
			if err := errors.Join(err, c.Close()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNetnsMulticastSources: with no Sources and no Peers, a datagram from
// an address outside the sync interface's prefixes is dropped and counted,
// one from inside is delivered; with Peers, only the peers' addresses are.
func TestNetnsMulticastSources(t *testing.T) {
	for _, f := range families() {
		t.Run(f.name, func(t *testing.T) {
			outside := netip.MustParsePrefix("10.78.0.3/24")
			if f.group.Is6() {
				outside = netip.MustParsePrefix("fd78::3/64")
			}
			tp := netns.New(t, "gsu")
			br := tp.Bridge("br0")
			nsB, nsX := tp.Node("b"), tp.Node("x")
			tp.Attach(nsB, br, "sync0", f.addrs[1])
			tp.Attach(nsX, br, "sync0", f.addrs[2], outside)
			b := multicastIn(t, nsB, f, nil)
			rb := startReceiver(t, b)
			// Once the second is delivered, the first has been judged.
			sendGroup(t, nsX, f, DefaultPort, outside.Addr(), f.addrs[2].Addr())
			if d := rb.next(t); !bytes.Equal(d.Payload, []byte{1}) || d.From != 0 {
				t.Fatalf("delivered (%d, %v), want (0, [1]): the datagram from inside the prefix", d.From, d.Payload)
			}
			if diff := cmp.Diff(Stats{Received: 1, UnknownSource: 1}, b.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}

			// Listing peers narrows the sources to them: x's address in
			// the prefix is refused unless it is a peer's.
			c := inNS(t, nsB, func() (*Multicast, error) {
				return NewMulticast(MulticastConfig{Interface: "sync0", Group: f.group, Port: DefaultPort + 1,
					Peers: map[pfsync.NodeID]netip.Addr{3: outside.Addr()}})
			})
			rc := startReceiver(t, c)
			sendGroup(t, nsX, f, DefaultPort+1, f.addrs[2].Addr(), outside.Addr())
			if d := rc.next(t); !bytes.Equal(d.Payload, []byte{1}) || d.From != 3 {
				t.Fatalf("delivered (%d, %v), want (3, [1]): the datagram from the peer", d.From, d.Payload)
			}
			if diff := cmp.Diff(Stats{Received: 1, UnknownSource: 1}, c.Stats()); diff != "" {
				t.Errorf("stats with peers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetnsInjection: nodes a and b sync over multicast with sealed frames;
// an attacker x on the same segment records a's frames and injects replays,
// tampered and forged frames, and a recording of a's previous run. b's Sealer
// rejects every one with the right error and counter, and still accepts a's
// genuine frames afterwards.
func TestNetnsInjection(t *testing.T) {
	for _, f := range families() {
		t.Run(f.name, func(t *testing.T) {
			tp := netns.New(t, "gsu")
			br := tp.Bridge("br0")
			nsA, nsB, nsX := tp.Node("a"), tp.Node("b"), tp.Node("x")
			tp.Attach(nsA, br, "sync0", f.addrs[0])
			tp.Attach(nsB, br, "sync0", f.addrs[1])
			tp.Attach(nsX, br, "sync0", f.addrs[2])
			a := multicastIn(t, nsA, f, nil)
			b := multicastIn(t, nsB, f, nil)
			x := multicastIn(t, nsX, f, nil)
			startReceiver(t, a)
			rb, rx := startReceiver(t, b), startReceiver(t, x)

			psk, err := seal.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			keys := []seal.Key{{ID: 1, Secret: psk}}
			newSealer := func(node pfsync.NodeID, boot uint32, keys []seal.Key, send uint8) *seal.Sealer {
				s, err := seal.New(seal.Config{Node: node, Boot: boot, Keys: keys, SendKeyID: send})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			sa, sb := newSealer(1, 1, keys, 1), newSealer(2, 1, keys, 1)

			// send seals plaintext with s and sends it from tr to the group.
			send := func(tr pfsync.Transport, s *seal.Sealer, plaintext string) {
				t.Helper()
				frame, err := s.Seal(nil, []byte(plaintext))
				if err != nil {
					t.Fatal(err)
				}
				if err := tr.Send(pfsync.Broadcast, frame); err != nil {
					t.Fatal(err)
				}
			}
			inject := func(frame []byte) {
				t.Helper()
				if err := x.Send(pfsync.Broadcast, frame); err != nil {
					t.Fatal(err)
				}
			}
			// expect opens b's next datagram: want nil means accepted with
			// that plaintext from node 1.
			expect := func(step string, wantErr error, wantPlain string) {
				t.Helper()
				d := rb.next(t)
				from, got, err := sb.Open(nil, d.Payload)
				switch {
				case wantErr == nil && err != nil:
					t.Fatalf("%s: genuine frame rejected: %v", step, err)
				case wantErr == nil && (from != 1 || string(got) != wantPlain):
					t.Fatalf("%s: opened (%d, %q), want (1, %q)", step, from, got, wantPlain)
				case wantErr != nil && !errors.Is(err, wantErr):
					t.Fatalf("%s: Open error %v, want %v", step, err, wantErr)
				}
			}

			send(a, sa, "one")
			send(a, sa, "two")
			expect("genuine 1", nil, "one")
			expect("genuine 2", nil, "two")
			rec1, rec2 := rx.next(t).Payload, rx.next(t).Payload

			inject(rec2)
			expect("replay", pfsync.ErrReplay, "")

			tampered := append([]byte(nil), rec2...)
			tampered[seal.HeaderLen-1] ^= 0x80 // a sequence number not seen yet, so the tag is checked
			tampered[seal.HeaderLen] ^= 1
			inject(tampered)
			expect("tampered", pfsync.ErrBadAuth, "")

			wrongKey, err := seal.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			forger := newSealer(1, 99, []seal.Key{{ID: 1, Secret: wrongKey}}, 1) // claims to be node 1
			forged, err := forger.Seal(nil, []byte("insert a state"))
			if err != nil {
				t.Fatal(err)
			}
			inject(forged)
			expect("forged with another key", pfsync.ErrBadAuth, "")

			unknown := newSealer(1, 99, []seal.Key{{ID: 7, Secret: wrongKey}}, 7)
			forged, err = unknown.Seal(nil, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			inject(forged)
			expect("unknown key id", pfsync.ErrUnknownKey, "")

			inject(rec1[:seal.HeaderLen])
			expect("truncated", pfsync.ErrTruncated, "")

			// a restarts: its new boot supersedes the recording.
			sa = newSealer(1, 2, keys, 1)
			send(a, sa, "after restart")
			expect("new run", nil, "after restart")
			inject(rec1)
			expect("recording of the previous run", pfsync.ErrStaleEpoch, "")

			send(a, sa, "still synced")
			expect("genuine after the attack", nil, "still synced")

			// Derived: a's two runs, and the forger's run (untagged under
			// b's key: it spent node 1's budget).
			want := seal.Stats{Opened: 4, BadAuth: 2, Replay: 1, StaleEpoch: 1, UnknownKey: 1, Truncated: 1, Derived: 3}
			if diff := cmp.Diff(want, sb.Stats()); diff != "" {
				t.Errorf("b's seal stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetnsMulticastSetPeers: when the allowed sources are the peers'
// addresses, SetPeers moves them with the list: the removed peer's address
// is refused from then on, the new one's delivered with its node id. A
// refused list keeps the one in use.
func TestNetnsMulticastSetPeers(t *testing.T) {
	for _, f := range families() {
		t.Run(f.name, func(t *testing.T) {
			other := netip.MustParsePrefix("10.77.0.4/24")
			if f.group.Is6() {
				other = netip.MustParsePrefix("fd77::4/64")
			}
			tp := netns.New(t, "gsu")
			br := tp.Bridge("br0")
			nsB, nsX := tp.Node("b"), tp.Node("x")
			tp.Attach(nsB, br, "sync0", f.addrs[1])
			tp.Attach(nsX, br, "sync0", f.addrs[2], other)
			b := multicastIn(t, nsB, f, map[pfsync.NodeID]netip.Addr{3: f.addrs[2].Addr()})
			rb := startReceiver(t, b)

			if err := b.SetPeers(map[pfsync.NodeID]netip.Addr{4: other.Addr()}); err != nil {
				t.Fatal(err)
			}
			// Once the second is delivered, the first has been judged.
			sendGroup(t, nsX, f, DefaultPort, f.addrs[2].Addr(), other.Addr())
			if d := rb.next(t); !bytes.Equal(d.Payload, []byte{1}) || d.From != 4 {
				t.Fatalf("delivered (%d, %v), want (4, [1]): the datagram from the new peer", d.From, d.Payload)
			}
			if diff := cmp.Diff(Stats{Received: 1, UnknownSource: 1}, b.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}

			for _, tt := range []struct {
				peers map[pfsync.NodeID]netip.Addr
				want  string
			}{
				{nil, "udp: SetPeers peers is empty, but the allowed sources are the peers' addresses (MulticastConfig.Sources empty): nothing would be received"},
				{map[pfsync.NodeID]netip.Addr{5: f.group}, "udp: SetPeers peers[5] " + f.group.String() + " is not a unicast address"},
			} {
				if err := b.SetPeers(tt.peers); err == nil || err.Error() != tt.want {
					t.Errorf("SetPeers(%v) = %v, want %q", tt.peers, err, tt.want)
				}
			}
			sendGroup(t, nsX, f, DefaultPort, other.Addr())
			if d := rb.next(t); d.From != 4 {
				t.Errorf("after refused lists: delivered from node %d, want 4", d.From)
			}
		})
	}
}

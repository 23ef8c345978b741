package vip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// recConn is a net.PacketConn that records what is written to it.
type recConn struct {
	mu     sync.Mutex
	writes []recWrite
	err    error // returned by WriteTo when set
	closed bool
	onSend func() // called after a successful write, outside the lock
}

type recWrite struct {
	b  []byte
	to net.HardwareAddr
}

func (c *recConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.err != nil {
		c.mu.Unlock()
		return 0, c.err
	}
	pa, ok := addr.(*packet.Addr)
	if !ok {
		c.mu.Unlock()
		return 0, errors.New("recConn: not a *packet.Addr")
	}
	c.writes = append(c.writes, recWrite{b: slices.Clone(b), to: slices.Clone(pa.HardwareAddr)})
	on := c.onSend
	c.mu.Unlock()
	if on != nil {
		on()
	}
	return len(b), nil
}

func (c *recConn) got() []recWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.writes)
}

func (c *recConn) ReadFrom([]byte) (int, net.Addr, error) {
	return 0, nil, errors.New("recConn: no reads")
}
func (c *recConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *recConn) LocalAddr() net.Addr              { return &packet.Addr{} }
func (c *recConn) SetDeadline(time.Time) error      { return nil }
func (c *recConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

var (
	testMAC  = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x0a}
	testLL   = netip.MustParseAddr("fe80::200:5eff:fe00:10a")
	testVIP4 = netip.MustParseAddr("192.0.2.10")
	testVIP6 = netip.MustParseAddr("2001:db8::10")
)

// cmpAddr compares netip.Addr values by ==.
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// icmpv6Checksum is an independent RFC 4443 §2.3 checksum over the IPv6
// pseudo-header (RFC 8200 §8.1) and msg, whose checksum field is zero.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	var ph []byte
	ph = append(ph, s[:]...)
	ph = append(ph, d[:]...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(msg)))
	ph = append(ph, 0, 0, 0, 58)
	ph = append(ph, msg...)
	if len(ph)%2 == 1 {
		ph = append(ph, 0)
	}
	var sum uint32
	for i := 0; i < len(ph); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ph[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func TestGARPFrameGolden(t *testing.T) {
	ip := testVIP4.AsSlice()
	tests := []struct {
		name string
		op   arp.Operation
		want []byte
	}{
		{
			name: "request",
			op:   arp.OperationRequest,
			want: cat(
				[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // Ethernet destination: broadcast
				testMAC,            // Ethernet source: the announced MAC
				[]byte{0x08, 0x06}, // EtherType ARP
				[]byte{0x00, 0x01}, // hardware type Ethernet
				[]byte{0x08, 0x00}, // protocol type IPv4
				[]byte{6, 4},       // address lengths
				[]byte{0x00, 0x01}, // operation: request
				testMAC, ip,        // sender: our MAC, the VIP
				make([]byte, 6), ip, // target: zero MAC (RFC 5227 §2.3), the VIP
				make([]byte, 18), // padding to the 60-byte minimum frame
			),
		},
		{
			name: "reply",
			op:   arp.OperationReply,
			want: cat(
				[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // broadcast
				testMAC,
				[]byte{0x08, 0x06},
				[]byte{0x00, 0x01, 0x08, 0x00, 6, 4},
				[]byte{0x00, 0x02}, // operation: reply
				testMAC, ip,        // sender
				testMAC, ip, // target hardware = sender's (Linux arp_is_garp)
				make([]byte, 18),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := garpFrame(tt.op, testMAC, testVIP4)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("frame (-want +got):\n%s", diff)
			}
			// And mdlayher/arp reads it back as a gratuitous ARP.
			var f ethernet.Frame
			if err := f.UnmarshalBinary(got); err != nil {
				t.Fatal(err)
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(f.Payload); err != nil {
				t.Fatal(err)
			}
			if p.Operation != tt.op || p.SenderIP != testVIP4 || p.TargetIP != testVIP4 || !bytes.Equal(p.SenderHardwareAddr, testMAC) {
				t.Fatalf("parsed %+v; want %v with sender = target = %v from %v", p, tt.op, testVIP4, testMAC)
			}
		})
	}
}

func TestNAFrameGolden(t *testing.T) {
	allNodes := netip.MustParseAddr("ff02::1")
	ll, all, target := testLL.As16(), allNodes.As16(), testVIP6.As16()
	for _, router := range []bool{false, true} {
		name := "override"
		flags := byte(0x20) // O
		if router {
			name, flags = "router+override", 0xa0 // R|O
		}
		t.Run(name, func(t *testing.T) {
			icmp := cat(
				[]byte{136, 0},         // type Neighbor Advertisement, code 0
				[]byte{0, 0},           // checksum, filled in below
				[]byte{flags, 0, 0, 0}, // R S O flags (S clear: unsolicited), reserved
				target[:],              // target address: the VIP
				[]byte{2, 1},           // option Target Link-Layer Address, length 1 (8 bytes)
				testMAC,
			)
			binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(testLL, allNodes, icmp))
			want := cat(
				[]byte{0x33, 0x33, 0, 0, 0, 1}, // Ethernet destination: ff02::1's MAC
				testMAC,
				[]byte{0x86, 0xdd},         // EtherType IPv6
				[]byte{0x60, 0, 0, 0},      // version 6, traffic class, flow label
				[]byte{0, byte(len(icmp))}, // payload length
				[]byte{58, 255},            // next header ICMPv6, hop limit 255
				ll[:],                      // source: link-local
				all[:],                     // destination: ff02::1
				icmp,
			)
			got, err := naFrame(testMAC, testLL, testVIP6, router)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("frame (-want +got):\n%s", diff)
			}
			// And ndp parses the ICMPv6 part back.
			m, err := ndp.ParseMessage(got[14+40:])
			if err != nil {
				t.Fatal(err)
			}
			wantNA := &ndp.NeighborAdvertisement{
				Router:        router,
				Override:      true,
				TargetAddress: testVIP6,
				Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: testMAC}},
			}
			if diff := cmp.Diff(wantNA, m, cmpAddr); diff != "" {
				t.Fatalf("parsed NA (-want +got):\n%s", diff)
			}
			if c := icmpv6Checksum(testLL, allNodes, got[14+40:]); c != 0 {
				t.Fatalf("checksum over the sent message = %#04x; want 0 (valid)", c)
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
		want string
	}{
		{"ARP of IPv6", func() error { _, err := garpFrame(arp.OperationRequest, testMAC, testVIP6); return err }, "2001:db8::10"},
		{"ARP short MAC", func() error { _, err := garpFrame(arp.OperationRequest, testMAC[:4], testVIP4); return err }, "192.0.2.10"},
		{"NA of IPv4", func() error { _, err := naFrame(testMAC, testLL, testVIP4, false); return err }, "192.0.2.10"},
		{"NA long MAC", func() error { _, err := naFrame(make(net.HardwareAddr, 8), testLL, testVIP6, false); return err }, "not 6 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "vip: ") {
				t.Fatalf("err = %v; want a vip error mentioning %q", err, tt.want)
			}
		})
	}
}

func newTestAnnouncer(t *testing.T, cfg *AnnouncerConfig) (*PacketAnnouncer, *recConn, *recConn) {
	t.Helper()
	arpC, ip6C := &recConn{}, &recConn{}
	ifi := &net.Interface{Index: 7, Name: "eth7", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 7}}
	a, err := newPacketAnnouncer(ifi, arpC, ip6C, func() (netip.Addr, error) { return testLL, nil }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, arpC, ip6C
}

func TestPacketAnnouncer(t *testing.T) {
	a, arpC, ip6C := newTestAnnouncer(t, &AnnouncerConfig{HardwareAddr: testMAC, Router: true})
	vip4b := netip.MustParseAddr("192.0.2.11")
	if err := a.Announce([]netip.Addr{testVIP4, testVIP6, vip4b}); err != nil {
		t.Fatal(err)
	}
	mustFrame := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wantARP := []recWrite{
		{mustFrame(garpFrame(arp.OperationRequest, testMAC, testVIP4)), ethernet.Broadcast},
		{mustFrame(garpFrame(arp.OperationReply, testMAC, testVIP4)), ethernet.Broadcast},
		{mustFrame(garpFrame(arp.OperationRequest, testMAC, vip4b)), ethernet.Broadcast},
		{mustFrame(garpFrame(arp.OperationReply, testMAC, vip4b)), ethernet.Broadcast},
	}
	wantNA := []recWrite{
		{mustFrame(naFrame(testMAC, testLL, testVIP6, true)), allNodesMAC},
	}
	opt := cmp.AllowUnexported(recWrite{})
	if diff := cmp.Diff(wantARP, arpC.got(), opt); diff != "" {
		t.Errorf("ARP socket writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantNA, ip6C.got(), opt); diff != "" {
		t.Errorf("IPv6 socket writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(AnnouncerStats{GratuitousARPs: 4, NeighborAdverts: 1}, a.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestPacketAnnouncerErrors(t *testing.T) {
	a, arpC, ip6C := newTestAnnouncer(t, nil)
	arpC.err = errors.New("network is down")
	err := a.Announce([]netip.Addr{testVIP4, testVIP6})
	if err == nil {
		t.Fatal("Announce succeeded with a failing ARP socket")
	}
	for _, want := range []string{"vip: announce 192.0.2.10 on eth7", "request", "reply", "network is down"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := len(ip6C.got()); n != 1 {
		t.Errorf("%d NA frames written; want 1 (a failing address must not stop the others)", n)
	}
	if got := a.Stats(); got.Errors != 2 || got.NeighborAdverts != 1 {
		t.Errorf("stats = %+v; want 2 errors, 1 NA", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Announce([]netip.Addr{testVIP6}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Announce after Close = %v; want net.ErrClosed", err)
	}
}

func TestPacketAnnouncerSource(t *testing.T) {
	ifi := &net.Interface{Index: 7, Name: "eth7", HardwareAddr: testMAC}
	tests := []struct {
		name   string
		cfg    *AnnouncerConfig
		lookup []netip.Addr // results of successive lookups
		want   netip.Addr
	}{
		{"link-local", nil, []netip.Addr{testLL}, testLL},
		{"configured", &AnnouncerConfig{Source: netip.MustParseAddr("fe80::99")}, nil, netip.MustParseAddr("fe80::99")},
		{"none yet, found at announce", nil, []netip.Addr{{}, testLL}, testLL},
		{"none: the VIP itself", nil, []netip.Addr{{}, {}}, testVIP6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			lookup := func() (netip.Addr, error) {
				if i >= len(tt.lookup) {
					t.Fatalf("lookup called %d times", i+1)
				}
				i++
				return tt.lookup[i-1], nil
			}
			ip6C := &recConn{}
			a, err := newPacketAnnouncer(ifi, &recConn{}, ip6C, lookup, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Announce([]netip.Addr{testVIP6}); err != nil {
				t.Fatal(err)
			}
			w := ip6C.got()
			if len(w) != 1 {
				t.Fatalf("%d frames", len(w))
			}
			got, _ := netip.AddrFromSlice(w[0].b[14+8 : 14+24])
			if got != tt.want {
				t.Fatalf("source %v; want %v", got, tt.want)
			}
		})
	}
}

func TestNewPacketAnnouncerConfig(t *testing.T) {
	ifi := &net.Interface{Index: 7, Name: "eth7"} // no MAC, like a tun device
	lookup := func() (netip.Addr, error) { return netip.Addr{}, nil }
	if _, err := newPacketAnnouncer(ifi, &recConn{}, &recConn{}, lookup, nil); err == nil || !strings.Contains(err.Error(), "eth7") {
		t.Errorf("no MAC: err = %v; want an error naming eth7", err)
	}
	cfg := &AnnouncerConfig{HardwareAddr: testMAC, Source: testVIP4}
	if _, err := newPacketAnnouncer(ifi, &recConn{}, &recConn{}, lookup, cfg); err == nil || !strings.Contains(err.Error(), "Source") {
		t.Errorf("IPv4 source: err = %v; want an error naming Source", err)
	}
}

// FuzzFrames feeds arbitrary MACs and addresses to the frame builders: they
// must never panic, and what they build must parse back to the input.
func FuzzFrames(f *testing.F) {
	f.Add([]byte(testMAC), testVIP4.AsSlice(), testLL.AsSlice(), false)
	f.Add([]byte(testMAC), testVIP6.AsSlice(), testLL.AsSlice(), true)
	f.Add([]byte{1, 2, 3}, []byte{}, []byte{1}, false)
	f.Fuzz(func(t *testing.T, mac, addr, src []byte, router bool) {
		a, _ := netip.AddrFromSlice(addr)
		s, _ := netip.AddrFromSlice(src)
		hw := net.HardwareAddr(mac)
		for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
			b, err := garpFrame(op, hw, a)
			if err != nil {
				continue
			}
			var fr ethernet.Frame
			var p arp.Packet
			if err := fr.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if err := p.UnmarshalBinary(fr.Payload); err != nil {
				t.Fatal(err)
			}
			if p.SenderIP != a || p.TargetIP != a || !bytes.Equal(p.SenderHardwareAddr, hw) {
				t.Fatalf("round trip: %+v", p)
			}
		}
		b, err := naFrame(hw, s, a, router)
		if err != nil {
			return
		}
		m, err := ndp.ParseMessage(b[14+40:])
		if err != nil {
			t.Fatal(err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != a || na.Router != router || !na.Override {
			t.Fatalf("round trip: %+v", m)
		}
		if c := icmpv6Checksum(s, netip.MustParseAddr("ff02::1"), b[14+40:]); c != 0 {
			t.Fatalf("bad checksum")
		}
	})
}

package carp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	vrrpSrc4 = netip.MustParseAddr("10.200.200.1")
	vrrpDst4 = netip.MustParseAddr("224.0.0.18")
	vrrpSrc6 = netip.MustParseAddr("fe80::ff:fe01:100")
	vrrpDst6 = netip.MustParseAddr("ff02::12")
)

// The first two adverts of keepalived-vrrp3-v4v6.pcap (keepalived 2.2.7,
// VRID 1, priority 200, advert_int 1 s), field by field.
func keepalivedAdvert4(t testing.TB) []byte {
	return unhex(t,
		"31",       // version 3, type 1
		"01",       // VRID 1
		"c8",       // priority 200
		"01",       // one address
		"0064",     // reserved 0, interval 100 cs
		"7f79",     // checksum over the IPv4 pseudo-header and the message
		"0ac8c8fe", // 10.200.200.254
	)
}

func keepalivedAdvert6(t testing.TB) []byte {
	return unhex(t,
		"31", "01", "c8", "01", "0064",
		"0525",                             // checksum over the IPv6 pseudo-header and the message
		"fd000200020000000000000000000254", // fd00:200:200::254
	)
}

func TestVRRPAppendKeepalived(t *testing.T) {
	tests := []struct {
		name     string
		adv      VRRPAdvertisement
		src, dst netip.Addr
		want     []byte
	}{
		{"ipv4", VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.200.200.254")}},
			vrrpSrc4, vrrpDst4, keepalivedAdvert4(t)},
		{"ipv6", VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("fd00:200:200::254")}},
			vrrpSrc6, vrrpDst6, keepalivedAdvert6(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.adv.Append(nil, tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Append (-want +got):\n%s", diff)
			}
			var back VRRPAdvertisement
			if err := back.Unmarshal(got, tt.src, tt.dst); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.adv, back, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Unmarshal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVRRPAppendErrors(t *testing.T) {
	a4 := netip.MustParseAddr("10.0.0.1")
	a6 := netip.MustParseAddr("2001:db8::1")
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = a4
	}
	tests := []struct {
		name     string
		adv      VRRPAdvertisement
		src, dst netip.Addr
	}{
		{"no addresses", VRRPAdvertisement{VRID: 1}, vrrpSrc4, vrrpDst4},
		{"256 addresses", VRRPAdvertisement{VRID: 1, Addrs: many}, vrrpSrc4, vrrpDst4},
		{"interval 4096", VRRPAdvertisement{VRID: 1, Interval: 4096, Addrs: []netip.Addr{a4}}, vrrpSrc4, vrrpDst4},
		{"ipv6 address in ipv4 packet", VRRPAdvertisement{VRID: 1, Addrs: []netip.Addr{a6}}, vrrpSrc4, vrrpDst4},
		{"ipv4 address in ipv6 packet", VRRPAdvertisement{VRID: 1, Addrs: []netip.Addr{a4}}, vrrpSrc6, vrrpDst6},
		{"mixed source and destination", VRRPAdvertisement{VRID: 1, Addrs: []netip.Addr{a4}}, vrrpSrc4, vrrpDst6},
		{"invalid source", VRRPAdvertisement{VRID: 1, Addrs: []netip.Addr{a4}}, netip.Addr{}, vrrpDst4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{9}
			got, err := tt.adv.Append(prefix, tt.src, tt.dst)
			if err == nil {
				t.Fatal("Append succeeded, want an error")
			}
			if len(got) != 1 {
				t.Errorf("Append returned %d bytes on error, want the input unchanged", len(got))
			}
		})
	}
}

func TestVRRPUnmarshalErrors(t *testing.T) {
	// withSum recomputes the checksum of a modified message so that only
	// the intended defect is left.
	withSum := func(b []byte, src, dst netip.Addr) []byte {
		b[6], b[7] = 0, 0
		s := vrrpChecksum(b, src, dst)
		b[6], b[7] = byte(s>>8), byte(s)
		return b
	}
	badSum := keepalivedAdvert4(t)
	badSum[7] ^= 1
	v2 := unhex(t,
		"21", "01", "c8", "01", // VRRPv2: version 2, type 1, VRID 1, priority 200, one address
		"01", "01", "0000", // auth type 1 (simple text), advert int 1 s, checksum
		"0ac8c8fe",         // 10.200.200.254
		"7365637265740000") // authentication data "secret"
	carp, _ := Advertisement{VHID: 1, AdvBase: 1}.MarshalBinary()
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{"empty", nil, vrrpSrc4, vrrpDst4, ErrVRRPShort},
		{"7 bytes", keepalivedAdvert4(t)[:7], vrrpSrc4, vrrpDst4, ErrVRRPShort},
		{"address cut short", keepalivedAdvert4(t)[:10], vrrpSrc4, vrrpDst4, ErrVRRPShort},
		{"ipv6 address cut short", keepalivedAdvert6(t)[:20], vrrpSrc6, vrrpDst6, ErrVRRPShort},
		{"bytes after the addresses", withSum(append(keepalivedAdvert4(t), 0, 0, 0, 0), vrrpSrc4, vrrpDst4), vrrpSrc4, vrrpDst4, ErrVRRPCount},
		{"count 0", withSum(append(keepalivedAdvert4(t)[:3:3], 0, 0, 100, 0, 0), vrrpSrc4, vrrpDst4), vrrpSrc4, vrrpDst4, ErrVRRPCount},
		{"ipv6 payload in ipv4 packet", keepalivedAdvert6(t), vrrpSrc4, vrrpDst4, ErrVRRPCount},
		{"ipv4 payload in ipv6 packet", keepalivedAdvert4(t), vrrpSrc6, vrrpDst6, ErrVRRPShort},
		{"bad checksum", badSum, vrrpSrc4, vrrpDst4, ErrVRRPChecksum},
		{"checksum of another source", keepalivedAdvert4(t), netip.MustParseAddr("10.200.200.2"), vrrpDst4, ErrVRRPChecksum},
		{"checksum of another destination", keepalivedAdvert6(t), vrrpSrc6, netip.MustParseAddr("fe80::1"), ErrVRRPChecksum},
		{"vrrpv2", v2, vrrpSrc4, vrrpDst4, ErrVRRPv2},
		{"carp", carp, vrrpSrc4, vrrpDst4, ErrNotVRRP},
		{"version 4", withSum(append([]byte{0x41}, keepalivedAdvert4(t)[1:]...), vrrpSrc4, vrrpDst4), vrrpSrc4, vrrpDst4, ErrVRRPVersion},
		{"version 1", withSum(append([]byte{0x11}, keepalivedAdvert4(t)[1:]...), vrrpSrc4, vrrpDst4), vrrpSrc4, vrrpDst4, ErrVRRPVersion},
		{"type 2", withSum(append([]byte{0x32}, keepalivedAdvert4(t)[1:]...), vrrpSrc4, vrrpDst4), vrrpSrc4, vrrpDst4, ErrVRRPType},
	}
	sentinels := []error{ErrVRRPShort, ErrVRRPCount, ErrVRRPChecksum, ErrVRRPv2, ErrNotVRRP, ErrVRRPVersion, ErrVRRPType}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := VRRPAdvertisement{VRID: 42}
			a := want
			err := a.Unmarshal(tt.b, tt.src, tt.dst)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unmarshal = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("Unmarshal = %v, also wraps %v", err, s)
				}
			}
			if a.VRID != want.VRID || a.Addrs != nil {
				t.Errorf("Unmarshal changed the advertisement on error: %+v", a)
			}
		})
	}
}

// TestVRRPReservedIgnored checks that the reserved bits before the
// interval are ignored on receive, as RFC 5798 requires.
func TestVRRPReservedIgnored(t *testing.T) {
	b := keepalivedAdvert4(t)
	b[4] |= 0xf0
	b[6], b[7] = 0, 0
	s := vrrpChecksum(b, vrrpSrc4, vrrpDst4)
	b[6], b[7] = byte(s>>8), byte(s)
	var a VRRPAdvertisement
	if err := a.Unmarshal(b, vrrpSrc4, vrrpDst4); err != nil {
		t.Fatal(err)
	}
	if a.Interval != 100 {
		t.Errorf("Interval = %d, want 100", a.Interval)
	}
}

// TestVRRPCaptures decodes every VRRPv3 packet keepalived 2.2.7 sent in the
// captures and re-encodes it byte for byte; the CARP and VRRPv2 packets on
// the same protocol number are told apart, and the corrupted copies fail
// the checksum.
func TestVRRPCaptures(t *testing.T) {
	tests := []struct {
		file                       string
		nV3, nV2, nCARP, nChecksum int
		prios                      []uint8 // priorities seen, in order, duplicates dropped
	}{
		{file: "keepalived-vrrp3-v4v6.pcap", nV3: 28, prios: []uint8{200, 0, 100, 200}},
		{file: "keepalived-vrrp3-adv10cs.pcap", nV3: 20, prios: []uint8{100}},
		{file: "keepalived-vrrp3-two-addrs.pcap", nV3: 8, prios: []uint8{150}},
		{file: "vrrp3-bad-checksum.pcap", nV3: 2, nChecksum: 2, prios: []uint8{200}},
		{file: "mixed-ucarp-vhid1-keepalived-vrrp3-vrid1.pcap", nV3: 9, nCARP: 9, prios: []uint8{200}},
		{file: "mixed-ucarp-vhid1-keepalived-vrrp2-vrid1.pcap", nV2: 9, nCARP: 9},
		{file: "ucarp-v4.pcap", nCARP: 8},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var nV3, nV2, nCARP, nChecksum int
			var prios []uint8
			for _, p := range readPcap(t, "testdata/"+tt.file) {
				var a VRRPAdvertisement
				err := a.Unmarshal(p.Payload, p.Src, p.Dst)
				switch {
				case err == nil:
					nV3++
					if p.TTL != 255 {
						t.Errorf("frame %d: TTL %d, want 255", p.Frame, p.TTL)
					}
					if len(prios) == 0 || prios[len(prios)-1] != a.Priority {
						prios = append(prios, a.Priority)
					}
					got, err := a.Append(nil, p.Src, p.Dst)
					if err != nil {
						t.Fatalf("frame %d: %v", p.Frame, err)
					}
					if diff := cmp.Diff(p.Payload, got); diff != "" {
						t.Errorf("frame %d: re-encoded (-captured +ours):\n%s", p.Frame, diff)
					}
				case errors.Is(err, ErrVRRPv2):
					nV2++
				case errors.Is(err, ErrNotVRRP):
					nCARP++
				case errors.Is(err, ErrVRRPChecksum):
					nChecksum++
				default:
					t.Errorf("frame %d: %v", p.Frame, err)
				}
			}
			if nV3 != tt.nV3 || nV2 != tt.nV2 || nCARP != tt.nCARP || nChecksum != tt.nChecksum {
				t.Errorf("decoded v3 %d, v2 %d, CARP %d, bad checksum %d; want %d, %d, %d, %d",
					nV3, nV2, nCARP, nChecksum, tt.nV3, tt.nV2, tt.nCARP, tt.nChecksum)
			}
			if diff := cmp.Diff(tt.prios, prios); diff != "" {
				t.Errorf("priorities (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzVRRPUnmarshal checks that decoding never panics, that whatever
// decodes with zero reserved bits re-encodes to the same bytes, and that the
// checksum is verified: a decoded message fails once any byte of it changes.
func FuzzVRRPUnmarshal(f *testing.F) {
	for _, file := range []string{"keepalived-vrrp3-v4v6.pcap", "keepalived-vrrp3-adv10cs.pcap", "keepalived-vrrp3-two-addrs.pcap", "vrrp3-bad-checksum.pcap", "mixed-ucarp-vhid1-keepalived-vrrp2-vrid1.pcap"} {
		for _, p := range readPcap(f, "testdata/"+file) {
			f.Add(p.Payload, p.Src.AsSlice(), p.Dst.AsSlice())
		}
	}
	f.Fuzz(func(t *testing.T, b, src, dst []byte) {
		s, _ := netip.AddrFromSlice(src)
		d, _ := netip.AddrFromSlice(dst)
		var a VRRPAdvertisement
		if err := a.Unmarshal(b, s, d); err != nil {
			return
		}
		if b[4]&0xf0 == 0 {
			got, err := a.Append(nil, s, d)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(b, got); diff != "" {
				t.Errorf("round trip (-in +out):\n%s", diff)
			}
		}
		c := append([]byte(nil), b...)
		c[1]++ // the VRID: covered by the checksum
		if err := a.Unmarshal(c, s, d); !errors.Is(err, ErrVRRPChecksum) {
			t.Errorf("VRID changed: Unmarshal = %v, want %v", err, ErrVRRPChecksum)
		}
	})
}

func BenchmarkVRRPAppend(b *testing.B) {
	adv := VRRPAdvertisement{VRID: 1, Priority: 100, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.200.200.254")}}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = adv.Append(buf[:0], vrrpSrc4, vrrpDst4)
	}
}

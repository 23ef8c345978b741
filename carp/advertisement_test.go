package carp

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unhex decodes hex fragments joined together; spaces are ignored so the
// expected bytes can be written field by field.
func unhex(t testing.TB, fragments ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(fragments, ""), " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectors are computed from the algorithm of docs/interop.md, "HMAC",
// and one advert from a real ucarp 1.5.2 capture.
var vectors = []struct {
	name     string
	password string
	addrs    []netip.Addr
	adv      Advertisement
	wire     []string // field by field
}{
	{
		name:     "A",
		password: "secret",
		addrs:    []netip.Addr{netip.MustParseAddr("192.0.2.10")},
		adv:      Advertisement{VHID: 1, AdvBase: 1, Counter: 1},
		wire: []string{
			"21",               // version 2, type 1
			"01",               // vhid
			"00",               // advskew
			"07",               // authlen
			"00",               // demote
			"01",               // advbase
			"9ef2",             // checksum
			"0000000000000001", // counter
			"07f20b3222848676b3c061c6f396e0ee76eb22ec", // HMAC
		},
	},
	{
		name:     "B",
		password: "secret",
		addrs: []netip.Addr{
			netip.MustParseAddr("192.0.2.20"),
			netip.MustParseAddr("192.0.2.10"),
			netip.MustParseAddr("2001:db8::1"),
		},
		adv: Advertisement{VHID: 42, AdvBase: 1, AdvSkew: 100, Counter: 0x0123456789abcdef},
		wire: []string{
			"21", "2a", "64", "07", // version/type, vhid 42, advskew 100, authlen
			"00", "01", "5501", // demote, advbase, checksum
			"0123456789abcdef",                         // counter
			"3f887122176c635e508ce8a6597aaefef6522432", // HMAC
		},
	},
	{
		name:     "C empty key",
		password: "",
		addrs:    []netip.Addr{netip.MustParseAddr("10.0.0.1")},
		adv:      Advertisement{VHID: 7, AdvBase: 1},
		wire: []string{
			"21", "07", "00", "07",
			"00", "01", "b348",
			"0000000000000000",
			"84a4ace50f4d23285562a6c3bbca65a8611748f8",
		},
	},
	{
		name:     "ucarp 1.5.2 capture",
		password: "secret",
		addrs:    []netip.Addr{netip.MustParseAddr("10.200.200.254")},
		adv:      Advertisement{VHID: 1, AdvBase: 1, Counter: 0x0cf4a0fbab7f4483},
		wire: []string{
			"21", "01", "00", "07",
			"00", "01", "3fc8",
			"0cf4a0fbab7f4483",
			"d636c3ff3b278a02902863d3fc94245e94a0f84b",
		},
	},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			want := unhex(t, v.wire...)
			auth, err := NewAuthenticator([]byte(v.password), v.adv.VHID, v.addrs)
			if err != nil {
				t.Fatal(err)
			}
			adv := v.adv
			auth.Sign(&adv)
			got, err := adv.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("MarshalBinary (-want +got):\n%s", diff)
			}

			var dec Advertisement
			if err := dec.UnmarshalBinary(want); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(adv, dec); diff != "" {
				t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
			}
			if err := auth.Verify(dec); err != nil {
				t.Errorf("Verify: %v", err)
			}
			dec.Digest[19] ^= 1
			if err := auth.Verify(dec); !errors.Is(err, ErrAuth) {
				t.Errorf("Verify(flipped digest) = %v, want ErrAuth", err)
			}
		})
	}
}

func TestAppendBinary(t *testing.T) {
	adv := Advertisement{VHID: 9, AdvBase: 3, AdvSkew: 200, Demote: 5, Counter: 42}
	prefix := []byte("xy")
	got, err := adv.AppendBinary(prefix)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := adv.MarshalBinary()
	if diff := cmp.Diff(append([]byte("xy"), want...), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if checksum(got[2:]) != 0 {
		t.Errorf("encoded checksum does not verify")
	}
}

func TestUnmarshalErrors(t *testing.T) {
	good := unhex(t, vectors[0].wire...)
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	fixsum := func(b []byte) []byte {
		b[6], b[7] = 0, 0
		s := checksum(b)
		b[6], b[7] = byte(s>>8), byte(s)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"one byte", []byte{0x21}, ErrShort},
		{"truncated carp", good[:20], ErrShort},
		{"35 bytes", good[:35], ErrShort},
		{"37 bytes", append(append([]byte(nil), good...), 0), ErrLength},
		{"bad checksum", mod(func(b []byte) []byte { b[7] ^= 0xff; return b }), ErrChecksum},
		{"version 1", mod(func(b []byte) []byte { b[0] = 0x11; return fixsum(b) }), ErrVersion},
		{"version 15", mod(func(b []byte) []byte { b[0] = 0xf1; return fixsum(b) }), ErrVersion},
		{"type 2", mod(func(b []byte) []byte { b[0] = 0x22; return fixsum(b) }), ErrType},
		{"vrrpv3 short", unhex(t, "31016400 0064 0000 0ac8c8fe"), ErrVRRP},
		{"vrrpv3 36 bytes", mod(func(b []byte) []byte { b[0] = 0x31; return fixsum(b) }), ErrVRRP},
		{"vrrpv2 one address", unhex(t, "21016401 0101 0000 0ac8c8fe 7365637265740000"), ErrVRRP},
		{"vrrpv2 seven addresses", make44(t), ErrVRRP},
		{"vrrpv2 36 bytes authlen 6", mod(func(b []byte) []byte { b[3] = 6; return fixsum(b) }), ErrVRRP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adv := Advertisement{VHID: 99}
			err := adv.UnmarshalBinary(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnmarshalBinary = %v, want %v", err, tt.want)
			}
			if adv.VHID != 99 {
				t.Errorf("failed UnmarshalBinary modified the advertisement: %+v", adv)
			}
		})
	}
}

// make44 returns a VRRPv2 advert with 7 addresses: byte 3 is 7 like CARP's
// authlen, but the length is 16 + 4·7 = 44.
func make44(t testing.TB) []byte {
	b := unhex(t, "21016407 0101 0000")
	for i := range 7 {
		b = append(b, 10, 0, 0, byte(i+1))
	}
	b = append(b, unhex(t, "0000000000000000")...)
	if len(b) != 44 {
		t.Fatalf("len %d", len(b))
	}
	return b
}

func TestTimingAndBowOut(t *testing.T) {
	a := Advertisement{AdvBase: 1, AdvSkew: 100}
	if got := a.Timing(); got != 356 {
		t.Errorf("Timing = %d, want 356", got)
	}
	if a.IsBowOut() {
		t.Error("IsBowOut = true for 1/100")
	}
	if !(Advertisement{AdvBase: 255, AdvSkew: 255}).IsBowOut() {
		t.Error("IsBowOut = false for 255/255")
	}
}

// TestCaptures decodes every IP protocol 112 packet of the captures and
// checks each is classified as its producer intended.
func TestCaptures(t *testing.T) {
	ucarpAuth := func(vip string) *Authenticator {
		a, err := NewAuthenticator([]byte("secret"), 1, []netip.Addr{netip.MustParseAddr(vip)})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		file string
		auth *Authenticator
		// want maps frame number to the expected error; frames not listed
		// must be valid, authentic CARP (nil) when auth is set.
		want    map[int]error
		allVRRP bool
		nCARP   int
	}{
		{file: "ucarp-v4.pcap", auth: ucarpAuth("10.200.200.254"), nCARP: 8},
		{file: "ucarp-v4-failover.pcap", auth: ucarpAuth("10.200.200.254"), nCARP: 8},
		{file: "carp-bad-checksum-hmac.pcap", auth: ucarpAuth("10.200.200.254"), nCARP: 1,
			want: map[int]error{2: ErrChecksum, 3: ErrAuth}},
		{file: "keepalived-vrrp3-v4v6.pcap", allVRRP: true},
		{file: "keepalived-vrrp3-adv10cs.pcap", allVRRP: true},
		{file: "vrrp3-bad-checksum.pcap", allVRRP: true},
		{file: "mixed-ucarp-vhid1-keepalived-vrrp2-vrid1.pcap", auth: ucarpAuth("10.200.200.253"), nCARP: 9},
		{file: "mixed-ucarp-vhid1-keepalived-vrrp3-vrid1.pcap", auth: ucarpAuth("10.200.200.253"), nCARP: 9},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pkts := readPcap(t, "testdata/"+tt.file)
			if len(pkts) == 0 {
				t.Fatal("no IP protocol 112 packets")
			}
			nCARP := 0
			for _, p := range pkts {
				var adv Advertisement
				err := adv.UnmarshalBinary(p.Payload)
				if err == nil {
					err = tt.auth.Verify(adv)
				}
				if p.TTL != 255 {
					t.Errorf("frame %d: TTL %d", p.Frame, p.TTL)
				}
				want := tt.want[p.Frame]
				switch {
				case tt.allVRRP || (err != nil && errors.Is(err, ErrVRRP) && want == nil):
					if !errors.Is(err, ErrVRRP) {
						t.Errorf("frame %d: %v, want ErrVRRP", p.Frame, err)
					}
				case want != nil:
					if !errors.Is(err, want) {
						t.Errorf("frame %d: %v, want %v", p.Frame, err, want)
					}
				default:
					if err != nil {
						t.Errorf("frame %d: %v", p.Frame, err)
						continue
					}
					nCARP++
					if adv.VHID != 1 || adv.AdvBase != 1 || adv.Demote != 0 {
						t.Errorf("frame %d: unexpected %+v", p.Frame, adv)
					}
				}
			}
			if nCARP != tt.nCARP {
				t.Errorf("%d authentic CARP adverts, want %d", nCARP, tt.nCARP)
			}
		})
	}
}

// FuzzUnmarshalBinary checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, file := range []string{"ucarp-v4.pcap", "carp-bad-checksum-hmac.pcap", "mixed-ucarp-vhid1-keepalived-vrrp2-vrid1.pcap", "keepalived-vrrp3-v4v6.pcap"} {
		for _, p := range readPcap(f, "testdata/"+file) {
			f.Add(p.Payload)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var adv Advertisement
		if err := adv.UnmarshalBinary(b); err != nil {
			return
		}
		got, err := adv.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(b, got); diff != "" {
			t.Errorf("round trip (-in +out):\n%s", diff)
		}
	})
}

func BenchmarkAppendBinary(b *testing.B) {
	adv := Advertisement{VHID: 1, AdvBase: 1, Counter: 7}
	buf := make([]byte, 0, AdvertisementLen)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = adv.AppendBinary(buf[:0])
	}
}

func BenchmarkUnmarshalBinary(b *testing.B) {
	wire := unhex(b, vectors[1].wire...)
	var adv Advertisement
	b.ReportAllocs()
	for b.Loop() {
		if err := adv.UnmarshalBinary(wire); err != nil {
			b.Fatal(err)
		}
	}
}

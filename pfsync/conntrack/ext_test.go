package conntrack

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gocarp/gocarp/pfsync/record"
)

func TestMasterTuple(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    MasterTuple
		want []byte
	}{
		{
			name: "ipv4 ftp control",
			m: MasterTuple{Family: record.IPv4, Proto: 6, Orig: record.Tuple{
				Src: netip.MustParseAddrPort("10.0.1.2:39000"), Dst: netip.MustParseAddrPort("10.0.2.10:21")}},
			want: []byte{
				4, 6, // family, protocol
				10, 0, 1, 2, // source
				10, 0, 2, 10, // destination
				0x98, 0x58, // source port 39000
				0, 21, // destination port
			},
		},
		{
			name: "ipv6 sip",
			m: MasterTuple{Family: record.IPv6, Proto: 17, Orig: record.Tuple{
				Src: netip.MustParseAddrPort("[2001:db8::1]:5060"), Dst: netip.MustParseAddrPort("[2001:db8::2]:5060")}},
			want: append(append(append([]byte{6, 17},
				netip.MustParseAddr("2001:db8::1").AsSlice()...),
				netip.MustParseAddr("2001:db8::2").AsSlice()...),
				0x13, 0xc4, 0x13, 0xc4),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tc.want) {
				t.Errorf("AppendBinary = % x, want % x", b, tc.want)
			}
			var got MasterTuple
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if got != tc.m {
				t.Errorf("UnmarshalBinary = %+v, want %+v", got, tc.m)
			}
		})
	}
}

func TestMasterTupleErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"family only", []byte{4}},
		{"unknown family", append([]byte{5, 6}, make([]byte, 12)...)},
		{"ipv4 one byte short", append([]byte{4, 6}, make([]byte, 11)...)},
		{"ipv4 one byte long", append([]byte{4, 6}, make([]byte, 13)...)},
		{"ipv6 with ipv4 length", append([]byte{6, 6}, make([]byte, 12)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m MasterTuple
			if err := m.UnmarshalBinary(tc.b); err == nil {
				t.Errorf("UnmarshalBinary(% x) = %+v, want an error", tc.b, m)
			}
		})
	}
	bad := MasterTuple{Family: record.IPv4, Orig: record.Tuple{
		Src: netip.MustParseAddrPort("[2001:db8::1]:1"), Dst: netip.MustParseAddrPort("10.0.0.1:2")}}
	if b, err := bad.AppendBinary(nil); err == nil {
		t.Errorf("AppendBinary of a mixed-family tuple = % x, want an error", b)
	}
}

func FuzzMasterTuple(f *testing.F) {
	f.Add([]byte{4, 6, 10, 0, 1, 2, 10, 0, 2, 10, 0x98, 0x58, 0, 21})
	f.Add(append([]byte{6, 17}, make([]byte, 36)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m MasterTuple
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		// Whatever decodes encodes back to the same bytes.
		out, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary of decoded %+v: %v", m, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip: % x -> % x", b, out)
		}
	})
}

func TestInjectStatusPortable(t *testing.T) {
	const offload, hwOffload, srcNAT = 1 << 14, 1 << 15, 1 << 4
	for _, tc := range []struct{ in, want uint32 }{
		{0, statusConfirmed},
		{statusSeenReply | statusAssured, statusSeenReply | statusAssured | statusConfirmed},
		{statusExpected | statusAssured | offload | hwOffload | srcNAT, statusAssured | statusConfirmed},
	} {
		if got := InjectStatus(tc.in); got != tc.want {
			t.Errorf("InjectStatus(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

package wire

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gocarp/gocarp/pfsync/record"
)

var cmpOpts = cmp.Options{
	cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{}),
	cmpopts.EquateEmpty(),
}

// h decodes hex fragments, ignoring spaces, so expected bytes read field by
// field.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err) // test helper: a typo in a literal
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var testHeader = Header{Version: Version, Flags: FlagAckRequested, Sender: 0x0a0b0c0d, Epoch: 0x1122334455667788, Seq: 5}

// headerBytes is testHeader on the wire.
var headerBytes = cat(
	h("01"),               // version 1
	h("01"),               // flags: ack requested
	h("0a0b0c0d"),         // sender
	h("1122334455667788"), // epoch
	h("0000000000000005"), // seq
)

func tcp4() record.Record {
	orig := record.Tuple{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:443")}
	return record.Record{
		ID:      record.ID{Creator: 1, Num: 0x2a},
		Version: 3,
		Key:     record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: 1000, SeqHi: 70000, MaxWin: 65535, WScale: 7, Scaled: true},
			{Level: record.TCPEstablished, SeqLo: 5000, SeqHi: 90000, MaxWin: 29200, WScale: 7, Scaled: true},
		},
		Expire: 86400, Timeout: 2, Age: 10, Flags: 0x18e,
		Packets: [2]uint64{10, 8}, Bytes: [2]uint64{1000, 8000},
		Ext: []record.Ext{{Type: record.ExtMark, Data: h("00000001")}},
	}
}

// tcp4Body is tcp4() as a full-record element body.
var tcp4Body = cat(
	h("00000001"),                     // creator
	h("000000000000002a"),             // num
	h("03"),                           // version (uvarint)
	h("04"),                           // family IPv4
	h("06"),                           // proto TCP
	h("01e8"),                         // present: orig full (0x08), reply full (0x20), age, flags, counters
	h("0a000001 9c40"),                // orig src 10.0.0.1:40000
	h("c000020a 01bb"),                // orig dst 192.0.2.10:443 (reply = reverse: not sent)
	h("02 87 ffff 000003e8 00011170"), // orig peer: established, wscale 7 + negotiated, maxwin, seqlo 1000, seqhi 70000
	h("02 87 7210 00001388 00015f90"), // reply peer: established, wscale 7 + negotiated, 29200, 5000, 90000
	h("80a305"),                       // expire 86400 (uvarint)
	h("02"),                           // timeout class
	h("0a"),                           // age 10
	h("8e03"),                         // flags 0x18e (uvarint)
	h("0a 08"),                        // packets orig 10, reply 8
	h("e807 c03e"),                    // bytes orig 1000, reply 8000
	h("01 04 00000001"),               // extension: mark, length 4, value 1
)

func tcp6() record.Record {
	r := tcp4()
	orig := record.Tuple{Src: netip.MustParseAddrPort("[2001:db8::1]:40000"), Dst: netip.MustParseAddrPort("[2001:db8:1::10]:443")}
	r.Key = record.Key{Family: record.IPv6, Proto: record.ProtoTCP, Zone: 3, Orig: orig,
		Reply: record.Tuple{Src: netip.MustParseAddrPort("[2001:db8:1::10]:443"), Dst: netip.MustParseAddrPort("[2001:db8:2::1]:61000")}}
	return r
}

func testDelta() record.Delta {
	return record.Delta{
		ID: record.ID{Creator: 1, Num: 0x2a}, Version: 300, Fields: record.FieldOrig | record.FieldLifetime,
		Peers:  [2]record.Peer{{Level: record.TCPEstablished, SeqLo: 1000, SeqHi: 70000, MaxWin: 65535, WScale: 7, Scaled: true}},
		Expire: 86400, Timeout: 2,
	}
}

// testDeltaBody is testDelta() as a compressed-update element body.
var testDeltaBody = cat(
	h("00000001"),                     // creator
	h("000000000000002a"),             // num
	h("ac02"),                         // version 300 (uvarint)
	h("12"),                           // present: orig peer full (2<<0), lifetime (0x10)
	h("02 87 ffff 000003e8 00011170"), // orig peer
	h("80a305"),                       // expire 86400
	h("02"),                           // timeout class
)

func TestGoldenFrames(t *testing.T) {
	d := testDelta()
	rec := tcp4()
	tests := []struct {
		name  string
		build func(b *Builder) error
		want  []byte
	}{
		{
			name:  "header only",
			build: func(b *Builder) error { return nil },
			want:  headerBytes,
		},
		{
			name: "two deletes in one section",
			build: func(b *Builder) error {
				if err := b.AddDelete(Delete{ID: record.ID{Creator: 1, Num: 2}, Version: 3}); err != nil {
					return err
				}
				return b.AddDelete(Delete{ID: record.ID{Creator: 1, Num: 4}, Version: 5})
			},
			want: cat(headerBytes,
				h("04"),   // kind delete
				h("0014"), // element length 20
				h("0002"), // count 2
				h("00000001 0000000000000002 0000000000000003"), // creator, num, version
				h("00000001 0000000000000004 0000000000000005"),
			),
		},
		{
			name:  "compressed update",
			build: func(b *Builder) error { return b.AddDelta(&d) },
			want: cat(headerBytes,
				h("03"),   // kind update-c
				h("0000"), // element length 0: variable, length-prefixed
				h("0001"), // count 1
				h("001f"), // element length 31
				testDeltaBody,
			),
		},
		{
			name:  "full record",
			build: func(b *Builder) error { return b.AddInsert(&rec) },
			want: cat(headerBytes,
				h("01 0000 0001"), // kind insert, variable, count 1
				h("0048"),         // element length 72
				tcp4Body,
			),
		},
		{
			name: "kind change opens a new section",
			build: func(b *Builder) error {
				if err := b.AddRequest(Request{ID: record.ID{Creator: 2, Num: 9}}); err != nil {
					return err
				}
				return b.AddHeartbeat(Heartbeat{Interval: time.Second, Records: 7})
			},
			want: cat(headerBytes,
				h("06 000c 0001"), h("00000002 0000000000000009"), // request: creator, num
				h("0d 000c 0001"), h("000003e8 0000000000000007"), // heartbeat: 1000 ms, 7 records
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Builder
			if err := b.Reset(nil, 1400, testHeader); err != nil {
				t.Fatal(err)
			}
			if err := tt.build(&b); err != nil {
				t.Fatalf("build: %v", err)
			}
			if diff := cmp.Diff(tt.want, b.Bytes()); diff != "" {
				t.Errorf("encoded frame (-want +got):\n%s", diff)
			}
			// And back.
			f, err := Decode(tt.want)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(testHeader, f.Header); diff != "" {
				t.Errorf("decoded header (-want +got):\n%s", diff)
			}
			again, err := AppendFrame(nil, &f)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			if diff := cmp.Diff(tt.want, again); diff != "" {
				t.Errorf("re-encoded frame (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecordCodec(t *testing.T) {
	body, err := AppendRecord(nil, ptr(tcp4()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tcp4Body, body); diff != "" {
		t.Errorf("AppendRecord (-want +got):\n%s", diff)
	}
	if n := RecordLen(ptr(tcp4())); n != len(tcp4Body) {
		t.Errorf("RecordLen = %d, want %d", n, len(tcp4Body))
	}
	for _, want := range []record.Record{tcp4(), tcp6(), udp4(), {
		ID: record.ID{Creator: 5, Num: 1}, Key: record.Key{Family: record.IPv4, Proto: 47,
			Orig:  record.Tuple{Src: netip.MustParseAddrPort("10.0.0.1:0"), Dst: netip.MustParseAddrPort("10.0.0.2:0")},
			Reply: record.Tuple{Src: netip.MustParseAddrPort("10.0.0.2:0"), Dst: netip.MustParseAddrPort("10.0.0.1:0")}},
	}} {
		b, err := AppendRecord(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		var got record.Record
		if err := DecodeRecord(b, &got); err != nil {
			t.Fatalf("DecodeRecord(%x): %v", b, err)
		}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func udp4() record.Record {
	orig := record.Tuple{Src: netip.MustParseAddrPort("10.0.0.1:5353"), Dst: netip.MustParseAddrPort("198.51.100.1:53")}
	return record.Record{
		ID: record.ID{Creator: 3, Num: 77}, Version: 1,
		Key: record.Key{Family: record.IPv4, Proto: record.ProtoUDP, Orig: orig, Reply: record.Tuple{
			Src: orig.Dst, Dst: netip.MustParseAddrPort("203.0.113.5:30000"), // SNAT
		}},
		Peers:  [2]record.Peer{{Level: record.Multiple}, {Level: record.Single}},
		Expire: 30, Timeout: 7,
	}
}

func TestDecodeErrors(t *testing.T) {
	del := h("00000001 0000000000000002 0000000000000003")
	tests := []struct {
		name  string
		frame []byte
		want  error
		msg   string
	}{
		{"empty", nil, ErrTruncated, "frame of 0 bytes"},
		{"short header", headerBytes[:21], ErrTruncated, "header needs 22"},
		{"version 2", cat(h("02"), headerBytes[1:]), ErrVersion, "version 2"},
		{"sender 0", cat(h("01 00 00000000"), headerBytes[6:]), ErrInvalid, "sender 0"},
		{"short section header", cat(headerBytes, h("04 0014")), ErrTruncated, "section header at offset 22"},
		{"count beyond frame", cat(headerBytes, h("04 0014 0002"), del), ErrTruncated, "2 × 20 bytes, 20 left"},
		{"count times length overflows 32 bits", cat(headerBytes, h("04 ffff ffff"), del), ErrTruncated, "65535 × 65535 bytes"},
		{"variable element past end", cat(headerBytes, h("03 0000 0001 0040"), testDeltaBody), ErrTruncated, "element 0 of 64 bytes"},
		{"variable element length cut", cat(headerBytes, h("03 0000 0002 0020"), testDeltaBody, h("00")), ErrTruncated, "element 1 length"},
		{"huge count of variable elements", cat(headerBytes, h("99 0000 ffff 0000")), ErrTruncated, "element 1 length"},
		{"bad element content", cat(headerBytes, h("04 0014 0001"), h("00000000 0000000000000002 0000000000000003")), ErrInvalid, "element 0: wire: invalid value: delete with creator 0"},
		{"short fixed element", cat(headerBytes, h("04 000c 0001"), del[:12]), ErrTruncated, "delete element of 12 bytes, need 20"},
		{"too long", make([]byte, MaxFrameLen+1), ErrInvalid, "frame of 65508 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.frame)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Decode error = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestForwardCompatibility(t *testing.T) {
	del := h("00000001 0000000000000002 0000000000000003")
	frame := cat(headerBytes,
		h("c8 0003 0002 aabbcc ddeeff"),       // unknown kind 200, fixed size: skipped
		h("c9 0000 0002 0001 aa 0000"),        // unknown kind 201, variable: skipped
		h("04 0018 0001"), del, h("deadbeef"), // delete from a newer sender: 4 extra bytes ignored
		h("03 0000 0001 0020"), testDeltaBody, h("ff"), // update-c with a trailing future field
	)
	f, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	want := Frame{
		Header:   testHeader,
		Elements: []Element{Delete{ID: record.ID{Creator: 1, Num: 2}, Version: 3}, UpdateC{Delta: testDelta()}},
		Skipped:  4,
	}
	if diff := cmp.Diff(want, f, cmpOpts); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
	var rd Reader
	if err := rd.Reset(frame); err != nil {
		t.Fatal(err)
	}
	if s, e := rd.Skipped(); s != 2 || e != 4 {
		t.Errorf("Skipped() = %d, %d; want 2, 4", s, e)
	}
}

func TestBuilderFull(t *testing.T) {
	var b Builder
	buf := make([]byte, 0, 512)
	if err := b.Reset(buf, 300, testHeader); err != nil {
		t.Fatal(err)
	}
	rec := tcp4()
	n := 0
	for {
		err := b.AddUpdate(&rec)
		if err == ErrFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	// 22 header + 5 section + k × 74 ≤ 300 → k = 3.
	if n != 3 || b.Elements() != 3 || b.Len() != 22+5+3*74 {
		t.Fatalf("added %d records (%d elements, %d bytes), want 3 records in 249 bytes", n, b.Elements(), b.Len())
	}
	if b.Room() != 300-b.Len() {
		t.Errorf("Room = %d", b.Room())
	}
	// A control element that still fits in a new section.
	if err := b.AddHello(Hello{Node: 1, Epoch: 2}); err != nil {
		t.Fatalf("AddHello in remaining %d bytes: %v", b.Room(), err)
	}
	if err := b.AddHello(Hello{Node: 1, Epoch: 2}); err != ErrFull {
		t.Fatalf("second AddHello = %v, want ErrFull", err)
	}
	f, err := Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Elements) != 4 {
		t.Fatalf("decoded %d elements, want 4", len(f.Elements))
	}

	big := tcp4()
	big.Ext = []record.Ext{{Type: record.ExtApp, Data: make([]byte, 400)}}
	if err := b.AddInsert(&big); err != ErrTooLarge {
		t.Errorf("AddInsert of a 470-byte record with MTU 300 = %v, want ErrTooLarge", err)
	}
	bad := tcp4()
	bad.ID.Creator = 0
	if err := b.AddInsert(&bad); !errors.Is(err, ErrInvalid) || !errors.Is(err, record.ErrInvalid) {
		t.Errorf("AddInsert of creator 0 = %v, want ErrInvalid", err)
	}
	// A failed fixed element leaves no empty section behind.
	if err := b.Reset(buf, 300, testHeader); err != nil {
		t.Fatal(err)
	}
	if err := b.AddRequest(Request{ID: rec.ID}); err != nil {
		t.Fatal(err)
	}
	before := b.Len()
	if err := b.AddDelete(Delete{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddDelete(creator 0) = %v", err)
	}
	if b.Len() != before {
		t.Errorf("failed AddDelete changed the frame from %d to %d bytes", before, b.Len())
	}
	if _, err := Decode(b.Bytes()); err != nil {
		t.Errorf("frame after failed adds does not decode: %v", err)
	}
}

func TestBuilderReset(t *testing.T) {
	var b Builder
	if err := b.AddHello(Hello{Node: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Add on a zero Builder = %v, want ErrInvalid", err)
	}
	if err := b.Reset(nil, 100, testHeader); err == nil || !strings.Contains(err.Error(), "mtu 100 out of range 128-65507") {
		t.Errorf("Reset(mtu 100) = %v", err)
	}
	if err := b.Reset(nil, 1400, Header{}); err == nil || !strings.Contains(err.Error(), "sender 0") {
		t.Errorf("Reset(sender 0) = %v", err)
	}
	// A prefix in the buffer is kept; Frame returns only the frame.
	if err := b.Reset([]byte("pre"), 1400, testHeader); err != nil {
		t.Fatal(err)
	}
	b.SetSeq(99)
	b.SetFlags(FlagUnsequenced)
	if string(b.Bytes()[:3]) != "pre" || len(b.Frame()) != HeaderLen || !b.Empty() {
		t.Fatalf("Bytes %x Frame %x", b.Bytes(), b.Frame())
	}
	hd, err := ParseHeader(b.Frame())
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Version: 1, Flags: FlagUnsequenced, Sender: testHeader.Sender, Epoch: testHeader.Epoch, Seq: 99}
	if diff := cmp.Diff(want, hd); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
}

func TestBuilderSectionCountLimit(t *testing.T) {
	var b Builder
	if err := b.Reset(nil, MaxFrameLen, testHeader); err != nil {
		t.Fatal(err)
	}
	// Heartbeats are 12 bytes: 65535 of them do not fit, but more than
	// MaxCount elements of one kind need a second section only beyond
	// MaxCount; use a 8-byte Clear: (65507-22-5)/8 ≈ 8185, below MaxCount.
	// Exercise the split directly with a small kind instead.
	n := 0
	for b.AddClear(Clear{Creator: 1}) == nil {
		n++
	}
	f, err := Decode(b.Bytes())
	if err != nil || len(f.Elements) != n {
		t.Fatalf("decoded %d of %d clears: %v", len(f.Elements), n, err)
	}
	b.count = MaxCount - 1 // pretend the open section is almost full
	b.buf = b.buf[:len(b.buf)-ClearLen]
	b.n--
	if err := b.AddClear(Clear{Creator: 2}); err != nil {
		t.Fatal(err)
	}
	if b.count != MaxCount {
		t.Fatalf("count = %d", b.count)
	}
	b.buf = b.buf[:len(b.buf)-ClearLen-SectionHeaderLen]
	if err := b.AddClear(Clear{Creator: 3}); err != nil {
		t.Fatal(err)
	}
	if b.count != 1 {
		t.Errorf("after MaxCount elements a new section must start, count = %d", b.count)
	}
}

func TestReaderAccessors(t *testing.T) {
	var b Builder
	if err := b.Reset(nil, 1400, testHeader); err != nil {
		t.Fatal(err)
	}
	rec, d := tcp4(), testDelta()
	ack := Ack{Peer: 2, Epoch: 3, Cum: 10, Nacks: []SeqRange{{12, 12}, {15, 20}}}
	dg := Digest{Creator: 1, Buckets: 64, First: 8, Sums: []uint64{1, 2, 3}}
	for _, err := range []error{b.AddInsert(&rec), b.AddDelta(&d), b.AddAck(&ack), b.AddDigest(&dg)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var rd Reader
	if err := rd.Reset(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	var (
		gotRec record.Record
		gotD   record.Delta
		gotA   Ack
		gotDg  Digest
	)
	for rd.Next() {
		if _, err := rd.Delete(); !errors.Is(err, ErrKind) {
			t.Errorf("Delete() on %v = %v, want ErrKind", rd.Kind(), err)
		}
		var err error
		switch rd.Kind() {
		case KindInsert:
			err = rd.Record(&gotRec)
		case KindUpdateC:
			err = rd.Delta(&gotD)
		case KindAck:
			err = rd.Ack(&gotA)
		case KindDigest:
			err = rd.Digest(&gotDg)
		}
		if err != nil {
			t.Fatalf("%v: %v", rd.Kind(), err)
		}
	}
	if diff := cmp.Diff(rec, gotRec, cmpOpts); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(d, gotD); diff != "" {
		t.Errorf("delta (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ack, gotA); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dg, gotDg); diff != "" {
		t.Errorf("digest (-want +got):\n%s", diff)
	}
	if err := rd.Record(&gotRec); !errors.Is(err, ErrKind) {
		t.Errorf("Record() after the end = %v, want ErrKind", err)
	}
}

func TestElementValidation(t *testing.T) {
	tests := []struct {
		name string
		e    Element
		msg  string
	}{
		{"ack peer 0", Ack{}, "ack for peer 0"},
		{"nack below cum", Ack{Peer: 1, Cum: 5, Nacks: []SeqRange{{5, 6}}}, "not above 5"},
		{"nack reversed", Ack{Peer: 1, Cum: 5, Nacks: []SeqRange{{8, 7}}}, "[8,7]"},
		{"nacks overlap", Ack{Peer: 1, Nacks: []SeqRange{{2, 4}, {4, 5}}}, "range 1"},
		{"too many nacks", Ack{Peer: 1, Nacks: make([]SeqRange, MaxNackRanges+1)}, "256 nack ranges"},
		{"digest no buckets", Digest{}, "0 buckets"},
		{"digest past last bucket", Digest{Buckets: 4, First: 3, Sums: []uint64{1, 2}}, "buckets 3-4 of 4"},
		{"hello node 0", Hello{}, "node 0"},
		{"negative heartbeat", Heartbeat{Interval: -time.Second}, "interval -1s"},
		{"clear creator 0", Clear{}, "creator 0"},
		{"request creator 0", Request{}, "request with creator 0"},
		{"insert-ack creator 0", InsertAck{}, "insert-ack with creator 0"},
		{"update-c creator 0", UpdateC{}, "update-c with creator 0"},
		{"update-c wscale", UpdateC{Delta: record.Delta{ID: record.ID{Creator: 1}, Peers: [2]record.Peer{{WScale: 15}}}}, "window scale 15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Builder
			if err := b.Reset(nil, 1400, testHeader); err != nil {
				t.Fatal(err)
			}
			err := b.Add(tt.e)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Add = %v, want ErrInvalid containing %q", err, tt.msg)
			}
			if b.Len() != HeaderLen {
				t.Errorf("failed Add left %d bytes", b.Len())
			}
		})
	}
}

func TestKindString(t *testing.T) {
	if got := KindUpdateC.String(); got != "update-c" {
		t.Errorf("KindUpdateC = %q", got)
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("Kind(200) = %q", got)
	}
}

// randRecord returns a random valid record.
func randRecord(rng *rand.Rand) record.Record {
	fam := record.IPv4
	if rng.IntN(2) == 0 {
		fam = record.IPv6
	}
	addr := func() netip.AddrPort {
		var a netip.Addr
		if fam == record.IPv4 {
			a = netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			a = netip.AddrFrom16(b)
		}
		return netip.AddrPortFrom(a, uint16(rng.IntN(65536)))
	}
	big := func() uint64 { return rng.Uint64() >> rng.IntN(64) }
	r := record.Record{
		ID:      record.ID{Creator: 1 + rng.Uint32N(1000), Num: rng.Uint64()},
		Version: big(),
		Key:     record.Key{Family: fam, Proto: uint8(rng.IntN(256)), Orig: record.Tuple{Src: addr(), Dst: addr()}},
		Expire:  uint32(big()), Timeout: uint8(rng.IntN(256)),
	}
	if rng.IntN(2) == 0 {
		r.Key.Reply = r.Key.Orig.Reverse()
	} else {
		r.Key.Reply = record.Tuple{Src: addr(), Dst: addr()}
	}
	if rng.IntN(2) == 0 {
		r.Key.Zone = uint16(rng.IntN(65536))
	}
	for d := range r.Peers {
		switch rng.IntN(3) {
		case 1:
			r.Peers[d] = record.Peer{Level: record.Level(rng.IntN(256))}
		case 2:
			r.Peers[d] = record.Peer{Level: record.Level(rng.IntN(256)), SeqLo: rng.Uint32(), SeqHi: rng.Uint32(),
				MaxWin: uint16(rng.IntN(65536)), WScale: uint8(rng.IntN(15)), Scaled: rng.IntN(2) == 0}
		}
	}
	if rng.IntN(2) == 0 {
		r.Age, r.Flags = uint32(big()), uint32(big())
	}
	if rng.IntN(2) == 0 {
		r.Packets = [2]uint64{big(), big()}
		r.Bytes = [2]uint64{big(), big()}
	}
	for range rng.IntN(3) {
		data := make([]byte, rng.IntN(40))
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		r.Ext = append(r.Ext, record.Ext{Type: record.ExtType(rng.IntN(256)), Data: data})
	}
	return r
}

func randElement(rng *rand.Rand) Element {
	rec := randRecord(rng)
	id := rec.ID
	switch Kind(1 + rng.IntN(int(KindBulkMark))) {
	case KindInsert:
		return Insert{Record: rec}
	case KindUpdate:
		return Update{Record: rec}
	case KindUpdateC:
		f := record.Fields(rng.IntN(int(record.FieldsAll) + 1))
		return UpdateC{Delta: rec.Delta(f)}
	case KindDelete:
		return Delete{ID: id, Version: rng.Uint64()}
	case KindClear:
		return Clear{Creator: id.Creator, HasZone: rng.IntN(2) == 0, Zone: uint16(rng.IntN(65536))}
	case KindRequest:
		return Request{ID: id}
	case KindInsertAck:
		return InsertAck{ID: id}
	case KindBulkRequest:
		r := BulkRequest{Generation: rng.Uint64(), Creator: rng.Uint32()}
		for range rng.IntN(4) {
			r.Buckets.Add(rng.IntN(Buckets))
		}
		return r
	case KindBulkMark:
		first := uint16(rng.IntN(Buckets))
		return BulkMark{Generation: rng.Uint64(), Since: rng.Uint64(), First: first, Last: first + uint16(rng.IntN(Buckets-int(first))),
			Digest: record.Digest{Count: rng.Uint64(), Sum: rng.Uint64()}}
	case KindBulkStart:
		return BulkStart{Generation: rng.Uint64(), Expected: rng.Uint64()}
	case KindBulkEnd:
		return BulkEnd{Generation: rng.Uint64(), Digest: record.Digest{Count: rng.Uint64(), Sum: rng.Uint64()}}
	case KindAck:
		a := Ack{Peer: id.Creator, Epoch: rng.Uint64(), Cum: rng.Uint64N(1000)}
		next := a.Cum + 1
		for range rng.IntN(4) {
			first := next + rng.Uint64N(5)
			last := first + rng.Uint64N(5)
			a.Nacks = append(a.Nacks, SeqRange{first, last})
			next = last + 1
		}
		return a
	case KindHello:
		return Hello{Node: id.Creator, Epoch: rng.Uint64(), Boot: rng.Uint64(), MinVersion: 1, MaxVersion: 1,
			Flags: HelloFlags(rng.IntN(256)), Caps: Caps(rng.Uint32()), Echo: rng.Uint64()}
	case KindHeartbeat:
		return Heartbeat{Interval: time.Duration(rng.Uint32()) * time.Millisecond, Records: rng.Uint64()}
	default:
		d := Digest{Creator: rng.Uint32(), Flags: DigestFlags(rng.IntN(256)), Buckets: uint16(1 + rng.IntN(100))}
		d.First = uint16(rng.IntN(int(d.Buckets)))
		for range rng.IntN(int(d.Buckets-d.First) + 1) {
			d.Sums = append(d.Sums, rng.Uint64())
		}
		return d
	}
}

// TestRoundTrip: decode(encode(frame)) == frame for random frames of every
// element kind.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 500 {
		f := Frame{Header: Header{Version: Version, Flags: Flags(rng.IntN(256)), Sender: 1 + rng.Uint32N(100), Epoch: rng.Uint64(), Seq: rng.Uint64()}}
		for range rng.IntN(12) {
			f.Elements = append(f.Elements, randElement(rng))
		}
		b, err := AppendFrame(nil, &f)
		if err != nil {
			t.Fatalf("case %d: AppendFrame: %v", i, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("case %d: Decode(%x): %v", i, b, err)
		}
		if diff := cmp.Diff(f, got, cmpOpts); diff != "" {
			t.Fatalf("case %d: round trip (-want +got):\n%s", i, diff)
		}
	}
}

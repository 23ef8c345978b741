package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/pfsync/record"
)

func TestDecodeRecordErrors(t *testing.T) {
	// Offsets in tcp4Body: 0 creator, 4 num, 12 version, 13 family, 14 proto,
	// 15 present, 17 orig tuple, 29 orig peer, 41 reply peer, 53 expire.
	edit := func(off int, b ...byte) []byte {
		body := append([]byte(nil), tcp4Body...)
		copy(body[off:], b)
		return body
	}
	tests := []struct {
		name string
		body []byte
		want error
		msg  string
	}{
		{"creator 0", edit(0, 0, 0, 0, 0), ErrInvalid, "creator 0 at offset 0"},
		{"host AF_INET", edit(13, 2), ErrInvalid, "family 2 at offset 13"},
		{"reserved present bit", edit(15, 0x03), ErrInvalid, "reserved present bits 0x03e8 at offset 15"},
		{"peer mode 3", edit(16, 0xec), ErrInvalid, "orig peer mode 3"},
		{"window scale 15", edit(30, 0x8f), ErrInvalid, "orig peer window scale byte 0x8f at offset 29"},
		{"reserved window scale bits", edit(42, 0x47), ErrInvalid, "reply peer window scale byte 0x47"},
		{"expire beyond 32 bits", cat(tcp4Body[:53], h("8080808010 02")), ErrInvalid, "expire exceeds 32 bits"},
		{"varint beyond 64 bits", cat(tcp4Body[:12], h("ffffffffffffffffff7f")), ErrInvalid, "version varint overflows"},
		{"extension too long", cat(tcp4Body[:66], h("80 8140"), make([]byte, 8193)), ErrInvalid, "extension length 8193 (max 4096) at offset 67"},
		{"extension cut", cat(tcp4Body[:66], h("01 04 0000")), ErrTruncated, "extension data at offset 68"},
		{"extension length cut", cat(tcp4Body[:66], h("01 80")), ErrTruncated, "extension length at offset 67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r record.Record
			err := DecodeRecord(tt.body, &r)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("DecodeRecord = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
	// Every cut inside the fixed part, or inside the extension, fails; the
	// cut right before the extension is a valid record without it.
	for n := range len(tcp4Body) {
		var r record.Record
		err := DecodeRecord(tcp4Body[:n], &r)
		if n == 66 {
			if err != nil || len(r.Ext) != 0 {
				t.Errorf("body without extension: %v, ext %v", err, r.Ext)
			}
			continue
		}
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("DecodeRecord of %d/%d bytes = %v, want ErrTruncated", n, len(tcp4Body), err)
		}
	}
}

func TestDecodeDeltaErrors(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want error
		msg  string
	}{
		{"creator 0", cat(h("00000000"), testDeltaBody[4:]), ErrInvalid, "creator 0"},
		{"reserved bit", cat(testDeltaBody[:14], h("92"), testDeltaBody[15:]), ErrInvalid, "reserved present bits 0x92 at offset 14"},
		{"peer mode 3", cat(testDeltaBody[:14], h("13"), testDeltaBody[15:]), ErrInvalid, "orig peer mode 3"},
		{"flags beyond 32 bits", cat(testDeltaBody[:14], h("40 ffffffff7f")), ErrInvalid, "flags exceeds 32 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d record.Delta
			err := DecodeDelta(tt.body, &d)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("DecodeDelta = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
	for n := range len(testDeltaBody) {
		var d record.Delta
		if err := DecodeDelta(testDeltaBody[:n], &d); !errors.Is(err, ErrTruncated) {
			t.Errorf("DecodeDelta of %d/%d bytes = %v, want ErrTruncated", n, len(testDeltaBody), err)
		}
	}
}

func TestFixedElementsTruncated(t *testing.T) {
	for _, tt := range []struct {
		name string
		dec  func([]byte) error
		n    int
	}{
		{"delete", func(b []byte) error { return new(Delete).UnmarshalBinary(b) }, DeleteLen},
		{"clear", func(b []byte) error { return new(Clear).UnmarshalBinary(b) }, ClearLen},
		{"request", func(b []byte) error { return new(Request).UnmarshalBinary(b) }, RequestLen},
		{"insert-ack", func(b []byte) error { return new(InsertAck).UnmarshalBinary(b) }, InsertAckLen},
		{"bulk-request", func(b []byte) error { return new(BulkRequest).UnmarshalBinary(b) }, bulkRequestMinLen},
		{"bulk-mark", func(b []byte) error { return new(BulkMark).UnmarshalBinary(b) }, BulkMarkLen},
		{"bulk-start", func(b []byte) error { return new(BulkStart).UnmarshalBinary(b) }, BulkStartLen},
		{"bulk-end", func(b []byte) error { return new(BulkEnd).UnmarshalBinary(b) }, BulkEndLen},
		{"hello", func(b []byte) error { return new(Hello).UnmarshalBinary(b) }, HelloLen},
		{"heartbeat", func(b []byte) error { return new(Heartbeat).UnmarshalBinary(b) }, HeartbeatLen},
		{"ack", func(b []byte) error { return new(Ack).UnmarshalBinary(b) }, 22},
		{"ack with a range", func(b []byte) error { return new(Ack).UnmarshalBinary(b) }, 0},
		{"digest", func(b []byte) error { return new(Digest).UnmarshalBinary(b) }, 11},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.n == 0 {
				// n = 1 range announced, none present.
				err = tt.dec(h("00000001 0000000000000000 0000000000000000 0001"))
			} else {
				err = tt.dec(make([]byte, tt.n-1))
			}
			if !errors.Is(err, ErrTruncated) {
				t.Errorf("short element: %v, want ErrTruncated", err)
			}
		})
	}
}

// TestUnknownExtensionsForwarded: a receiver that understands none of a
// record's extensions forwards them byte for byte.
func TestUnknownExtensionsForwarded(t *testing.T) {
	in := cat(tcp4Body[:66],
		h("4d 03 aabbcc"),   // type 77, not defined by this version, 3 bytes
		h("c8 00"),          // application type 200, empty
		h("01 04 00000001"), // mark
		h("4d 02 ddee"),     // type 77 again: duplicates are kept in order
	)
	var r record.Record
	if err := DecodeRecord(in, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Ext) != 4 || r.Ext[0].Type != 77 || r.Ext[1].Type != 200 {
		t.Fatalf("decoded extensions %v", r.Ext)
	}
	out, err := AppendRecord(nil, &r)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(in) {
		t.Errorf("forwarded record differs:\n got %x\nwant %x", out, in)
	}
}

package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/gocarp/gocarp/pfsync/record"
)

// TestAddRecordBody checks that a stored encoding added as is makes the
// same frame as the record added by AddUpdate, and the error rules.
func TestAddRecordBody(t *testing.T) {
	hdr := Header{Sender: 1, Epoch: 2, Seq: 3}
	for _, r := range []record.Record{tcp4(), tcp6(), udp4()} {
		var want, got Builder
		if err := want.Reset(nil, 1500, hdr); err != nil {
			t.Fatal(err)
		}
		if err := want.AddUpdate(&r); err != nil {
			t.Fatal(err)
		}
		body, err := AppendRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Reset(nil, 1500, hdr); err != nil {
			t.Fatal(err)
		}
		if err := got.AddRecordBody(KindUpdate, body); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want.Frame(), got.Frame()) {
			t.Errorf("record %v: AddRecordBody frame\n%x\nAddUpdate frame\n%x", r.ID, got.Frame(), want.Frame())
		}
	}

	body, err := AppendRecord(nil, ptr(tcp4()))
	if err != nil {
		t.Fatal(err)
	}
	var b Builder
	if err := b.Reset(nil, MinMTU, hdr); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		err := b.AddRecordBody(KindInsert, body)
		if err == ErrFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 || b.Elements() != n {
		t.Errorf("%d bodies added before ErrFull, builder counts %d", n, b.Elements())
	}
	if err := b.AddRecordBody(KindUpdate, make([]byte, MinMTU)); err != ErrTooLarge {
		t.Errorf("oversized body: err = %v, want ErrTooLarge", err)
	}
	if err := b.AddRecordBody(KindDelete, body); !errors.Is(err, ErrInvalid) {
		t.Errorf("kind delete: err = %v, want ErrInvalid", err)
	}
	if err := b.AddRecordBody(KindUpdate, body[:10]); !errors.Is(err, ErrInvalid) {
		t.Errorf("short body: err = %v, want ErrInvalid", err)
	}
}

func TestAppendAgedRecord(t *testing.T) {
	withReply := tcp4()
	withReply.Key.Reply.Dst = netip.MustParseAddrPort("198.51.100.7:4000")
	withReply.Key.Zone = 7
	tests := []struct {
		name    string
		r       record.Record
		expire  uint32
		elapsed uint32
		want    uint32
	}{
		{"tcp4", tcp4(), 100, 30, 70},
		{"tcp6", tcp6(), 100, 30, 70},
		{"udp4", udp4(), 300, 1, 299},
		{"nat and zone", withReply, 100000, 99000, 1000},
		{"varint shrinks", tcp4(), 200, 100, 100},
		{"ran out", tcp4(), 20, 30, 1},
		{"exactly out", tcp4(), 30, 30, 1},
		{"no lifetime", tcp4(), 0, 30, 0},
		{"not aged", tcp4(), 100, 0, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			r.Expire = tt.expire
			body, err := AppendRecord(nil, &r)
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("keep")
			got, err := AppendAgedRecord(prefix, body, tt.elapsed)
			if err != nil {
				t.Fatal(err)
			}
			if string(got[:4]) != "keep" {
				t.Fatalf("dst prefix overwritten: %q", got[:4])
			}
			var dec record.Record
			if err := DecodeRecord(got[4:], &dec); err != nil {
				t.Fatal(err)
			}
			want := r
			want.Expire = tt.want
			if !dec.Equal(&want) {
				t.Errorf("aged record\n got %+v\nwant %+v", dec, want)
			}
		})
	}
	for _, bad := range [][]byte{nil, make([]byte, 12), append(make([]byte, 12), 1, 5, 6, 0, 0)} {
		if got, err := AppendAgedRecord([]byte("x"), bad, 1); err == nil || string(got) != "x" {
			t.Errorf("AppendAgedRecord(%x) = %q, %v; want an error and dst unchanged", bad, got, err)
		}
	}
}

// FuzzAppendAgedRecord checks that AppendAgedRecord never panics and, for
// every body DecodeRecord accepts, changes nothing but Expire.
func FuzzAppendAgedRecord(f *testing.F) {
	for _, r := range []record.Record{tcp4(), tcp6(), udp4()} {
		b, err := AppendRecord(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint32(10))
	}
	f.Fuzz(func(t *testing.T, b []byte, elapsed uint32) {
		got, err := AppendAgedRecord(nil, b, elapsed)
		var in record.Record
		if DecodeRecord(b, &in) != nil {
			return
		}
		if err != nil {
			t.Fatalf("a body DecodeRecord accepts: %v", err)
		}
		var out record.Record
		if err := DecodeRecord(got, &out); err != nil {
			t.Fatalf("aged body does not decode: %v", err)
		}
		want := in.Clone()
		switch {
		case in.Expire == 0 || elapsed == 0:
		case in.Expire > elapsed:
			want.Expire = in.Expire - elapsed
		default:
			want.Expire = 1
		}
		if !out.Equal(&want) {
			t.Fatalf("aged\n got %+v\nwant %+v", out, want)
		}
	})
}

package wire

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/pfsync/record"
)

// FuzzDecode: any input either fails to decode or decodes to a frame that
// re-encodes to bytes decoding to the same frame. Decoding never panics.
func FuzzDecode(f *testing.F) {
	f.Add(headerBytes)
	f.Add(cat(headerBytes, h("04 0014 0001 00000001 0000000000000002 0000000000000003")))
	f.Add(cat(headerBytes, h("03 0000 0001 001f"), testDeltaBody))
	f.Add(cat(headerBytes, h("01 0000 0001 0048"), tcp4Body))
	f.Add(cat(headerBytes, h("c8 0003 0002 aabbcc ddeeff c9 0000 0002 0001 aa 0000")))
	rng := rand.New(rand.NewPCG(13, 14))
	for range 20 {
		fr := Frame{Header: Header{Sender: 1 + rng.Uint32N(9), Seq: rng.Uint64()}}
		for range 1 + rng.IntN(6) {
			fr.Elements = append(fr.Elements, randElement(rng))
		}
		b, err := AppendFrame(nil, &fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		// The Reader must agree with Decode and never panic either.
		var rd Reader
		if rerr := rd.Reset(b); rerr == nil {
			for rd.Next() {
				_ = rd.Raw()
			}
		} else if err == nil {
			t.Fatalf("Reader.Reset failed (%v) but Decode succeeded", rerr)
		}
		if err != nil {
			return
		}
		enc, err := AppendFrame(nil, &fr)
		if errors.Is(err, ErrTooLarge) {
			return // non-canonical input near MaxFrameLen can re-encode larger
		}
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v\n%#v", err, fr)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		fr.Skipped = 0
		if diff := cmp.Diff(fr, again, cmpOpts); diff != "" {
			t.Fatalf("re-encoded frame decodes differently (-first +second):\n%s", diff)
		}
	})
}

// FuzzDecodeRecord checks the full-record body decoder.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(tcp4Body)
	for _, r := range []record.Record{tcp6(), udp4()} {
		b, err := AppendRecord(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record.Record
		if err := DecodeRecord(b, &r); err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record is invalid: %v", err)
		}
		enc, err := AppendRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) != RecordLen(&r) {
			t.Fatalf("RecordLen %d, encoded %d", RecordLen(&r), len(enc))
		}
		var again record.Record
		if err := DecodeRecord(enc, &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if diff := cmp.Diff(r, again, cmpOpts); diff != "" {
			t.Fatalf("(-first +second):\n%s", diff)
		}
	})
}

// FuzzDecodeDelta checks the compressed-update body decoder.
func FuzzDecodeDelta(f *testing.F) {
	f.Add(testDeltaBody)
	r := tcp4()
	for _, fields := range []record.Fields{0, record.FieldsAll, record.FieldReply | record.FieldCounters} {
		d := r.Delta(fields)
		b, err := AppendDelta(nil, &d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d record.Delta
		if err := DecodeDelta(b, &d); err != nil {
			return
		}
		enc, err := AppendDelta(nil, &d)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) != DeltaLen(&d) {
			t.Fatalf("DeltaLen %d, encoded %d", DeltaLen(&d), len(enc))
		}
		var again record.Delta
		if err := DecodeDelta(enc, &again); err != nil {
			t.Fatalf("re-encoded delta does not decode: %v", err)
		}
		if diff := cmp.Diff(d, again); diff != "" {
			t.Fatalf("(-first +second):\n%s", diff)
		}
	})
}

type element[T any] interface {
	*T
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

// fuzzElement checks one control element's decoder: never panics, and a
// decoded value re-encodes to bytes that decode to the same value.
func fuzzElement[T any, P element[T]](f *testing.F, seeds ...T) {
	for _, s := range seeds {
		b, err := P(&s).AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, 0xff)) // a longer element from a newer sender
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		if err := P(&v).UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := P(&v).AppendBinary(nil)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		var w T
		if err := P(&w).UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded element does not decode: %v", err)
		}
		if diff := cmp.Diff(v, w, cmpOpts); diff != "" {
			t.Fatalf("(-first +second):\n%s", diff)
		}
	})
}

var seedID = record.ID{Creator: 1, Num: 2}

func FuzzDelete(f *testing.F) { fuzzElement(f, Delete{ID: seedID, Version: 3}) }
func FuzzClear(f *testing.F) {
	fuzzElement(f, Clear{Creator: 1}, Clear{Creator: 2, HasZone: true, Zone: 5})
}
func FuzzRequest(f *testing.F) {
	fuzzElement(f, Request{ID: seedID})
}
func FuzzInsertAck(f *testing.F) { fuzzElement(f, InsertAck{ID: seedID}) }
func FuzzBulkRequest(f *testing.F) {
	fuzzElement(f, BulkRequest{Generation: 1}, BulkRequest{Generation: 2, Creator: 3, Buckets: BucketSet{5, 0, 1 << 63}})
}
func FuzzBulkMark(f *testing.F) {
	fuzzElement(f, BulkMark{Generation: 1, Since: 7, First: 3, Last: 9, Digest: record.Digest{Count: 2, Sum: 3}},
		BulkMark{Generation: 1, Since: 7, First: 255, Last: 255})
}
func FuzzBulkStart(f *testing.F) { fuzzElement(f, BulkStart{Generation: 1, Expected: 1000}) }
func FuzzBulkEnd(f *testing.F) {
	fuzzElement(f, BulkEnd{Generation: 1, Digest: record.Digest{Count: 2, Sum: 3}})
}
func FuzzAck(f *testing.F) {
	fuzzElement(f, Ack{Peer: 1, Epoch: 2, Cum: 3}, Ack{Peer: 1, Epoch: 2, Cum: 3, Nacks: []SeqRange{{5, 6}, {9, 9}}})
}
func FuzzHello(f *testing.F) {
	fuzzElement(f, Hello{Node: 1, Epoch: 2, Boot: 3, MinVersion: 1, MaxVersion: 1, Flags: HelloReply, Caps: CapDefer, Echo: 4})
}
func FuzzHeartbeat(f *testing.F) {
	fuzzElement(f, Heartbeat{Interval: time.Second, Records: 9})
}
func FuzzDigest(f *testing.F) {
	fuzzElement(f, Digest{Creator: 1, Buckets: 16, First: 4, Sums: []uint64{1, 2, 3}})
}

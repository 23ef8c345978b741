package wire

import (
	"errors"
	"testing"

	"github.com/gocarp/gocarp/pfsync/record"
)

// TestAddCoarse: an anti-entropy bucket of a 64-way split covers exactly
// the bulk buckets AddCoarse names, for every ID.
func TestAddCoarse(t *testing.T) {
	for num := range uint64(5000) {
		id := record.ID{Creator: 7, Num: num}
		coarse := record.Bucket(id, 64)
		var s BucketSet
		s.AddCoarse(coarse, 64)
		if s.Len() != Buckets/64 {
			t.Fatalf("AddCoarse(%d, 64) has %d buckets, want %d", coarse, s.Len(), Buckets/64)
		}
		if !s.Has(BucketOf(id)) {
			t.Fatalf("%v: bulk bucket %d not in coarse bucket %d's set", id, BucketOf(id), coarse)
		}
		var other BucketSet
		other.AddCoarse((coarse+1)%64, 64)
		if other.Has(BucketOf(id)) {
			t.Fatalf("%v: bulk bucket %d also in coarse bucket %d", id, BucketOf(id), (coarse+1)%64)
		}
	}
	var s BucketSet
	s.AddCoarse(1, 3) // 3 does not divide 256
	s.AddCoarse(64, 64)
	s.AddCoarse(-1, 64)
	if !s.Empty() {
		t.Errorf("bad AddCoarse arguments added %d buckets", s.Len())
	}
}

func TestBucketSet(t *testing.T) {
	var s BucketSet
	for _, b := range []int{0, 63, 64, 255, 256, -1} {
		s.Add(b)
	}
	if s.Len() != 4 || !s.Has(0) || !s.Has(63) || !s.Has(64) || !s.Has(255) || s.Has(1) || s.Has(256) || s.Has(-1) {
		t.Fatalf("set %x: want exactly 0, 63, 64, 255", s)
	}
	all := AllBuckets()
	if all.Len() != Buckets {
		t.Fatalf("AllBuckets has %d", all.Len())
	}
	rest := all.Without(s)
	if rest.Len() != Buckets-4 || rest.Has(63) || !rest.Has(62) {
		t.Fatalf("Without: %d buckets", rest.Len())
	}
	if u := rest.Union(s); u != all {
		t.Fatalf("Union %x, want all", u)
	}
}

// TestBulkRequestLegacy: the 12-byte element of the first draft decodes as
// a request for every bucket (an empty set); a longer one carries its set.
func TestBulkRequestLegacy(t *testing.T) {
	var r BulkRequest
	if err := r.UnmarshalBinary(h("0000000000000009 00000003")); err != nil {
		t.Fatal(err)
	}
	if r.Generation != 9 || r.Creator != 3 || !r.Buckets.Empty() {
		t.Fatalf("legacy request = %+v", r)
	}
	want := BulkRequest{Generation: 9, Creator: 3}
	want.Buckets.Add(200)
	b, _ := want.AppendBinary(nil)
	if len(b) != BulkRequestLen {
		t.Fatalf("encoded %d bytes, want %d", len(b), BulkRequestLen)
	}
	if err := r.UnmarshalBinary(append(b, 0xee)); err != nil || r != want {
		t.Fatalf("longer element: %+v, %v; want %+v", r, err, want)
	}
}

func TestBulkMarkRange(t *testing.T) {
	for _, m := range []BulkMark{{First: 3, Last: 2}, {First: 0, Last: Buckets}} {
		if _, err := m.AppendBinary(nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("AppendBinary(%+v) = %v, want ErrInvalid", m, err)
		}
		b := make([]byte, BulkMarkLen)
		b[17], b[19] = byte(m.First), byte(m.Last)
		b[16], b[18] = byte(m.First>>8), byte(m.Last>>8)
		if err := new(BulkMark).UnmarshalBinary(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("UnmarshalBinary(first %d, last %d) = %v, want ErrInvalid", m.First, m.Last, err)
		}
	}
}

// TestSetMTU: a lowered limit keeps room that raising it gives back.
func TestSetMTU(t *testing.T) {
	var b Builder
	if err := b.SetMTU(200); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMTU before Reset = %v, want ErrInvalid", err)
	}
	if err := b.Reset(nil, 200, Header{Sender: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddClear(Clear{Creator: 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMTU(b.Len() + SectionHeaderLen + BulkStartLen - 1); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBulkStart(BulkStart{Generation: 1}); !errors.Is(err, ErrFull) {
		t.Fatalf("AddBulkStart past the lowered limit = %v, want ErrFull", err)
	}
	if err := b.AddClear(Clear{Creator: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMTU(b.Len() - 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMTU below the frame's length = %v, want ErrInvalid", err)
	}
	if err := b.SetMTU(200); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBulkStart(BulkStart{Generation: 1}); err != nil {
		t.Errorf("AddBulkStart after raising the limit: %v", err)
	}
}

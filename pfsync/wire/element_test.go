package wire

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/pfsync/record"
)

// sampleElements has one valid element of every kind the package knows.
// TestAddEveryKind fails when a kind has none, so a new kind gets one.
func sampleElements() map[Kind]Element {
	rec := tcp4()
	return map[Kind]Element{
		KindInsert:      Insert{Record: rec},
		KindUpdate:      Update{Record: tcp6()},
		KindUpdateC:     UpdateC{Delta: testDelta()},
		KindDelete:      Delete{ID: rec.ID, Version: 3},
		KindClear:       Clear{Creator: 1, HasZone: true, Zone: 7},
		KindRequest:     Request{ID: rec.ID},
		KindInsertAck:   InsertAck{ID: rec.ID},
		KindBulkRequest: BulkRequest{Generation: 4, Creator: 1, Buckets: BucketSet{1 << 3}},
		KindBulkStart:   BulkStart{Generation: 4, Expected: 100},
		KindBulkEnd:     BulkEnd{Generation: 4, Digest: record.Digest{Count: 100, Sum: 0xfeed}},
		KindAck:         Ack{Peer: 2, Epoch: 9, Cum: 10, Nacks: []SeqRange{{12, 14}}},
		KindHello:       Hello{Node: 1, Epoch: 9, Boot: 2, MinVersion: 1, MaxVersion: 1, Caps: CapDefer, Echo: 8},
		KindHeartbeat:   Heartbeat{Interval: time.Second, Records: 5},
		KindDigest:      Digest{Creator: 1, Buckets: 64, First: 2, Sums: []uint64{5, 6}},
		KindBulkMark:    BulkMark{Generation: 4, Since: 1, First: 0, Last: 9, Digest: record.Digest{Count: 3, Sum: 0xbeef}},
	}
}

// pointerTo returns a pointer to a copy of e, as an Element.
func pointerTo(e Element) Element {
	p := reflect.New(reflect.TypeOf(e))
	p.Elem().Set(reflect.ValueOf(e))
	return p.Interface().(Element)
}

// TestAddEveryKind adds an element of every known kind to a Builder as a
// value and as a pointer: both must give the same bytes, which the Reader
// decodes back to the element.
func TestAddEveryKind(t *testing.T) {
	samples := sampleElements()
	for i := range 256 {
		k := Kind(i)
		if !k.Known() {
			if e, ok := samples[k]; ok {
				t.Errorf("sample of unknown kind %v: %T", k, e)
			}
			continue
		}
		e, ok := samples[k]
		if !ok {
			t.Errorf("kind %v: no sample element; add one to sampleElements", k)
			continue
		}
		t.Run(k.String(), func(t *testing.T) {
			if e.Kind() != k {
				t.Fatalf("sample %T has kind %v", e, e.Kind())
			}
			var frames [2][]byte
			for i, add := range []Element{e, pointerTo(e)} {
				var b Builder
				if err := b.Reset(nil, 1400, testHeader); err != nil {
					t.Fatal(err)
				}
				if err := b.Add(add); err != nil {
					t.Fatalf("Add(%T) = %v", add, err)
				}
				frames[i] = b.Bytes()

				var rd Reader
				if err := rd.Reset(b.Bytes()); err != nil {
					t.Fatalf("%T: Reset: %v", add, err)
				}
				if !rd.Next() {
					t.Fatalf("%T: no element in the frame", add)
				}
				if rd.Kind() != k {
					t.Errorf("%T: decoded kind %v", add, rd.Kind())
				}
				got, err := rd.Element()
				if err != nil {
					t.Fatalf("%T: Element: %v", add, err)
				}
				if diff := cmp.Diff(e, got, cmpOpts); diff != "" {
					t.Errorf("%T: round trip (-want +got):\n%s", add, diff)
				}
				if rd.Next() {
					t.Errorf("%T: a second element of kind %v", add, rd.Kind())
				}
			}
			if diff := cmp.Diff(frames[0], frames[1]); diff != "" {
				t.Errorf("value and pointer encode differently (-value +pointer):\n%s", diff)
			}

			// A frame of pointers is the frame of values.
			f := Frame{Header: testHeader, Elements: []Element{pointerTo(e), e}}
			b, err := AppendFrame(nil, &f)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff([]Element{e, e}, got.Elements, cmpOpts); diff != "" {
				t.Errorf("frame of a pointer and a value (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAddNil: a nil Element and a nil pointer of every element type are
// errors, not panics, and leave the frame unchanged.
func TestAddNil(t *testing.T) {
	nils := []Element{nil}
	for _, e := range sampleElements() {
		nils = append(nils, reflect.Zero(reflect.PointerTo(reflect.TypeOf(e))).Interface().(Element))
	}
	for _, e := range nils {
		var b Builder
		if err := b.Reset(nil, 1400, testHeader); err != nil {
			t.Fatal(err)
		}
		if err := b.Add(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%T(nil)) = %v, want ErrInvalid", e, err)
		}
		if b.Len() != HeaderLen || !b.Empty() {
			t.Errorf("Add(%T(nil)) left %d bytes, %d elements", e, b.Len(), b.Elements())
		}
	}
}

// TestAddNotReset: Add on a Builder that was never Reset fails for every
// kind, value or pointer.
func TestAddNotReset(t *testing.T) {
	for k, e := range sampleElements() {
		for _, add := range []Element{e, pointerTo(e)} {
			var b Builder
			if err := b.Add(add); !errors.Is(err, ErrInvalid) {
				t.Errorf("%v: Add(%T) before Reset = %v, want ErrInvalid", k, add, err)
			}
		}
	}
}

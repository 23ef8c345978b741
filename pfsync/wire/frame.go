package wire

import (
	"fmt"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Element is one element of a frame: Insert, Update, UpdateC, Delete,
// Clear, Request, InsertAck, BulkRequest, BulkStart, BulkMark, BulkEnd, Ack,
// Hello, Heartbeat or Digest. Only this package's element types implement
// it, each with value-receiver methods, so a value and a pointer to it are
// both Elements and encode the same way (Builder.Add); Reader.Element and
// Decode return values.
type Element interface {
	// Kind returns the element's wire kind.
	Kind() Kind
	// addTo adds the element to b: the one encoding path of its kind, which
	// Builder.Add and the typed Add method share.
	addTo(b *Builder) error
}

// Insert is a full record the sender has just created (KindInsert).
type Insert struct {
	Record record.Record
}

// Kind returns KindInsert.
func (Insert) Kind() Kind { return KindInsert }

func (i Insert) addTo(b *Builder) error { return b.AddInsert(&i.Record) }

// Update is a full record (KindUpdate).
type Update struct {
	Record record.Record
}

// Kind returns KindUpdate.
func (Update) Kind() Kind { return KindUpdate }

func (u Update) addTo(b *Builder) error { return b.AddUpdate(&u.Record) }

// UpdateC is a compressed update (KindUpdateC).
type UpdateC struct {
	Delta record.Delta
}

// Kind returns KindUpdateC.
func (UpdateC) Kind() Kind { return KindUpdateC }

func (u UpdateC) addTo(b *Builder) error { return b.AddDelta(&u.Delta) }

// Frame is a whole decoded frame, for tests, tools and fuzzing. The engine
// uses Builder and Reader instead.
type Frame struct {
	Header   Header
	Elements []Element
	// Skipped counts the elements of unknown kinds that Decode skipped; it
	// is not encoded.
	Skipped int
}

// Decode decodes a whole frame. Records are copies: the Frame does not alias
// b. The first malformed element fails the whole decode, with its index.
func Decode(b []byte) (Frame, error) {
	var rd Reader
	if err := rd.Reset(b); err != nil {
		return Frame{}, err
	}
	f := Frame{Header: rd.Header()}
	_, f.Skipped = rd.Skipped()
	for rd.Next() {
		e, err := rd.Element()
		if err != nil {
			return f, fmt.Errorf("wire: element %d: %w", len(f.Elements), err)
		}
		f.Elements = append(f.Elements, e)
	}
	return f, nil
}

// AppendFrame encodes f and appends it to dst. Consecutive elements of the
// same kind share a section. The frame may be up to MaxFrameLen bytes; use a
// Builder to respect a smaller MTU.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	var b Builder
	if err := b.Reset(dst, MaxFrameLen, f.Header); err != nil {
		return dst, err
	}
	for i, e := range f.Elements {
		if e == nil {
			return dst, fmt.Errorf("wire: element %d: %w: nil", i, ErrInvalid)
		}
		if err := b.Add(e); err != nil {
			if err == ErrFull {
				err = ErrTooLarge
			}
			return dst, fmt.Errorf("wire: element %d (%v): %w", i, e.Kind(), err)
		}
	}
	return b.Bytes(), nil
}

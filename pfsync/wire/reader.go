package wire

import (
	"fmt"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Reader iterates over the elements of one frame without allocating:
//
//	var rd wire.Reader
//	if err := rd.Reset(frame); err != nil { /* count and drop */ }
//	for rd.Next() {
//		switch rd.Kind() {
//		case wire.KindUpdateC:
//			err := rd.Delta(&delta)
//		...
//		}
//	}
//
// Reset checks the structure of the whole frame first — the header, every
// section header, every count × element length (in 64-bit arithmetic, so it
// cannot overflow even where int is 32 bits) and every element length
// prefix — so a frame is either rejected as a whole before any element is
// processed, or every element can be visited. Element contents are decoded
// by the typed accessors, whose errors concern that element only (count it
// as bad and go on, as pfsync does per state).
//
// Sections of unknown kinds are skipped by Next and counted (Skipped).
// Records and extensions decoded by a Reader alias the frame buffer.
type Reader struct {
	frame []byte
	h     Header
	off   int
	kind  Kind
	fixed int
	left  int
	elem  []byte

	unknownSections, unknownElements int
}

// Reset starts reading frame. It returns an error wrapping ErrTruncated,
// ErrVersion or ErrInvalid, with the offset, if the frame is malformed; the
// Reader then yields no element.
func (r *Reader) Reset(frame []byte) error {
	*r = Reader{}
	if len(frame) > MaxFrameLen {
		return fmt.Errorf("%w: frame of %d bytes (max %d)", ErrInvalid, len(frame), MaxFrameLen)
	}
	h, err := ParseHeader(frame)
	if err != nil {
		return err
	}
	var us, ue int
	off := HeaderLen
	for off < len(frame) {
		if len(frame)-off < SectionHeaderLen {
			return fmt.Errorf("%w: section header at offset %d: %d bytes left", ErrTruncated, off, len(frame)-off)
		}
		k := Kind(frame[off])
		fixed := int(be.Uint16(frame[off+1:]))
		count := int(be.Uint16(frame[off+3:]))
		sec := off
		off += SectionHeaderLen
		if fixed > 0 {
			total := uint64(fixed) * uint64(count)
			if total > uint64(len(frame)-off) {
				return fmt.Errorf("%w: %v section at offset %d: %d × %d bytes, %d left", ErrTruncated, k, sec, count, fixed, len(frame)-off)
			}
			off += int(total)
		} else {
			for i := range count {
				if len(frame)-off < 2 {
					return fmt.Errorf("%w: %v section at offset %d: element %d length at offset %d", ErrTruncated, k, sec, i, off)
				}
				n := int(be.Uint16(frame[off:]))
				off += 2
				if n > len(frame)-off {
					return fmt.Errorf("%w: %v section at offset %d: element %d of %d bytes at offset %d, %d left", ErrTruncated, k, sec, i, n, off, len(frame)-off)
				}
				off += n
			}
		}
		if !k.Known() {
			us++
			ue += count
		}
	}
	r.frame, r.h, r.off = frame, h, HeaderLen
	r.unknownSections, r.unknownElements = us, ue
	return nil
}

// Header returns the frame header.
func (r *Reader) Header() Header { return r.h }

// Skipped returns the number of sections and elements of unknown kinds in
// the frame (pfsync counts them as "badact"; here they are expected from
// newer peers).
func (r *Reader) Skipped() (sections, elements int) {
	return r.unknownSections, r.unknownElements
}

// Next advances to the next element of a known kind and reports whether
// there is one.
func (r *Reader) Next() bool {
	for {
		if r.left > 0 {
			r.left--
			n := r.fixed
			if n == 0 {
				if len(r.frame)-r.off < 2 {
					return r.stop()
				}
				n = int(be.Uint16(r.frame[r.off:]))
				r.off += 2
			}
			if n > len(r.frame)-r.off {
				return r.stop()
			}
			r.elem = r.frame[r.off : r.off+n : r.off+n]
			r.off += n
			if r.kind.Known() {
				return true
			}
			continue
		}
		if len(r.frame)-r.off < SectionHeaderLen {
			return r.stop()
		}
		r.kind = Kind(r.frame[r.off])
		r.fixed = int(be.Uint16(r.frame[r.off+1:]))
		r.left = int(be.Uint16(r.frame[r.off+3:]))
		r.off += SectionHeaderLen
		if !r.kind.Known() && r.fixed > 0 {
			// Reset checked the bounds of the whole section.
			r.off += r.fixed * r.left
			r.left = 0
		}
	}
}

// stop ends the iteration (at the end of the frame; Reset guarantees the
// other bounds).
func (r *Reader) stop() bool {
	r.elem, r.left, r.off = nil, 0, len(r.frame)
	return false
}

// Kind returns the kind of the current element.
func (r *Reader) Kind() Kind { return r.kind }

// Raw returns the body of the current element (an alias of the frame).
func (r *Reader) Raw() []byte { return r.elem }

func (r *Reader) want(k Kind) error {
	if r.elem == nil || r.kind != k {
		return fmt.Errorf("%w: %v element, want %v", ErrKind, r.kind, k)
	}
	return nil
}

// Record decodes the current INSERT or UPDATE element into rec (see
// DecodeRecord: it reuses rec.Ext and aliases the frame).
func (r *Reader) Record(rec *record.Record) error {
	if r.elem == nil || (r.kind != KindInsert && r.kind != KindUpdate) {
		return fmt.Errorf("%w: %v element, want insert or update", ErrKind, r.kind)
	}
	return decodeRecord(r.elem, rec, r.kind)
}

// Delta decodes the current UPDATE_C element into d.
func (r *Reader) Delta(d *record.Delta) error {
	if err := r.want(KindUpdateC); err != nil {
		return err
	}
	return DecodeDelta(r.elem, d)
}

func decodeFixed[T any, P interface {
	*T
	UnmarshalBinary([]byte) error
}](r *Reader, k Kind) (T, error) {
	var v T
	if err := r.want(k); err != nil {
		return v, err
	}
	err := P(&v).UnmarshalBinary(r.elem)
	return v, err
}

// Delete decodes the current DELETE element.
func (r *Reader) Delete() (Delete, error) { return decodeFixed[Delete](r, KindDelete) }

// Clear decodes the current CLEAR element.
func (r *Reader) Clear() (Clear, error) { return decodeFixed[Clear](r, KindClear) }

// Request decodes the current REQUEST element.
func (r *Reader) Request() (Request, error) { return decodeFixed[Request](r, KindRequest) }

// InsertAck decodes the current INSERT_ACK element.
func (r *Reader) InsertAck() (InsertAck, error) { return decodeFixed[InsertAck](r, KindInsertAck) }

// BulkRequest decodes the current BULK_REQUEST element.
func (r *Reader) BulkRequest() (BulkRequest, error) {
	return decodeFixed[BulkRequest](r, KindBulkRequest)
}

// BulkStart decodes the current BULK_START element.
func (r *Reader) BulkStart() (BulkStart, error) { return decodeFixed[BulkStart](r, KindBulkStart) }

// BulkEnd decodes the current BULK_END element.
func (r *Reader) BulkEnd() (BulkEnd, error) { return decodeFixed[BulkEnd](r, KindBulkEnd) }

// BulkMark decodes the current BULK_MARK element.
func (r *Reader) BulkMark() (BulkMark, error) { return decodeFixed[BulkMark](r, KindBulkMark) }

// Hello decodes the current HELLO element.
func (r *Reader) Hello() (Hello, error) { return decodeFixed[Hello](r, KindHello) }

// Heartbeat decodes the current HEARTBEAT element.
func (r *Reader) Heartbeat() (Heartbeat, error) { return decodeFixed[Heartbeat](r, KindHeartbeat) }

// Ack decodes the current ACK element into a, reusing a.Nacks.
func (r *Reader) Ack(a *Ack) error {
	if err := r.want(KindAck); err != nil {
		return err
	}
	return a.UnmarshalBinary(r.elem)
}

// Digest decodes the current DIGEST element into d, reusing d.Sums.
func (r *Reader) Digest(d *Digest) error {
	if err := r.want(KindDigest); err != nil {
		return err
	}
	return d.UnmarshalBinary(r.elem)
}

// Element decodes the current element into a new value of its type (Insert,
// Update, UpdateC, Delete, ...). Records are cloned, so the result does not
// alias the frame. It allocates; the typed accessors do not. On error the
// Element is nil.
func (r *Reader) Element() (Element, error) {
	if r.elem == nil || !r.kind.Known() {
		return nil, fmt.Errorf("%w: %v element", ErrKind, r.kind)
	}
	e, err := kinds[r.kind].decode(r)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// decodeRecordElement is the decode function of KindInsert and KindUpdate.
func decodeRecordElement(r *Reader) (Element, error) {
	var rec record.Record
	if err := r.Record(&rec); err != nil {
		return nil, err
	}
	rec = rec.Clone()
	if r.kind == KindInsert {
		return Insert{Record: rec}, nil
	}
	return Update{Record: rec}, nil
}

// decodeDeltaElement is the decode function of KindUpdateC.
func decodeDeltaElement(r *Reader) (Element, error) {
	var d record.Delta
	err := r.Delta(&d)
	return UpdateC{Delta: d}, err
}

// decodeAckElement is the decode function of KindAck.
func decodeAckElement(r *Reader) (Element, error) {
	var a Ack
	err := r.Ack(&a)
	return a, err
}

// decodeDigestElement is the decode function of KindDigest.
func decodeDigestElement(r *Reader) (Element, error) {
	var d Digest
	err := r.Digest(&d)
	return d, err
}

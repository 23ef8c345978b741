package wire

import (
	"fmt"
	"reflect"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Builder assembles one frame into a caller's buffer, grouping consecutive
// elements of the same kind into one section. It never allocates when the
// buffer has capacity for mtu bytes past its start.
//
// Every Add method either appends the whole element and returns nil, or
// leaves the frame unchanged and returns:
//
//   - ErrFull (compare with ==) when the element does not fit into what is
//     left of the MTU: send Bytes, Reset, and add the element again;
//   - ErrTooLarge (==) when it would not fit even into an empty frame;
//   - an error wrapping ErrInvalid when the value cannot be encoded.
//
// The zero Builder is not usable; call Reset first. A Builder is not safe
// for concurrent use.
type Builder struct {
	buf   []byte
	start int // offset of the frame in buf
	mtu   int // 0 when not Reset
	sec   int // offset of the open section header, -1 if none
	kind  Kind
	count int // elements in the open section
	n     int // elements in the frame
}

// Reset starts a new frame with header h appended to buf; the frame may grow
// to mtu bytes (MinMTU to MaxFrameLen): the transport MTU minus the sealer's
// overhead. h.Version is ignored; the package's Version is written.
//
// Pass a buffer with at least mtu bytes of spare capacity to avoid
// allocations, e.g. Reset(scratch[:0], mtu, h) with cap(scratch) ≥ mtu.
func (b *Builder) Reset(buf []byte, mtu int, h Header) error {
	*b = Builder{buf: buf, start: len(buf), sec: -1}
	if mtu < MinMTU || mtu > MaxFrameLen {
		return fmt.Errorf("%w: mtu %d out of range %d-%d", ErrInvalid, mtu, MinMTU, MaxFrameLen)
	}
	if h.Sender == 0 {
		return fmt.Errorf("%w: header sender 0 (must be 1-4294967295)", ErrInvalid)
	}
	b.mtu = mtu
	b.buf = h.append(buf)
	return nil
}

// SetMTU changes the size the frame may grow to. A caller lowers it to keep
// room for trailing elements, then raises it again to add them. It fails if
// mtu is smaller than the frame already is or larger than MaxFrameLen.
func (b *Builder) SetMTU(mtu int) error {
	if b.mtu == 0 {
		return errNotReset
	}
	if mtu < b.Len() || mtu > MaxFrameLen {
		return fmt.Errorf("%w: mtu %d out of range %d-%d (the frame's length to the largest frame)", ErrInvalid, mtu, b.Len(), MaxFrameLen)
	}
	b.mtu = mtu
	return nil
}

// SetSeq overwrites the header's sequence number, for engines that number a
// frame only when it is sent.
func (b *Builder) SetSeq(seq uint64) {
	if b.mtu != 0 {
		be.PutUint64(b.buf[b.start+14:], seq)
	}
}

// SetFlags overwrites the header's flags.
func (b *Builder) SetFlags(f Flags) {
	if b.mtu != 0 {
		b.buf[b.start+1] = byte(f)
	}
}

// Bytes returns the buffer given to Reset with the frame appended. It stays
// valid until the next Reset of the same buffer.
func (b *Builder) Bytes() []byte { return b.buf }

// Frame returns only the frame (Bytes without what preceded it in the buffer).
func (b *Builder) Frame() []byte { return b.buf[b.start:] }

// Len returns the size of the frame so far, header included.
func (b *Builder) Len() int { return len(b.buf) - b.start }

// Room returns how many more bytes the frame may grow.
func (b *Builder) Room() int { return b.mtu - b.Len() }

// Elements returns the number of elements added since Reset.
func (b *Builder) Elements() int { return b.n }

// Empty reports whether no element was added since Reset.
func (b *Builder) Empty() bool { return b.n == 0 }

// errNotReset is returned by Add methods of a Builder whose Reset failed or
// was never called.
var errNotReset = fmt.Errorf("%w: builder not Reset", ErrInvalid)

// reserve checks that an element of size bytes of kind k fits and writes the
// section header and length prefix it needs. fixed is the section's element
// length (0: variable, length-prefixed elements).
func (b *Builder) reserve(k Kind, fixed, size int) error {
	if b.mtu == 0 {
		return errNotReset
	}
	elem := size
	if fixed == 0 {
		elem += 2
	}
	if size > MaxElementLen || HeaderLen+SectionHeaderLen+elem > b.mtu {
		return ErrTooLarge
	}
	newSec := b.sec < 0 || b.kind != k || b.count == MaxCount
	need := elem
	if newSec {
		need += SectionHeaderLen
	}
	if b.Len()+need > b.mtu {
		return ErrFull
	}
	if newSec {
		b.sec, b.kind, b.count = len(b.buf), k, 0
		b.buf = append(b.buf, byte(k), byte(fixed>>8), byte(fixed), 0, 0)
	}
	if fixed == 0 {
		b.buf = be.AppendUint16(b.buf, uint16(size))
	}
	return nil
}

// commit counts the element just appended, whose body started at from and
// should be size bytes long.
func (b *Builder) commit(from, size int) error {
	if len(b.buf)-from != size {
		// An encoder and its size computation disagree: a bug. Drop the
		// element rather than send a frame that does not parse.
		b.buf = b.buf[:from]
		return fmt.Errorf("%w: internal size mismatch for %v element (%d != %d)", ErrInvalid, b.kind, len(b.buf)-from, size)
	}
	b.count++
	b.n++
	be.PutUint16(b.buf[b.sec+3:], uint16(b.count))
	return nil
}

func (b *Builder) addRecord(k Kind, r *record.Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("wire: %w: %w", ErrInvalid, err)
	}
	present, modes, size := recordLayout(r)
	if err := b.reserve(k, 0, size); err != nil {
		return err
	}
	from := len(b.buf)
	b.buf = appendRecord(b.buf, r, present, modes)
	return b.commit(from, size)
}

// AddInsert adds r as a full record the sender has just created (INSERT).
func (b *Builder) AddInsert(r *record.Record) error { return b.addRecord(KindInsert, r) }

// AddUpdate adds r as a full record (UPDATE): answers to requests, bulk
// transfers, and updates that change creator-owned fields.
func (b *Builder) AddUpdate(r *record.Record) error { return b.addRecord(KindUpdate, r) }

// minRecordLen is the shortest full-record body: an IPv4 record with no
// optional field (creator, num, one-byte version, family, proto, present,
// two address-port pairs, expire, timeout).
const minRecordLen = 4 + 8 + 1 + 1 + 1 + 2 + 2*(4+2) + 1 + 1

// AddRecordBody adds body, a full-record element body encoded earlier by
// AppendRecord (or received and checked by DecodeRecord), as an element of
// kind k, KindInsert or KindUpdate, without decoding and re-encoding it: the
// bulk-sync path of an engine that stores records in their wire encoding.
// It checks only the length (at least the shortest valid body); a body that
// does not come from this package's encoder makes a frame its receivers
// reject. ErrFull and ErrTooLarge are returned as by AddUpdate.
func (b *Builder) AddRecordBody(k Kind, body []byte) error {
	if k != KindInsert && k != KindUpdate {
		return fmt.Errorf("%w: AddRecordBody with kind %v (want insert or update)", ErrInvalid, k)
	}
	if len(body) < minRecordLen {
		return fmt.Errorf("%w: %v body of %d bytes (min %d)", ErrInvalid, k, len(body), minRecordLen)
	}
	if err := b.reserve(k, 0, len(body)); err != nil {
		return err
	}
	from := len(b.buf)
	b.buf = append(b.buf, body...)
	return b.commit(from, len(body))
}

// AddDelta adds a compressed update (UPDATE_C), typically r.Delta(fields)
// of the live record at flush time.
func (b *Builder) AddDelta(d *record.Delta) error {
	if err := checkDelta(d); err != nil {
		return err
	}
	present, size := deltaLayout(d)
	if err := b.reserve(KindUpdateC, 0, size); err != nil {
		return err
	}
	from := len(b.buf)
	b.buf = appendDelta(b.buf, d, present)
	return b.commit(from, size)
}

// fixedElement is implemented by the fixed-size control elements.
type fixedElement interface {
	Kind() Kind
	AppendBinary([]byte) ([]byte, error)
}

func addFixed[E fixedElement](b *Builder, e E) error {
	k := e.Kind()
	size := k.fixedLen()
	saved := *b
	if err := b.reserve(k, size, size); err != nil {
		return err
	}
	from := len(b.buf)
	buf, err := e.AppendBinary(b.buf)
	if err != nil {
		// Drop the section header reserve may have opened.
		*b = saved
		b.buf = b.buf[:len(saved.buf)]
		return err
	}
	b.buf = buf
	return b.commit(from, size)
}

// AddDelete adds a Delete.
func (b *Builder) AddDelete(d Delete) error { return addFixed(b, d) }

// AddClear adds a Clear.
func (b *Builder) AddClear(c Clear) error { return addFixed(b, c) }

// AddRequest adds a Request.
func (b *Builder) AddRequest(r Request) error { return addFixed(b, r) }

// AddInsertAck adds an InsertAck.
func (b *Builder) AddInsertAck(a InsertAck) error { return addFixed(b, a) }

// AddBulkRequest adds a BulkRequest.
func (b *Builder) AddBulkRequest(r BulkRequest) error { return addFixed(b, r) }

// AddBulkStart adds a BulkStart.
func (b *Builder) AddBulkStart(s BulkStart) error { return addFixed(b, s) }

// AddBulkEnd adds a BulkEnd.
func (b *Builder) AddBulkEnd(e BulkEnd) error { return addFixed(b, e) }

// AddBulkMark adds a BulkMark.
func (b *Builder) AddBulkMark(m BulkMark) error { return addFixed(b, m) }

// AddHello adds a Hello.
func (b *Builder) AddHello(h Hello) error { return addFixed(b, h) }

// AddHeartbeat adds a Heartbeat.
func (b *Builder) AddHeartbeat(h Heartbeat) error { return addFixed(b, h) }

// AddAck adds an Ack.
func (b *Builder) AddAck(a *Ack) error {
	if err := a.check(); err != nil {
		return err
	}
	size := a.size()
	if err := b.reserve(KindAck, 0, size); err != nil {
		return err
	}
	from := len(b.buf)
	b.buf = a.append(b.buf)
	return b.commit(from, size)
}

// AddDigest adds a Digest.
func (b *Builder) AddDigest(d *Digest) error {
	if err := d.check(); err != nil {
		return err
	}
	size := d.size()
	if err := b.reserve(KindDigest, 0, size); err != nil {
		return err
	}
	from := len(b.buf)
	b.buf = d.append(b.buf)
	return b.commit(from, size)
}

// Add adds e, given as a value or as a pointer (Add(BulkMark{...}) and
// Add(&BulkMark{...}) are the same), through the encoder its kind shares
// with the typed Add method; the typed methods avoid the interface
// conversion. A nil Element or nil pointer is an error wrapping ErrInvalid.
func (b *Builder) Add(e Element) error {
	if e == nil {
		return fmt.Errorf("%w: nil element", ErrInvalid)
	}
	// The element methods have value receivers, so calling one through a
	// nil pointer would panic.
	if v := reflect.ValueOf(e); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("%w: nil %T element", ErrInvalid, e)
	}
	return e.addTo(b)
}

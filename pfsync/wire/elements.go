package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Control elements. Each has AppendBinary (append the element body, without
// a section header or length prefix) and UnmarshalBinary (decode a body,
// reading the known prefix of a longer one).

var be = binary.BigEndian

func needLen(b []byte, n int, k Kind) error {
	if len(b) < n {
		return fmt.Errorf("%w: %v element of %d bytes, need %d", ErrTruncated, k, len(b), n)
	}
	return nil
}

// Delete says that a record was deleted by its owner or expired on the
// sender at Version. Receivers drop their copy if it is not newer and keep a
// tombstone (docs/protocol.md, "Deletes and tombstones").
//
// Wire (20 bytes): creator u32 | num u64 | version u64.
type Delete struct {
	ID      record.ID
	Version uint64
}

// Kind returns KindDelete.
func (Delete) Kind() Kind { return KindDelete }

func (d Delete) addTo(b *Builder) error { return addFixed(b, d) }

// AppendBinary appends the 20-byte element body.
func (d Delete) AppendBinary(b []byte) ([]byte, error) {
	if d.ID.Creator == 0 {
		return b, fmt.Errorf("%w: delete with creator 0", ErrInvalid)
	}
	b = be.AppendUint32(b, d.ID.Creator)
	b = be.AppendUint64(b, d.ID.Num)
	return be.AppendUint64(b, d.Version), nil
}

// UnmarshalBinary decodes an element body.
func (d *Delete) UnmarshalBinary(b []byte) error {
	if err := needLen(b, DeleteLen, KindDelete); err != nil {
		return err
	}
	*d = Delete{ID: record.ID{Creator: be.Uint32(b), Num: be.Uint64(b[4:])}, Version: be.Uint64(b[12:])}
	if d.ID.Creator == 0 {
		return fmt.Errorf("%w: delete with creator 0 at offset 0", ErrInvalid)
	}
	return nil
}

// Clear deletes every record created by Creator, or only those in Zone when
// HasZone is set (pfsync CLR, which is scoped by interface name instead).
// Sent when a node flushes its table.
//
// Wire (8 bytes): creator u32 | flags u8 (bit 0: zone) | pad u8 | zone u16.
type Clear struct {
	Creator uint32
	HasZone bool
	Zone    uint16
}

// Kind returns KindClear.
func (Clear) Kind() Kind { return KindClear }

func (c Clear) addTo(b *Builder) error { return addFixed(b, c) }

// AppendBinary appends the 8-byte element body.
func (c Clear) AppendBinary(b []byte) ([]byte, error) {
	if c.Creator == 0 {
		return b, fmt.Errorf("%w: clear with creator 0", ErrInvalid)
	}
	var f byte
	if c.HasZone {
		f = 1
	}
	b = be.AppendUint32(b, c.Creator)
	b = append(b, f, 0)
	return be.AppendUint16(b, c.Zone), nil
}

// UnmarshalBinary decodes an element body.
func (c *Clear) UnmarshalBinary(b []byte) error {
	if err := needLen(b, ClearLen, KindClear); err != nil {
		return err
	}
	*c = Clear{Creator: be.Uint32(b), HasZone: b[4]&1 != 0, Zone: be.Uint16(b[6:])}
	if c.Creator == 0 {
		return fmt.Errorf("%w: clear with creator 0 at offset 0", ErrInvalid)
	}
	return nil
}

// Request asks the owner (or any holder) of a record for its full copy,
// sent when a compressed update names a record the receiver does not hold
// (pfsync UPD_REQ).
//
// Wire (12 bytes): creator u32 | num u64.
type Request struct {
	ID record.ID
}

// Kind returns KindRequest.
func (Request) Kind() Kind { return KindRequest }

func (r Request) addTo(b *Builder) error { return addFixed(b, r) }

// AppendBinary appends the 12-byte element body.
func (r Request) AppendBinary(b []byte) ([]byte, error) { return appendID(b, r.ID, KindRequest) }

// UnmarshalBinary decodes an element body.
func (r *Request) UnmarshalBinary(b []byte) error { return parseID(b, &r.ID, KindRequest) }

// InsertAck acknowledges an insert that carried the deferral request, so the
// creator releases the held first packet (pfsync INS_ACK). The engine does
// not send it: a deferred change travels in a frame with FlagAckRequested,
// and the receiver's cumulative Ack of that frame releases it
// (pfsync.Engine.UpsertSync). Receivers skip it.
//
// Wire (12 bytes): creator u32 | num u64.
type InsertAck struct {
	ID record.ID
}

// Kind returns KindInsertAck.
func (InsertAck) Kind() Kind { return KindInsertAck }

func (a InsertAck) addTo(b *Builder) error { return addFixed(b, a) }

// AppendBinary appends the 12-byte element body.
func (a InsertAck) AppendBinary(b []byte) ([]byte, error) { return appendID(b, a.ID, KindInsertAck) }

// UnmarshalBinary decodes an element body.
func (a *InsertAck) UnmarshalBinary(b []byte) error { return parseID(b, &a.ID, KindInsertAck) }

func appendID(b []byte, id record.ID, k Kind) ([]byte, error) {
	if id.Creator == 0 {
		return b, fmt.Errorf("%w: %v with creator 0", ErrInvalid, k)
	}
	b = be.AppendUint32(b, id.Creator)
	return be.AppendUint64(b, id.Num), nil
}

func parseID(b []byte, id *record.ID, k Kind) error {
	if err := needLen(b, 12, k); err != nil {
		return err
	}
	*id = record.ID{Creator: be.Uint32(b), Num: be.Uint64(b[4:])}
	if id.Creator == 0 {
		return fmt.Errorf("%w: %v with creator 0 at offset 0", ErrInvalid, k)
	}
	return nil
}

// BulkRequest asks the receiver to send every record it holds — or only
// those created by Creator when it is non-zero, and only those in Buckets
// when that set is not empty — as full updates framed by BulkStart,
// BulkMark and BulkEnd with the same Generation. pfsync's UPD_REQ(0,0). A
// requester asks again for the buckets whose BulkMark did not verify, not
// for the whole table.
//
// Wire (44 bytes): generation u64 | creator u32 | buckets 4×u64 (bit b of
// word b/64: bucket b). A 12-byte element (no bucket set) asks for every
// bucket.
type BulkRequest struct {
	Generation uint64
	Creator    uint32
	Buckets    BucketSet // empty: every bucket
}

// bulkRequestMinLen is the element without its bucket set.
const bulkRequestMinLen = 12

// Kind returns KindBulkRequest.
func (BulkRequest) Kind() Kind { return KindBulkRequest }

func (r BulkRequest) addTo(b *Builder) error { return addFixed(b, r) }

// AppendBinary appends the 44-byte element body.
func (r BulkRequest) AppendBinary(b []byte) ([]byte, error) {
	b = be.AppendUint64(b, r.Generation)
	b = be.AppendUint32(b, r.Creator)
	for _, w := range r.Buckets {
		b = be.AppendUint64(b, w)
	}
	return b, nil
}

// UnmarshalBinary decodes an element body.
func (r *BulkRequest) UnmarshalBinary(b []byte) error {
	if err := needLen(b, bulkRequestMinLen, KindBulkRequest); err != nil {
		return err
	}
	*r = BulkRequest{Generation: be.Uint64(b), Creator: be.Uint32(b[8:])}
	if len(b) >= BulkRequestLen {
		for i := range r.Buckets {
			r.Buckets[i] = be.Uint64(b[bulkRequestMinLen+8*i:])
		}
	}
	return nil
}

// BulkStart opens the bulk transfer answering the request Generation and
// announces how many records will follow, so the requester can size its
// timeout (pfsync BUS START).
//
// Wire (16 bytes): generation u64 | expected u64.
type BulkStart struct {
	Generation uint64
	Expected   uint64
}

// Kind returns KindBulkStart.
func (BulkStart) Kind() Kind { return KindBulkStart }

func (s BulkStart) addTo(b *Builder) error { return addFixed(b, s) }

// AppendBinary appends the 16-byte element body.
func (s BulkStart) AppendBinary(b []byte) ([]byte, error) {
	b = be.AppendUint64(b, s.Generation)
	return be.AppendUint64(b, s.Expected), nil
}

// UnmarshalBinary decodes an element body.
func (s *BulkStart) UnmarshalBinary(b []byte) error {
	if err := needLen(b, BulkStartLen, KindBulkStart); err != nil {
		return err
	}
	*s = BulkStart{Generation: be.Uint64(b), Expected: be.Uint64(b[8:])}
	return nil
}

// BulkEnd closes a bulk transfer with the digest (count and hash sum, see
// record.Digest) of every (ID, Version) sent, so the requester can verify
// it received them all instead of pretending success like pfsync does after
// its retries.
//
// Wire (24 bytes): generation u64 | count u64 | sum u64.
type BulkEnd struct {
	Generation uint64
	Digest     record.Digest
}

// Kind returns KindBulkEnd.
func (BulkEnd) Kind() Kind { return KindBulkEnd }

func (e BulkEnd) addTo(b *Builder) error { return addFixed(b, e) }

// AppendBinary appends the 24-byte element body.
func (e BulkEnd) AppendBinary(b []byte) ([]byte, error) {
	b = be.AppendUint64(b, e.Generation)
	b = be.AppendUint64(b, e.Digest.Count)
	return be.AppendUint64(b, e.Digest.Sum), nil
}

// UnmarshalBinary decodes an element body.
func (e *BulkEnd) UnmarshalBinary(b []byte) error {
	if err := needLen(b, BulkEndLen, KindBulkEnd); err != nil {
		return err
	}
	*e = BulkEnd{Generation: be.Uint64(b), Digest: record.Digest{Count: be.Uint64(b[8:]), Sum: be.Uint64(b[16:])}}
	return nil
}

// BulkMark vouches for a range of buckets of a bulk transfer: every record
// of buckets First through Last that the transfer Generation carries was
// sent in this frame or an earlier one, none before frame Since, and Digest
// is the record.Digest of their IDs (version 0). Once the receiver holds
// the sender's stream up to the mark's frame it compares the digest of the
// bulk records it received in those buckets: a match settles the range, a
// mismatch (or a mark that never arrives) leaves it for the next request.
// Since lets the receiver distrust a range if it lost frames of the
// sender's stream after the range began.
//
// Wire (36 bytes): generation u64 | since u64 | first u16 | last u16 |
// count u64 | sum u64; First ≤ Last < Buckets.
type BulkMark struct {
	Generation  uint64
	Since       uint64
	First, Last uint16
	Digest      record.Digest
}

// Kind returns KindBulkMark.
func (BulkMark) Kind() Kind { return KindBulkMark }

func (m BulkMark) addTo(b *Builder) error { return addFixed(b, m) }

// AppendBinary appends the 36-byte element body.
func (m BulkMark) AppendBinary(b []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return b, err
	}
	b = be.AppendUint64(b, m.Generation)
	b = be.AppendUint64(b, m.Since)
	b = be.AppendUint16(b, m.First)
	b = be.AppendUint16(b, m.Last)
	b = be.AppendUint64(b, m.Digest.Count)
	return be.AppendUint64(b, m.Digest.Sum), nil
}

// UnmarshalBinary decodes an element body.
func (m *BulkMark) UnmarshalBinary(b []byte) error {
	if err := needLen(b, BulkMarkLen, KindBulkMark); err != nil {
		return err
	}
	v := BulkMark{
		Generation: be.Uint64(b), Since: be.Uint64(b[8:]),
		First: be.Uint16(b[16:]), Last: be.Uint16(b[18:]),
		Digest: record.Digest{Count: be.Uint64(b[20:]), Sum: be.Uint64(b[28:])},
	}
	if err := v.check(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m BulkMark) check() error {
	if m.First > m.Last || int(m.Last) >= Buckets {
		return fmt.Errorf("%w: bulk-mark buckets %d-%d (must be 0 ≤ first ≤ last ≤ %d)", ErrInvalid, m.First, m.Last, Buckets-1)
	}
	return nil
}

// SeqRange is an inclusive range of frame sequence numbers.
type SeqRange struct {
	First, Last uint64
}

// MaxNackRanges bounds the NACK ranges of one Ack.
const MaxNackRanges = 255

// Ack acknowledges the frames received from one peer: every frame of that
// peer's Epoch with Seq ≤ Cum arrived, and the ranges in Nacks (all above
// Cum, in increasing order) are missing and should be resent. Acks ride in
// any frame to any destination, so one multicast frame can acknowledge
// several peers.
//
// Wire (variable): peer u32 | epoch u64 | cum u64 | n u16 |
// n × (first u64 | last u64).
type Ack struct {
	Peer  uint32 // the node whose frames are acknowledged
	Epoch uint64 // that node's epoch
	Cum   uint64
	Nacks []SeqRange
}

// Kind returns KindAck.
func (Ack) Kind() Kind { return KindAck }

func (a Ack) addTo(b *Builder) error { return b.AddAck(&a) }

func (a *Ack) size() int { return 22 + 16*len(a.Nacks) }

func (a *Ack) check() error {
	if a.Peer == 0 {
		return fmt.Errorf("%w: ack for peer 0", ErrInvalid)
	}
	if len(a.Nacks) > MaxNackRanges {
		return fmt.Errorf("%w: ack with %d nack ranges (max %d)", ErrInvalid, len(a.Nacks), MaxNackRanges)
	}
	prev := a.Cum
	for i, r := range a.Nacks {
		if r.First <= prev || r.Last < r.First {
			return fmt.Errorf("%w: ack nack range %d [%d,%d] not above %d or reversed", ErrInvalid, i, r.First, r.Last, prev)
		}
		prev = r.Last
	}
	return nil
}

// AppendBinary appends the element body.
func (a *Ack) AppendBinary(b []byte) ([]byte, error) {
	if err := a.check(); err != nil {
		return b, err
	}
	return a.append(b), nil
}

func (a *Ack) append(b []byte) []byte {
	b = be.AppendUint32(b, a.Peer)
	b = be.AppendUint64(b, a.Epoch)
	b = be.AppendUint64(b, a.Cum)
	b = be.AppendUint16(b, uint16(len(a.Nacks)))
	for _, r := range a.Nacks {
		b = be.AppendUint64(b, r.First)
		b = be.AppendUint64(b, r.Last)
	}
	return b
}

// UnmarshalBinary decodes an element body, reusing the capacity of a.Nacks.
func (a *Ack) UnmarshalBinary(b []byte) error {
	if err := needLen(b, 22, KindAck); err != nil {
		return err
	}
	n := int(be.Uint16(b[20:]))
	if err := needLen(b[22:], 16*n, KindAck); err != nil {
		return err
	}
	a.Peer, a.Epoch, a.Cum = be.Uint32(b), be.Uint64(b[4:]), be.Uint64(b[12:])
	a.Nacks = a.Nacks[:0]
	if n > 0 && a.Nacks == nil {
		a.Nacks = make([]SeqRange, 0, n)
	}
	for i := range n {
		p := b[22+16*i:]
		a.Nacks = append(a.Nacks, SeqRange{First: be.Uint64(p), Last: be.Uint64(p[8:])})
	}
	return a.check()
}

// HelloFlags are the flag bits of a Hello.
type HelloFlags uint8

// Hello flags.
const (
	// HelloReply marks the answer to a Hello; it is not answered again
	// (conntrackd's HELLO_BACK).
	HelloReply HelloFlags = 1 << 0
)

// Caps are capability bits a node advertises in its Hello.
type Caps uint32

// Capabilities.
const (
	CapDefer       Caps = 1 << 0 // handles the deferral insert / INSERT_ACK exchange
	CapAntiEntropy Caps = 1 << 1 // answers Digest elements
)

// Hello opens a sender epoch. A node sends it at start and when it sees a
// peer's new epoch; receivers reset their receive window for that sender and
// schedule a bulk transfer to it (pfsync's bulk on join and conntrackd's
// hello in one mechanism). Boot is a persisted, strictly increasing counter
// (or start time) so frames of a superseded epoch can be rejected.
//
// Echo is the epoch of the node a Hello is addressed to, as the sender last
// heard it (0 in a broadcast Hello). Epochs are random per start, so a
// Hello that echoes a node's current epoch cannot come from a recording:
// it proves that its sender is live, which a node that restarted and lost
// its replay state cannot otherwise tell.
//
// Wire (36 bytes): node u32 | epoch u64 | boot u64 | min-version u8 |
// max-version u8 | flags u8 | pad u8 | caps u32 | echo u64.
type Hello struct {
	Node       uint32
	Epoch      uint64
	Boot       uint64
	MinVersion uint8 // lowest protocol version the node accepts
	MaxVersion uint8 // highest protocol version the node speaks
	Flags      HelloFlags
	Caps       Caps
	Echo       uint64 // the addressee's epoch, or 0
}

// Kind returns KindHello.
func (Hello) Kind() Kind { return KindHello }

func (h Hello) addTo(b *Builder) error { return addFixed(b, h) }

// AppendBinary appends the 36-byte element body.
func (h Hello) AppendBinary(b []byte) ([]byte, error) {
	if h.Node == 0 {
		return b, fmt.Errorf("%w: hello from node 0", ErrInvalid)
	}
	b = be.AppendUint32(b, h.Node)
	b = be.AppendUint64(b, h.Epoch)
	b = be.AppendUint64(b, h.Boot)
	b = append(b, h.MinVersion, h.MaxVersion, byte(h.Flags), 0)
	b = be.AppendUint32(b, uint32(h.Caps))
	return be.AppendUint64(b, h.Echo), nil
}

// UnmarshalBinary decodes an element body.
func (h *Hello) UnmarshalBinary(b []byte) error {
	if err := needLen(b, HelloLen, KindHello); err != nil {
		return err
	}
	*h = Hello{
		Node: be.Uint32(b), Epoch: be.Uint64(b[4:]), Boot: be.Uint64(b[12:]),
		MinVersion: b[20], MaxVersion: b[21], Flags: HelloFlags(b[22]), Caps: Caps(be.Uint32(b[24:])),
		Echo: be.Uint64(b[28:]),
	}
	if h.Node == 0 {
		return fmt.Errorf("%w: hello from node 0 at offset 0", ErrInvalid)
	}
	return nil
}

// Heartbeat tells peers the sender is alive when it has nothing else to
// send; peers declare it down after a few missed intervals. Records is the
// number of records the sender owns, a cheap divergence hint.
//
// Wire (12 bytes): interval-ms u32 | records u64.
type Heartbeat struct {
	Interval time.Duration // sent in whole milliseconds, 0 to 2^32-1 ms
	Records  uint64
}

// Kind returns KindHeartbeat.
func (Heartbeat) Kind() Kind { return KindHeartbeat }

func (h Heartbeat) addTo(b *Builder) error { return addFixed(b, h) }

// AppendBinary appends the 12-byte element body. Sub-millisecond parts of
// Interval are truncated.
func (h Heartbeat) AppendBinary(b []byte) ([]byte, error) {
	ms := h.Interval.Milliseconds()
	if ms < 0 || ms > math.MaxUint32 {
		return b, fmt.Errorf("%w: heartbeat interval %v (must be 0-%d ms)", ErrInvalid, h.Interval, uint32(math.MaxUint32))
	}
	b = be.AppendUint32(b, uint32(ms))
	return be.AppendUint64(b, h.Records), nil
}

// UnmarshalBinary decodes an element body.
func (h *Heartbeat) UnmarshalBinary(b []byte) error {
	if err := needLen(b, HeartbeatLen, KindHeartbeat); err != nil {
		return err
	}
	*h = Heartbeat{Interval: time.Duration(be.Uint32(b)) * time.Millisecond, Records: be.Uint64(b[4:])}
	return nil
}

// DigestFlags are the flag bits of a Digest.
type DigestFlags uint8

// Digest flags.
const (
	// DigestReply marks a digest sent in answer to a peer's digest.
	DigestReply DigestFlags = 1 << 0
)

// MaxDigestSums bounds the bucket sums of one Digest element.
const MaxDigestSums = 4096

// Digest carries anti-entropy hashes: the records created by Creator (0: all
// records the sender holds) are split into Buckets buckets by
// record.Bucket, and Sums[i] is the record.Digest Sum of bucket First+i. A
// receiver compares them with its own and requests the records of
// mismatching buckets.
//
// Wire (variable): creator u32 | flags u8 | buckets u16 | first u16 | n u16 |
// n × sum u64.
type Digest struct {
	Creator uint32
	Flags   DigestFlags
	Buckets uint16 // total number of buckets, ≥ 1
	First   uint16 // bucket of Sums[0]
	Sums    []uint64
}

// Kind returns KindDigest.
func (Digest) Kind() Kind { return KindDigest }

func (d Digest) addTo(b *Builder) error { return b.AddDigest(&d) }

func (d *Digest) size() int { return 11 + 8*len(d.Sums) }

func (d *Digest) check() error {
	if d.Buckets == 0 {
		return fmt.Errorf("%w: digest with 0 buckets", ErrInvalid)
	}
	if len(d.Sums) > MaxDigestSums || int(d.First)+len(d.Sums) > int(d.Buckets) {
		return fmt.Errorf("%w: digest buckets %d-%d of %d", ErrInvalid, d.First, int(d.First)+len(d.Sums)-1, d.Buckets)
	}
	return nil
}

// AppendBinary appends the element body.
func (d *Digest) AppendBinary(b []byte) ([]byte, error) {
	if err := d.check(); err != nil {
		return b, err
	}
	return d.append(b), nil
}

func (d *Digest) append(b []byte) []byte {
	b = be.AppendUint32(b, d.Creator)
	b = append(b, byte(d.Flags))
	b = be.AppendUint16(b, d.Buckets)
	b = be.AppendUint16(b, d.First)
	b = be.AppendUint16(b, uint16(len(d.Sums)))
	for _, s := range d.Sums {
		b = be.AppendUint64(b, s)
	}
	return b
}

// UnmarshalBinary decodes an element body, reusing the capacity of d.Sums.
func (d *Digest) UnmarshalBinary(b []byte) error {
	if err := needLen(b, 11, KindDigest); err != nil {
		return err
	}
	n := int(be.Uint16(b[9:]))
	if err := needLen(b[11:], 8*n, KindDigest); err != nil {
		return err
	}
	d.Creator, d.Flags, d.Buckets, d.First = be.Uint32(b), DigestFlags(b[4]), be.Uint16(b[5:]), be.Uint16(b[7:])
	d.Sums = d.Sums[:0]
	if n > 0 && d.Sums == nil {
		d.Sums = make([]uint64, 0, n)
	}
	for i := range n {
		d.Sums = append(d.Sums, be.Uint64(b[11+8*i:]))
	}
	return d.check()
}

package wire

import "fmt"

// Kind is the type of the elements of a section, pfsync's "action". Receivers
// skip (and count) sections of kinds they do not know.
type Kind uint8

// Element kinds of protocol version 1. The fixed element sizes are what a
// version-1 sender writes; a receiver accepts longer elements and reads the
// known prefix.
const (
	// KindInsert: a full record the sender just created (variable size).
	// pfsync INS.
	KindInsert Kind = 1
	// KindUpdate: a full record, sent in answer to a request and during a
	// bulk; a receiver that does not hold the record inserts it. pfsync UPD.
	KindUpdate Kind = 2
	// KindUpdateC: a compressed update, a record.Delta (variable size).
	// pfsync UPD_C.
	KindUpdateC Kind = 3
	// KindDelete: a record was deleted at a version (Delete, 20 bytes).
	// pfsync DEL_C plus the version.
	KindDelete Kind = 4
	// KindClear: delete every record of a creator (Clear, 8 bytes).
	// pfsync CLR.
	KindClear Kind = 5
	// KindRequest: ask the owner for the full record (Request, 12 bytes).
	// pfsync UPD_REQ.
	KindRequest Kind = 6
	// KindInsertAck: a deferred insert was received (InsertAck, 12 bytes).
	// pfsync INS_ACK.
	KindInsertAck Kind = 7
	// KindBulkRequest: ask for a bulk transfer (BulkRequest, 44 bytes).
	// pfsync UPD_REQ(0,0).
	KindBulkRequest Kind = 8
	// KindBulkStart: a bulk transfer begins (BulkStart, 16 bytes). pfsync
	// BUS START.
	KindBulkStart Kind = 9
	// KindBulkEnd: a bulk transfer ended (BulkEnd, 24 bytes). pfsync BUS END
	// plus a digest of what was sent.
	KindBulkEnd Kind = 10
	// KindAck: cumulative ack and NACK ranges for one sender's stream (Ack,
	// variable size). From conntrackd's FT-FW mode.
	KindAck Kind = 11
	// KindHello: a node's epoch, boot counter, versions and capabilities
	// (Hello, 36 bytes).
	KindHello Kind = 12
	// KindHeartbeat: the sender is alive (Heartbeat, 12 bytes).
	KindHeartbeat Kind = 13
	// KindDigest: anti-entropy bucket hashes (Digest, variable size).
	KindDigest Kind = 14
	// KindBulkMark: a range of buckets of a bulk transfer is complete, with
	// its digest (BulkMark, 36 bytes).
	KindBulkMark Kind = 15
)

// Fixed element sizes written by a version-1 sender. Zero means variable
// size: each element is prefixed with its 16-bit length.
const (
	DeleteLen      = 20
	ClearLen       = 8
	RequestLen     = 12
	InsertAckLen   = 12
	BulkRequestLen = 44
	BulkStartLen   = 16
	BulkEndLen     = 24
	HelloLen       = 36
	HeartbeatLen   = 12
	BulkMarkLen    = 36
)

// kindSpec is what the package knows about one element kind, in the table
// kinds: the decoding direction, from the kind byte of a section to a type.
// The encoding direction, from a type to its kind, is the Element interface.
type kindSpec struct {
	name string
	// fixed is the element length a version-1 sender writes, 0 for
	// variable-size, length-prefixed elements.
	fixed int
	// decode decodes the Reader's current element, known to be of this
	// kind, into a new value that does not alias the frame.
	decode func(r *Reader) (Element, error)
}

// kinds is indexed by Kind; a kind without an entry is unknown and skipped.
var kinds = [...]kindSpec{
	KindInsert:      {"insert", 0, decodeRecordElement},
	KindUpdate:      {"update", 0, decodeRecordElement},
	KindUpdateC:     {"update-c", 0, decodeDeltaElement},
	KindDelete:      {"delete", DeleteLen, decodeAs((*Reader).Delete)},
	KindClear:       {"clear", ClearLen, decodeAs((*Reader).Clear)},
	KindRequest:     {"request", RequestLen, decodeAs((*Reader).Request)},
	KindInsertAck:   {"insert-ack", InsertAckLen, decodeAs((*Reader).InsertAck)},
	KindBulkRequest: {"bulk-request", BulkRequestLen, decodeAs((*Reader).BulkRequest)},
	KindBulkStart:   {"bulk-start", BulkStartLen, decodeAs((*Reader).BulkStart)},
	KindBulkEnd:     {"bulk-end", BulkEndLen, decodeAs((*Reader).BulkEnd)},
	KindAck:         {"ack", 0, decodeAckElement},
	KindHello:       {"hello", HelloLen, decodeAs((*Reader).Hello)},
	KindHeartbeat:   {"heartbeat", HeartbeatLen, decodeAs((*Reader).Heartbeat)},
	KindDigest:      {"digest", 0, decodeDigestElement},
	KindBulkMark:    {"bulk-mark", BulkMarkLen, decodeAs((*Reader).BulkMark)},
}

// String returns the kind's name, e.g. "update-c", or "kind(N)".
func (k Kind) String() string {
	if k.Known() {
		return kinds[k].name
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Known reports whether this package understands k.
func (k Kind) Known() bool { return int(k) < len(kinds) && kinds[k].decode != nil }

// fixedLen returns the element size a version-1 sender writes for k, or 0 for
// variable-size kinds.
func (k Kind) fixedLen() int {
	if k.Known() {
		return kinds[k].fixed
	}
	return 0
}

// decodeAs turns a typed Reader accessor of a fixed-size kind into the
// decode function of its kinds entry.
func decodeAs[T Element](get func(*Reader) (T, error)) func(*Reader) (Element, error) {
	return func(r *Reader) (Element, error) {
		v, err := get(r)
		return v, err
	}
}

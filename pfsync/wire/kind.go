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

var kindNames = [...]string{
	KindInsert:      "insert",
	KindUpdate:      "update",
	KindUpdateC:     "update-c",
	KindDelete:      "delete",
	KindClear:       "clear",
	KindRequest:     "request",
	KindInsertAck:   "insert-ack",
	KindBulkRequest: "bulk-request",
	KindBulkStart:   "bulk-start",
	KindBulkEnd:     "bulk-end",
	KindAck:         "ack",
	KindHello:       "hello",
	KindHeartbeat:   "heartbeat",
	KindDigest:      "digest",
	KindBulkMark:    "bulk-mark",
}

// String returns the kind's name, e.g. "update-c", or "kind(N)".
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Known reports whether this package understands k.
func (k Kind) Known() bool { return k >= KindInsert && k <= KindBulkMark }

// fixedLen returns the element size a version-1 sender writes for k, or 0 for
// variable-size kinds.
func (k Kind) fixedLen() int {
	switch k {
	case KindDelete:
		return DeleteLen
	case KindClear:
		return ClearLen
	case KindRequest:
		return RequestLen
	case KindInsertAck:
		return InsertAckLen
	case KindBulkRequest:
		return BulkRequestLen
	case KindBulkStart:
		return BulkStartLen
	case KindBulkEnd:
		return BulkEndLen
	case KindHello:
		return HelloLen
	case KindHeartbeat:
		return HeartbeatLen
	case KindBulkMark:
		return BulkMarkLen
	}
	return 0
}

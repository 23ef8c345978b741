// Package wire is the frame codec of gocarp's state sync protocol, version 1.
//
// A frame is the plaintext that pfsync/seal authenticates and encrypts; the
// sealed envelope around it (magic, key id, sender, epoch, its own replay
// sequence number, AEAD tag) is not part of this package. The frame repeats
// the sender, epoch and a sequence number in its header so that it is
// self-describing without a Sealer and so that the engine's reliability
// layer (acks, NACK ranges, retransmission) has its own per-sender sequence.
//
//	Frame    = Header Section*
//	Header   = version(1)=1 flags(1) sender(4) epoch(8) seq(8)        22 bytes
//	Section  = kind(1) elem-len(2) count(2) Element{count}
//	Element  = body(elem-len)            if elem-len > 0
//	         | len(2) body(len)          if elem-len = 0 (variable-size elements)
//
// All integers are big-endian; "uvarint" fields in element bodies use
// encoding/binary's unsigned varint. The section header follows OpenBSD's
// pfsync subheader, which carries the element length so that a receiver
// skips kinds it does not know and reads only the known prefix of elements
// longer than it expects: a newer sender can append fields without breaking
// older receivers. FreeBSD's pfsync has no such length, so an unknown action
// there aborts the whole packet.
//
// Records (INSERT, UPDATE) are encoded far more compactly than pfsync's
// 264-byte pfsync_state: optional parts are announced by a presence bitmap,
// counters and lifetimes are varints, and a reply tuple that merely reverses
// the original (no NAT) is not sent. Compressed updates (UPDATE_C) carry the
// id, version and only the changed dynamic fields, like pfsync's 84-byte
// UPD_C but typically half its size. See the benchmarks for the figures.
//
// Encoding goes through a Builder, which appends into a caller's buffer
// without allocating and reports ErrFull when an element does not fit the
// MTU so the caller can start a new frame. Decoding goes through a Reader,
// which checks the structure of the whole frame up front (every count and
// length, with overflow-safe arithmetic) and then iterates elements without
// allocating; Decode is the convenient allocating form. Decoders never panic
// on any input.
//
// # Adding an element kind
//
// A receiver skips kinds it does not know (the section header carries the
// element length), so a new kind needs no new protocol version as long as
// a peer that ignores it stays correct; if it does not, announce the kind
// with a new Caps bit in the Hello and send it only to peers that set it.
// The places to touch, and nothing else:
//
//  1. kind.go: the Kind constant (the next free number: numbers are never
//     reused), its name in kindNames, its size in the fixed-length list
//     and fixedLen (or none: a variable-size element), and the upper bound
//     of Kind.Known.
//  2. elements.go: the element type, with its Kind method and its
//     encoding and decoding; the Builder's Add method for it and the
//     Reader's accessor (builder.go, reader.go), so that Builder.Add,
//     Reader.Element and Decode handle it; a seed in the fuzz targets
//     (fuzz_test.go) and a round-trip case in the tests.
//  3. package pfsync, elements.go: one entry in elementHandlers, the
//     table keyed by kind, with its handler and whether a peer not yet
//     confirmed may send it (only elements that cannot change our state).
//     TestElementTableCoversWire fails until the entry exists.
//  4. Sending it from the engine: an element of the reliable stream that
//     is not a record goes through the sender's control queue (ctl and
//     addCtl in package pfsync, output.go), which also retransmits it;
//     anything else is added where its frame is built.
//  5. docs/protocol.md: the element's layout and rules, for other
//     implementations.
package wire

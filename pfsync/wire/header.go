package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks, the first byte of
// every frame. A receiver drops frames of any other version (counted as
// pfsync's "badver"); HELLO advertises the range a node accepts.
const Version = 1

// Sizes of the fixed parts of a frame.
const (
	HeaderLen        = 22 // version, flags, sender, epoch, seq
	SectionHeaderLen = 5  // kind, elem-len, count
	MaxElementLen    = 65535
	MaxCount         = 65535 // elements per section; the Builder opens a new section beyond it

	// MinMTU is the smallest frame size a Builder accepts.
	MinMTU = 128
	// MaxFrameLen is the largest frame; UDP cannot carry more.
	MaxFrameLen = 65507
)

// Errors. Decoding errors wrap ErrTruncated, ErrVersion or ErrInvalid and
// name the offset; Builder errors wrap ErrFull, ErrTooLarge or ErrInvalid.
var (
	// ErrTruncated: a length or count points past the end of the frame or
	// element (pfsync's "badlen").
	ErrTruncated = errors.New("wire: truncated")
	// ErrVersion: the frame's protocol version is not Version ("badver").
	ErrVersion = errors.New("wire: unsupported protocol version")
	// ErrInvalid: a field holds a value the protocol does not allow
	// ("badval"), in a received element or in a value given to a Builder.
	ErrInvalid = errors.New("wire: invalid value")
	// ErrFull: the element does not fit into what is left of the frame.
	// Send the frame and add the element to a new one.
	ErrFull = errors.New("wire: frame full")
	// ErrTooLarge: the element does not fit even into an empty frame of
	// this MTU; it can never be sent.
	ErrTooLarge = errors.New("wire: element larger than the MTU")
	// ErrKind: a Reader accessor was called for an element of another kind.
	ErrKind = errors.New("wire: element of another kind")
)

// Flags are the per-frame flag bits of the Header. Unknown flags are ignored
// by receivers, so new ones can be added within a version.
type Flags uint8

// Frame flags.
const (
	// FlagAckRequested asks the receiver to acknowledge now rather than
	// after its ack delay (end of a bulk, a deferral insert).
	FlagAckRequested Flags = 1 << 0
	// FlagUnsequenced marks a frame outside the reliable stream (pure
	// acks, heartbeats, hellos): its Seq is informational, receivers
	// neither acknowledge it nor treat a gap before it as a loss.
	FlagUnsequenced Flags = 1 << 1
)

// Header is the plaintext frame header.
//
// The sealed envelope (pfsync/seal) carries its own sender, epoch and a
// replay-protection sequence number and authenticates everything; the engine
// checks that Sender matches the authenticated sender. Without a sealer
// (Insecure mode) the header is the only source of these values.
type Header struct {
	// Version is the protocol version; decoders fill it in, a Builder
	// always writes the package's Version.
	Version uint8
	Flags   Flags
	// Sender is the sending node (a pfsync.NodeID); never 0.
	Sender uint32
	// Epoch is the sender's random per-start epoch (see Hello); a new epoch
	// means the sender restarted and its Seq space began again.
	Epoch uint64
	// Seq numbers the sender's frames within an epoch for acks and NACKs
	// (cumulative ack + missing ranges, as conntrackd's FT-FW mode).
	Seq uint64
}

func (h *Header) append(b []byte) []byte {
	b = append(b, Version, byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.Sender)
	b = binary.BigEndian.AppendUint64(b, h.Epoch)
	return binary.BigEndian.AppendUint64(b, h.Seq)
}

// ParseHeader decodes the header at the start of frame.
func ParseHeader(frame []byte) (Header, error) {
	if len(frame) < HeaderLen {
		return Header{}, fmt.Errorf("%w: frame of %d bytes, header needs %d", ErrTruncated, len(frame), HeaderLen)
	}
	h := Header{
		Version: frame[0],
		Flags:   Flags(frame[1]),
		Sender:  binary.BigEndian.Uint32(frame[2:]),
		Epoch:   binary.BigEndian.Uint64(frame[6:]),
		Seq:     binary.BigEndian.Uint64(frame[14:]),
	}
	if h.Version != Version {
		return h, fmt.Errorf("%w: version %d at offset 0 (want %d)", ErrVersion, h.Version, Version)
	}
	if h.Sender == 0 {
		return h, fmt.Errorf("%w: sender 0 at offset 2", ErrInvalid)
	}
	return h, nil
}

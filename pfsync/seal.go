package pfsync

import "errors"

// A Sealer authenticates (and encrypts) frames between the engine and its
// Transport. Package pfsync/seal provides the AEAD implementation; an engine
// without one runs only with Config.Insecure set.
//
// Seal appends the sealed form of plaintext, sent by this node, to dst and
// returns the result. Overhead is how many bytes sealing adds, so the engine
// can size plaintext frames to Transport.MTU()-Overhead().
//
// Open authenticates a received frame and returns the sender's node id and
// the plaintext appended to dst. A frame that fails is rejected with an error
// wrapping one of ErrBadAuth, ErrReplay, ErrStaleEpoch, ErrUnknownKey or
// ErrTruncated, which the engine counts; it never changes any state.
//
// Seal and Open may be called concurrently.
type Sealer interface {
	Seal(dst, plaintext []byte) ([]byte, error)
	Open(dst, frame []byte) (from NodeID, plaintext []byte, err error)
	Overhead() int
}

// Errors returned by a Sealer's Open, for counting with errors.Is.
var (
	ErrBadAuth    = errors.New("pfsync: frame failed authentication")
	ErrReplay     = errors.New("pfsync: replayed frame")
	ErrStaleEpoch = errors.New("pfsync: frame from a superseded epoch or boot")
	ErrUnknownKey = errors.New("pfsync: unknown key id")
	ErrTruncated  = errors.New("pfsync: truncated frame")
)

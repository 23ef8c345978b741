package seal

import (
	"errors"
	"testing"

	"github.com/gocarp/gocarp/pfsync"
)

// FuzzOpen checks that Open never panics, never authenticates anything but
// the frames the sender sealed, rejects every single-byte change of a valid
// frame, and always wraps one of the sentinels.
func FuzzOpen(f *testing.F) {
	// The fuzzing workers rerun this setup: the sender's epoch must be the
	// same in every process for the seeds to be recognised as valid.
	snd := newSealer(f, 1, 3, oneKey(1, 1), 1)
	snd.epoch = 0x0123456789abcdef
	if err := snd.Rotate(oneKey(1, 1), 1); err != nil {
		f.Fatal(err)
	}
	valid := make([][]byte, 0, 4)
	for _, p := range []string{"", "x", "a frame of a few records", string(make([]byte, 1400))} {
		v := seal(f, snd, p)
		valid = append(valid, v)
		f.Add(v, 0, byte(0))
	}
	f.Add([]byte{}, 0, byte(0))
	f.Add([]byte("GC\x01\x01\x00"), 3, byte(1))
	sentinels := []error{pfsync.ErrBadAuth, pfsync.ErrReplay, pfsync.ErrStaleEpoch, pfsync.ErrUnknownKey, pfsync.ErrTruncated}

	f.Fuzz(func(t *testing.T, data []byte, pos int, flip byte) {
		rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
		isValid := false
		for _, v := range valid {
			if string(v) == string(data) {
				isValid = true
			}
		}
		from, _, err := rcv.Open(nil, data)
		switch {
		case err == nil && !isValid:
			t.Fatalf("random input authenticated as from node %d", from)
		case err != nil && isValid:
			t.Fatalf("valid frame rejected: %v", err)
		case err != nil:
			ok := false
			for _, s := range sentinels {
				ok = ok || errors.Is(err, s)
			}
			if !ok {
				t.Fatalf("error %v wraps no sentinel", err)
			}
		}
		// Tampering any byte of a valid frame fails, and changes nothing.
		v := valid[uint(pos)%uint(len(valid))]
		if flip == 0 {
			flip = 1
		}
		tampered := append([]byte(nil), v...)
		tampered[uint(pos)%uint(len(v))] ^= flip
		if _, _, err := newSealer(t, 2, 1, oneKey(1, 1), 1).Open(nil, tampered); err == nil {
			t.Fatalf("frame with byte %d xored with %#x authenticated", uint(pos)%uint(len(v)), flip)
		}
	})
}

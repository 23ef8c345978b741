package seal

// Replay window after RFC 6479: a ring of 64-bit words, one spare, so that
// sliding forward clears whole words and never a bit still inside the window.
const (
	wordBits   = 64
	ringWords  = windowSize/wordBits + 1
	windowSize = 1024 // sequence numbers more than this far behind the newest are refused
)

// window is the set of sequence numbers seen within windowSize of the newest.
// The zero value has seen nothing.
type window struct {
	last uint64 // newest sequence number seen; 0 = none
	ring [ringWords]uint64
}

// check reports whether seq is new: not seen and not too old. Zero never is.
func (w *window) check(seq uint64) bool {
	switch {
	case seq == 0:
		return false
	case seq > w.last:
		return true
	case w.last-seq >= windowSize:
		return false
	}
	return w.ring[(seq/wordBits)%ringWords]&(1<<(seq%wordBits)) == 0
}

// mark records seq and reports whether it was new.
func (w *window) mark(seq uint64) bool {
	if !w.check(seq) {
		return false
	}
	if seq > w.last {
		cur, next := w.last/wordBits, seq/wordBits
		for i := range min(next-cur, ringWords) {
			w.ring[(cur+1+i)%ringWords] = 0
		}
		w.last = seq
	}
	w.ring[(seq/wordBits)%ringWords] |= 1 << (seq % wordBits)
	return true
}

package confsync

import "time"

// transfer is the receiving side of one document version: which chunks
// arrived, which were asked for.
type transfer struct {
	offer
	chunk       int
	n           int // chunks; an empty document has one, empty
	window      int // chunks asked for and not received, at most
	buf         []byte
	got, asked  []bool
	have        int
	outstanding int
	cursor      int
	progress    time.Time     // last chunk, or start
	sent        time.Time     // last request
	rto         time.Duration // current wait before asking again
	baseRTO     time.Duration // Config.Retransmit: rto after progress
}

func newTransfer(o offer, chunk, windowBytes int, rto time.Duration) *transfer {
	n := max(1, int((o.size+uint64(chunk)-1)/uint64(chunk)))
	return &transfer{
		offer:    o,
		chunk:    chunk,
		n:        n,
		window:   min(max(2, windowBytes/chunk), maxWindowChunks),
		buf:      make([]byte, o.size),
		got:      make([]bool, n),
		asked:    make([]bool, n),
		progress: time.Now(),
		rto:      rto,
		baseRTO:  rto,
	}
}

// next marks and returns the chunks to ask for now: those neither received
// nor asked for, up to the window.
func (t *transfer) next() []span {
	var spans []span
	for t.cursor < t.n && t.outstanding < t.window {
		i := t.cursor
		t.cursor++
		if t.got[i] || t.asked[i] {
			continue
		}
		t.asked[i] = true
		t.outstanding++
		if k := len(spans) - 1; k >= 0 && spans[k].start+spans[k].count == uint32(i) {
			spans[k].count++
			continue
		}
		if len(spans) == maxRanges {
			t.asked[i] = false
			t.outstanding--
			t.cursor--
			break
		}
		spans = append(spans, span{start: uint32(i), count: 1})
	}
	return spans
}

// rewind forgets what was asked for, after a timeout: every missing chunk
// may be asked for again.
func (t *transfer) rewind() {
	clear(t.asked)
	t.outstanding = 0
	t.cursor = 0
}

// put stores a chunk; it reports whether it was new and well placed.
func (t *transfer) put(off uint64, p []byte) bool {
	if off%uint64(t.chunk) != 0 {
		return false
	}
	i := int(off / uint64(t.chunk))
	want := min(uint64(t.chunk), t.size-min(off, t.size))
	if i >= t.n || uint64(len(p)) != want || t.got[i] {
		return false
	}
	copy(t.buf[off:], p)
	t.got[i] = true
	t.have++
	if t.asked[i] {
		t.outstanding--
	}
	t.progress = time.Now()
	t.rto = t.baseRTO
	return true
}

func (t *transfer) done() bool { return t.have == t.n }

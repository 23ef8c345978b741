package seal

import (
	"sync"
	"time"
)

// kind is a reason for rejecting a frame.
type kind int

const (
	kindBadAuth kind = iota
	kindReplay
	kindStale
	kindUnknownKey
	kindTruncated
	numKinds
)

func (k kind) String() string {
	switch k {
	case kindBadAuth:
		return "bad_auth"
	case kindReplay:
		return "replay"
	case kindStale:
		return "stale_epoch"
	case kindUnknownKey:
		return "unknown_key"
	case kindTruncated:
		return "truncated"
	}
	return "unknown"
}

// logLimiter lets at most one log line per second through per kind, and
// reports how many rejections the line stands for.
type logLimiter struct {
	mu      sync.Mutex
	next    [numKinds]time.Time
	pending [numKinds]uint64
}

// allow records one rejection of kind k at now and reports whether a line
// may be logged, with the number of rejections since the previous line.
func (l *logLimiter) allow(k kind, now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[k]++
	if now.Before(l.next[k]) {
		return 0, false
	}
	n := l.pending[k]
	l.pending[k] = 0
	l.next[k] = now.Add(time.Second)
	return n, true
}

// bucket is a token bucket: rate tokens per second, at most burst banked.
// It is not safe for concurrent use.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) allow(now time.Time) bool {
	if !b.last.IsZero() {
		if d := now.Sub(b.last); d > 0 {
			b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

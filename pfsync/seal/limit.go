package seal

import (
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

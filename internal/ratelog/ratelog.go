// Package ratelog limits how often one kind of repeated failure is logged.
//
// A full kernel table refuses every record of a takeover commit, a flood of
// forged frames fails authentication thousands of times a second: one log
// line per occurrence would bury everything else in the log and cost more
// than the failure itself. The packages count every occurrence in their
// Stats; their logs say that it happens, and how often, through a Limiter.
package ratelog

import (
	"sync"
	"time"
)

// DefaultEvery is the interval a zero Limiter.Every stands for.
const DefaultEvery = 10 * time.Second

// Limiter lets one line of each kind through per interval and counts the
// occurrences it held back. The zero value is ready to use. It is safe for
// concurrent use; it takes the time from its callers, so testing/synctest
// or a fake clock drives it.
type Limiter[K comparable] struct {
	// Every is the shortest interval between two lines of one kind; zero
	// means DefaultEvery.
	Every time.Duration

	mu    sync.Mutex
	kinds map[K]*kindState
}

type kindState struct {
	next time.Time // when the kind may log again
	held uint64    // occurrences held back since its last line
}

// Allow records one occurrence of kind k at now. It reports whether a line
// may be written for it, and how many occurrences of k were held back since
// the previous line (not counting this one).
func (l *Limiter[K]) Allow(k K, now time.Time) (held uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.kinds[k]
	if s == nil {
		if l.kinds == nil {
			l.kinds = make(map[K]*kindState)
		}
		s = &kindState{}
		l.kinds[k] = s
	}
	if now.Before(s.next) {
		s.held++
		return 0, false
	}
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	held, s.held, s.next = s.held, 0, now.Add(every)
	return held, true
}

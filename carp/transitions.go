package carp

import (
	"cmp"
	"slices"
	"sync"
)

// TransitionCount is how many times a group entered one state for one
// reason (Group.Transitions).
type TransitionCount struct {
	To     State  // the state entered
	Reason string // the Transition's Reason, as text
	N      uint64 // changes since NewGroup
}

// transitionCounts counts state changes by the state entered and the
// reason. Changes are rare (a few per failover), so a mutex and a map cost
// nothing on the protocol loop and keep the set of reasons open.
type transitionCounts struct {
	mu sync.Mutex
	n  map[transitionKey]uint64
}

type transitionKey struct {
	to     State
	reason string
}

func (c *transitionCounts) add(to State, reason string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = make(map[transitionKey]uint64)
	}
	c.n[transitionKey{to, reason}]++
	c.mu.Unlock()
}

func (c *transitionCounts) snapshot() []TransitionCount {
	c.mu.Lock()
	out := make([]TransitionCount, 0, len(c.n))
	for k, n := range c.n {
		out = append(out, TransitionCount{To: k.to, Reason: k.reason, N: n})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b TransitionCount) int {
		return cmp.Or(cmp.Compare(a.To, b.To), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// Transitions returns how many times the group changed state since
// NewGroup, by the state entered and the reason, sorted by state and then
// reason. Only pairs that occurred are listed. It counts every change,
// whether or not Config.OnTransition is set, so a metrics exporter can
// read it at any time.
func (g *Group) Transitions() []TransitionCount { return g.trans.snapshot() }

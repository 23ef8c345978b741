package main

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// masterWatch checks the first invariant of the demo: at every instant at
// most one node is MASTER.
//
// CARP allows one transient: a node that takes the role from a live master
// (preemption, or a backup whose master-down timer fired because adverts
// were lost) is MASTER from the moment it decides, and the old master steps
// down only when it hears the new master's first advertisement. On a
// lossless segment that advert is the very next packet, so the overlap is
// far below one advertisement interval; with loss it may take a few
// adverts, bounded by the master-down interval. A longer overlap is a split
// brain and fails the run.
//
// Transitions reach OnTransition on one goroutine per group, so they arrive
// out of order across nodes; the watch keeps them all and sweeps them in
// the order of Transition.At.
type masterWatch struct {
	allow time.Duration

	mu     sync.Mutex
	events []masterEvent
}

type eventKind int

const (
	becameMaster eventKind = iota
	leftMaster
	died    // the node crashed: it owns nothing and its group's last words do not count
	revived // the node runs again with a new group
)

type masterEvent struct {
	at   time.Time
	node string
	kind eventKind
}

func newMasterWatch(allow time.Duration) *masterWatch {
	return &masterWatch{allow: allow}
}

// transition records one transition of node's group.
func (w *masterWatch) transition(node string, tr carp.Transition) {
	switch {
	case tr.To == carp.Master && tr.From != carp.Master:
		w.record(node, tr.At, becameMaster)
	case tr.From == carp.Master && tr.To != carp.Master:
		w.record(node, tr.At, leftMaster)
	}
}

func (w *masterWatch) crashed(node string, t time.Time)   { w.record(node, t, died) }
func (w *masterWatch) restarted(node string, t time.Time) { w.record(node, t, revived) }

func (w *masterWatch) record(node string, t time.Time, k eventKind) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, masterEvent{at: t, node: node, kind: k})
}

// overlap is a period during which more than one node was MASTER.
type overlap struct {
	from, to time.Time
	nodes    []string
}

func (o overlap) String() string {
	return fmt.Sprintf("%v MASTER at once for %v", o.nodes, o.to.Sub(o.from).Round(time.Microsecond))
}

// sweep replays the recorded events in time order up to now. It returns
// every period with two or more masters (one still open ends at now) and
// the masters at the end.
func (w *masterWatch) sweep(now time.Time) (overlaps []overlap, masters []string) {
	w.mu.Lock()
	ev := slices.Clone(w.events)
	w.mu.Unlock()
	slices.SortStableFunc(ev, func(a, b masterEvent) int { return a.at.Compare(b.at) })

	dead := make(map[string]bool)
	isMaster := make(map[string]bool)
	var cur *overlap
	for _, e := range ev {
		switch {
		case e.kind == died:
			dead[e.node] = true
			isMaster[e.node] = false
		case e.kind == revived:
			dead[e.node] = false
		case dead[e.node]:
			continue
		default:
			isMaster[e.node] = e.kind == becameMaster
		}
		m := masterList(isMaster)
		switch {
		case len(m) > 1 && cur == nil:
			cur = &overlap{from: e.at, nodes: m}
		case len(m) > 1:
			cur.nodes = m
		case cur != nil:
			cur.to = e.at
			overlaps = append(overlaps, *cur)
			cur = nil
		}
	}
	if cur != nil {
		cur.to = now
		overlaps = append(overlaps, *cur)
	}
	return overlaps, masterList(isMaster)
}

// check returns an error if two nodes were MASTER at once for longer than
// the handover transient, and the overlaps seen.
func (w *masterWatch) check(now time.Time) ([]overlap, error) {
	overlaps, _ := w.sweep(now)
	for _, o := range overlaps {
		if o.to.Sub(o.from) > w.allow {
			return overlaps, fmt.Errorf("split brain: %v (the CARP handover transient is at most %v)", o, w.allow)
		}
	}
	return overlaps, nil
}

func masterList(isMaster map[string]bool) []string {
	var m []string
	for _, n := range slices.Sorted(maps.Keys(isMaster)) {
		if isMaster[n] {
			m = append(m, n)
		}
	}
	return m
}

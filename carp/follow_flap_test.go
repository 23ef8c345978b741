package carp_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// TestFollowGroupNoFlap runs a fault the rule cannot repair: the nodes
// disagree on which of them is preferred (LAN prefers b, WAN prefers a,
// both preempt), so whoever holds both groups loses one to preemption and
// hands the other over, again and again. The rule must turn this into a
// slow round trip: hand-overs never closer than the hold, and, once the
// holds have doubled up to MaxHold, at most one round trip per MaxHold.
func TestFollowGroupNoFlap(t *testing.T) {
	const (
		hold    = 10 * time.Second
		maxHold = time.Minute
	)
	synctest.Test(t, func(t *testing.T) {
		p := newPairSkew(t, hold, maxHold, [2]uint8{100, 0}, [2]uint8{0, 100})
		p.run(10 * time.Second)
		// Each node holds the group it is preferred for: a stable split,
		// as configured. Kick it: b's LAN link fails, so a gets both,
		// and returns.
		p.wantStates(t, "started", "a:BACKUP/MASTER b:MASTER/BACKUP")
		p.b.setLink(lan, false)
		p.run(10 * time.Second)
		p.wantStates(t, "b's LAN down", "a:MASTER/MASTER b:INIT/BACKUP")
		start := time.Now()
		p.b.setLink(lan, true)
		p.run(15 * time.Minute)

		// A hand-over is a group becoming MASTER on the other node.
		var moves []time.Time
		for _, e := range p.events(start) {
			if e.to == carp.Master && e.vhid == 1 {
				moves = append(moves, e.at)
			}
		}
		if len(moves) < 4 {
			t.Fatalf("%d hand-overs in 15 min, want the fault to repeat: %v", len(moves), p.events(start))
		}
		for i := 1; i < len(moves); i++ {
			if gap := moves[i].Sub(moves[i-1]); gap < hold {
				t.Errorf("hand-overs %d and %d only %v apart, want at least the hold %v", i-1, i, gap, hold)
			}
		}
		steady := 0
		for _, at := range moves {
			if at.Sub(start) >= 5*time.Minute {
				steady++
			}
		}
		// Round trips are two hand-overs.
		if limit := int(10*time.Minute/maxHold) * 2; steady > limit {
			t.Errorf("%d hand-overs in the last 10 min, want at most %d (one round trip per MaxHold)", steady, limit)
		}
		// Each node always holds both groups or none: at every
		// hand-over both groups moved in the same instant.
		for _, e := range p.events(start) {
			if e.to != carp.Master {
				continue
			}
			sibling := false
			for _, o := range p.events(e.at) {
				if o.at.Equal(e.at) && o.node == e.node && o.vhid != e.vhid && o.to == carp.Master {
					sibling = true
				}
			}
			if !sibling {
				t.Errorf("%v at %v: the other group did not follow in the same instant", e, e.at.Sub(start))
			}
		}
	})
}

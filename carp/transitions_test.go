package carp_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/google/go-cmp/cmp"
)

// TestTransitionCounts checks Group.Transitions against the transitions
// delivered to OnTransition, through a start, a bow-out takeover and a
// close.
func TestTransitionCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{VHID: 7, StartAsMaster: true}).start(t)
		b := newNode(t, seg, "b", carp.Config{VHID: 7, AdvSkew: 100}).start(t)
		if got := b.g.Transitions(); len(got) != 0 {
			t.Errorf("before any change: %+v, want none", got)
		}
		sleep(5 * time.Second)
		if err := a.g.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := a.g.VHID(); got != 7 {
			t.Errorf("VHID() = %d, want 7", got)
		}
		for _, n := range []*node{a, b} {
			want := map[carp.TransitionCount]bool{}
			counts := map[[2]string]uint64{}
			for _, s := range n.steps() {
				counts[[2]string{s.To.String(), fmt.Sprint(s.Reason)}]++
			}
			got := map[carp.TransitionCount]bool{}
			for _, c := range n.g.Transitions() {
				got[c] = true
			}
			for _, s := range n.steps() {
				want[carp.TransitionCount{To: s.To, Reason: fmt.Sprint(s.Reason), N: counts[[2]string{s.To.String(), fmt.Sprint(s.Reason)}]}] = true
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: Transitions (-want +got):\n%s", n.name, diff)
			}
		}
		want := []carp.TransitionCount{
			{To: carp.Backup, Reason: fmt.Sprint(carp.ReasonInit), N: 1},
			{To: carp.Master, Reason: fmt.Sprint(carp.ReasonBowOut), N: 1},
		}
		if diff := cmp.Diff(want, b.g.Transitions()); diff != "" {
			t.Errorf("b: Transitions (-want +got):\n%s", diff)
		}
	})
}

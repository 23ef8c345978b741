package main

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/google/go-cmp/cmp"
)

// fakeGroup records the demotion sources set on it.
type fakeGroup struct {
	mu      sync.Mutex
	sources map[string]int
}

func (g *fakeGroup) SetDemotion(source string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sources == nil {
		g.sources = map[string]int{}
	}
	if n <= 0 {
		delete(g.sources, source)
		return
	}
	g.sources[source] = n
}

func (g *fakeGroup) get() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.sources {
		out[k] = v
	}
	return out
}

// step is one input of a follow scenario, and what every group's
// demotion must be afterwards.
type step struct {
	wait  time.Duration // advance the clock first
	vhid  uint8
	from  carp.State
	to    carp.State
	link  *bool // a link report instead of a transition
	want  map[string]int
	label string
}

func up(b bool) *bool { return &b }

var none = map[string]int{}

const (
	I = carp.Init
	B = carp.Backup
	M = carp.Master
)

func TestFollow(t *testing.T) {
	hold := 10 * time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		{"start and failover never demote", []step{
			{vhid: 1, from: I, to: B, want: none},
			{vhid: 2, from: I, to: B, want: none},
			{vhid: 1, from: B, to: M, want: none},
			{vhid: 2, from: B, to: M, want: none},
		}},
		{"link down demotes every group until it is up", []step{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, link: up(false), want: map[string]int{demoteLink: 1}},
			{vhid: 1, from: M, to: I, want: map[string]int{demoteLink: 1}, label: "LAN INIT: not a follow event"},
			{vhid: 2, from: M, to: B, want: map[string]int{demoteLink: 1}, label: "WAN handed over: no MASTER left, not a follow event"},
			{vhid: 2, link: up(false), want: map[string]int{demoteLink: 1}},
			{vhid: 1, link: up(true), want: map[string]int{demoteLink: 1}, label: "WAN still down"},
			{vhid: 2, link: up(true), want: none},
		}},
		{"lost mastership: the other follows, held after hand-over", []step{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{wait: time.Minute, want: map[string]int{demoteFollow: 1}, label: "WAN still MASTER: kept"},
			{vhid: 2, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{wait: hold - time.Second, want: map[string]int{demoteFollow: 1}, label: "within hold"},
			{wait: 2 * time.Second, want: none, label: "hold over"},
		}},
		{"hand-over then the peer dies: cleared when every group is MASTER", []step{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{vhid: 2, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{wait: time.Second, vhid: 1, from: B, to: M, want: map[string]int{demoteFollow: 1}},
			{wait: hold, want: map[string]int{demoteFollow: 1}, label: "a group is MASTER: the hold timer is off"},
			{vhid: 2, from: B, to: M, want: none},
		}},
		{"the returning preferred node never demotes", []step{
			{vhid: 1, from: I, to: B, want: none},
			{vhid: 2, from: I, to: B, want: none},
			{vhid: 1, from: B, to: M, want: none, label: "LAN preempts first"},
			{wait: 1400 * time.Millisecond, vhid: 2, from: B, to: M, want: none},
		}},
		{"the node handing back demotes the rest at once", []step{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: map[string]int{demoteFollow: 1}, label: "peer preempted LAN"},
			{vhid: 2, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{wait: hold + time.Second, want: none},
		}},
		{"repeats double the hold up to max_hold", []step{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{vhid: 2, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{wait: hold + time.Second, want: none, label: "first hold 10s"},
			{vhid: 1, from: B, to: M, want: none},
			{vhid: 2, from: B, to: M, want: none},
			{vhid: 1, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{vhid: 2, from: M, to: B, want: map[string]int{demoteFollow: 1}},
			{wait: 2*hold - time.Second, want: map[string]int{demoteFollow: 1}, label: "second hold 20s"},
			{wait: 2 * time.Second, want: none},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFollow(hold, time.Minute, nil)
				defer f.close()
				gs := map[uint8]*fakeGroup{1: {}, 2: {}}
				f.add(1, gs[1])
				f.add(2, gs[2])
				for i, s := range tt.steps {
					if s.wait > 0 {
						time.Sleep(s.wait)
						synctest.Wait()
					}
					switch {
					case s.link != nil:
						f.link(s.vhid, *s.link)
					case s.vhid != 0:
						f.transition(carp.Transition{VHID: s.vhid, From: s.from, To: s.to})
					}
					for v, g := range gs {
						if diff := cmp.Diff(s.want, g.get()); diff != "" {
							t.Errorf("step %d %s: vhid %d demotion (-want +got):\n%s", i, s.label, v, diff)
						}
					}
				}
			})
		})
	}
}

// TestFollowNoFlap drives two nodes' follow rules with a simple election
// model and checks that a lost group makes the node hand over everything
// exactly once per hold, never at advertisement speed.
func TestFollowNoFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFollow(10*time.Second, time.Minute, nil)
		defer f.close()
		lan, wan := &fakeGroup{}, &fakeGroup{}
		f.add(1, lan)
		f.add(2, wan)
		state := map[uint8]carp.State{1: I, 2: I}
		set := func(v uint8, to carp.State) {
			if state[v] != to {
				f.transition(carp.Transition{VHID: v, From: state[v], To: to})
				state[v] = to
			}
		}
		set(1, M)
		set(2, M)
		// A persistent fault: every time this node holds LAN it loses it
		// again (the peer preempts); WAN follows the demotion at once
		// (the peer, undemoted, takes a more demoted master); once the
		// demotion clears this node preempts both back.
		handovers := 0
		for range 50 {
			set(1, B)
			if wan.get()[demoteFollow] == 1 && state[2] == M {
				set(2, B)
				handovers++
			}
			time.Sleep(time.Second) // one advertisement
			synctest.Wait()
			if lan.get()[demoteFollow] == 0 {
				set(1, M)
				set(2, M)
			}
		}
		// 50 s of a fault at 1 advert/s: hold 10 s then 20 s, 40 s...
		if handovers > 3 {
			t.Errorf("%d hand-overs in 50 s, want at most 3 (hold doubling)", handovers)
		}
		if s := f.snapshot(); s.Events == 0 {
			t.Error("no follow events counted")
		}
	})
}

package carp_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// TestPlannedHandover: when the master steps down on purpose — StepDown, a
// demotion raised by the embedder, a reconfiguration that ranks it below
// the backup — the backup is MASTER one link delay later (VRRP's bow-out:
// after its Skew_Time), whether or not it preempts; the two nodes are
// never both MASTER for longer than that delay, never both BACKUP for
// longer either, and the node that stepped down does not take the group
// back.
func TestPlannedHandover(t *testing.T) {
	const delay = time.Millisecond
	carpCfg := carp.Config{VHID: 1, Addrs: vip4, Password: []byte("pw")}
	vrrpCfg := carp.Config{VHID: 1, Addrs: vip4, Password: []byte{}, Protocol: carp.ProtocolVRRPv3, DemotionWeight: 255}
	stepDown := func(t *testing.T, g *carp.Group, _ carp.Config) { g.StepDown(3 * time.Second) }
	demote := func(t *testing.T, g *carp.Group, _ carp.Config) { g.SetDemotion("maintenance", 1) }
	reconfigure := func(change func(*carp.Config)) func(t *testing.T, g *carp.Group, c carp.Config) {
		return func(t *testing.T, g *carp.Group, c carp.Config) {
			change(&c)
			if err := g.Reconfigure(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	type tcase struct {
		name   string
		base   carp.Config
		setup  func(a, b *carp.Config)
		act    func(t *testing.T, g *carp.Group, c carp.Config)
		reason carp.Reason
		within time.Duration // how long the backup may take; zero means one link delay
	}
	var tests []tcase
	for _, preempt := range []bool{false, true} {
		p := fmt.Sprintf(", backup preempt %v", preempt)
		// A backup that preempts checks the master's slower timing
		// first; one that does not takes the handover for what it is.
		stepped := carp.ReasonSteppedDown
		if preempt {
			stepped = carp.ReasonPreempt
		}
		tests = append(tests,
			tcase{
				name:   "carp StepDown" + p,
				base:   carpCfg,
				setup:  func(a, b *carp.Config) { b.AdvSkew, b.Preempt = 100, preempt },
				act:    stepDown,
				reason: carp.ReasonBowOut,
			},
			tcase{
				name:   "carp demotion" + p,
				base:   carpCfg,
				setup:  func(a, b *carp.Config) { b.AdvSkew, b.Preempt = 100, preempt },
				act:    demote,
				reason: carp.ReasonDemotedMaster,
			},
			tcase{
				name: "carp demotion in skew" + p,
				base: carpCfg,
				setup: func(a, b *carp.Config) {
					a.DemoteInSkew, b.DemoteInSkew, b.Preempt, b.AdvSkew = true, true, preempt, 100
				},
				act:    demote,
				reason: map[bool]carp.Reason{false: carp.ReasonDemotedMaster, true: carp.ReasonPreempt}[preempt],
			},
			tcase{
				name:   "carp advskew raised" + p,
				base:   carpCfg,
				setup:  func(a, b *carp.Config) { b.AdvSkew, b.Preempt = 100, preempt },
				act:    reconfigure(func(c *carp.Config) { c.AdvSkew = 200 }),
				reason: stepped,
			},
			tcase{
				name:   "vrrp StepDown" + p,
				base:   vrrpCfg,
				setup:  func(a, b *carp.Config) { a.Priority, b.Priority, b.Preempt = 200, 100, preempt },
				act:    stepDown,
				reason: carp.ReasonBowOut,
				// RFC 5798: a backup that hears priority 0 waits its
				// Skew_Time, (256-100)/256 of the 1 s interval.
				within: delay + 156*time.Second/256,
			},
			tcase{
				name:   "vrrp demotion" + p,
				base:   vrrpCfg,
				setup:  func(a, b *carp.Config) { a.Priority, b.Priority, b.Preempt = 200, 100, preempt },
				act:    demote,
				reason: stepped,
			},
			tcase{
				name:   "vrrp priority lowered" + p,
				base:   vrrpCfg,
				setup:  func(a, b *carp.Config) { a.Priority, b.Priority, b.Preempt = 200, 100, preempt },
				act:    reconfigure(func(c *carp.Config) { c.Priority = 50 }),
				reason: stepped,
			},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				seg.SetDefaultLink(carptest.Link{Delay: delay})
				ca, cb := tt.base, tt.base
				ca.StartAsMaster = true
				tt.setup(&ca, &cb)
				a := newNode(t, seg, "a", ca).start(t)
				b := newNode(t, seg, "b", cb).start(t)
				// Half an interval off the master's periodic adverts:
				// one sent in the same instant could arrive after the
				// demoted one (the segment does not order packets
				// delivered at the same time).
				sleep(10*time.Second + 500*time.Millisecond)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)

				within := tt.within
				if within == 0 {
					within = delay
				}
				start := time.Now()
				tt.act(t, a.g, ca)
				sleep(within)
				wantState(t, b, carp.Master)
				// A bow-out leaves at once; a master that only made
				// itself worse stays until the new master's first
				// advert reaches it, so that the group is never
				// without one.
				sleep(delay)
				wantState(t, a, carp.Backup)
				got := b.last()
				if got.Reason != tt.reason {
					t.Errorf("b: %+v, want reason %v", got, tt.reason)
				}
				if took := got.At.Sub(start); took > within {
					t.Errorf("handover took %v, want at most %v (master-down interval %v)", took, within, b.g.MasterDownInterval())
				}
				// The node that stepped down stays BACKUP (no preempt;
				// a demotion or worse timing keeps it behind).
				sleep(time.Minute)
				wantState(t, a, carp.Backup)
				wantState(t, b, carp.Master)
				both, none := overlap(start, time.Now(), a, b)
				if both > delay {
					t.Errorf("both MASTER for %v, want at most one link delay (%v)", both, delay)
				}
				if none > within {
					t.Errorf("no MASTER for %v, want at most %v", none, within)
				}
			})
		})
	}
}

// overlap walks the transitions of two nodes between from and to and
// returns how long both were MASTER and how long neither was.
func overlap(from, to time.Time, x, y *node) (both, none time.Duration) {
	type ev struct {
		at time.Time
		n  int
		s  carp.State
	}
	var evs []ev
	state := [2]carp.State{carp.Init, carp.Init}
	for i, n := range []*node{x, y} {
		for _, tr := range n.transitions() {
			if tr.At.Before(from) {
				state[i] = tr.To
				continue
			}
			evs = append(evs, ev{tr.At, i, tr.To})
		}
	}
	// Transitions of both nodes merged in time order (each node's are
	// in order already).
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].at.Before(evs[j-1].at); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	at := from
	account := func(until time.Time) {
		switch d := until.Sub(at); {
		case state[0] == carp.Master && state[1] == carp.Master:
			both += d
		case state[0] != carp.Master && state[1] != carp.Master:
			none += d
		}
		at = until
	}
	for _, e := range evs {
		account(e.at)
		state[e.n] = e.s
	}
	account(to)
	return both, none
}

// TestPlannedHandoverFollowGroup: a node-wide demotion (maintenance)
// through a FollowGroup hands every group to the peer within one link
// delay, and the groups stay there while it lasts.
func TestPlannedHandoverFollowGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, 10*time.Second, time.Minute)
		p.run(10*time.Second + 500*time.Millisecond)
		p.wantStates(t, "started", "a:MASTER/MASTER b:BACKUP/BACKUP")
		p.a.follow.SetDemotion("maintenance", 1)
		p.run(time.Millisecond) // the segments deliver at once; a tick for the adverts to cross
		p.wantStates(t, "a in maintenance", "a:BACKUP/BACKUP b:MASTER/MASTER")
		p.wantStable(t, "during maintenance", 3*time.Minute)
		p.a.follow.SetDemotion("maintenance", 0)
		p.run(time.Minute)
		// b gives the groups back: a preempts once its demotion is gone.
		p.wantStates(t, "maintenance over", "a:MASTER/MASTER b:BACKUP/BACKUP")
	})
}

// TestDemotionAlone: a master with no peer that is demoted stays MASTER:
// there is nobody to hand over to, and no bow-out leaves the group
// without a master.
func TestDemotionAlone(t *testing.T) {
	for _, base := range []carp.Config{{}, {Protocol: carp.ProtocolVRRPv3, Password: []byte{}}} {
		t.Run(base.Protocol.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				base.StartAsMaster = true
				a := newNode(t, seg, "a", base).start(t)
				sleep(5 * time.Second)
				a.g.SetDemotion("maintenance", 1)
				sleep(time.Minute)
				wantState(t, a, carp.Master)
				if got := len(a.transitions()); got != 1 {
					t.Errorf("transitions %+v, want only the start", a.steps())
				}
			})
		})
	}
}

package carp_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// TestPlannedHandover measures, in the bubble's clock, how long a backup
// takes to become MASTER when the master steps down on purpose: a
// demotion raised by the embedder, or a reconfiguration that ranks it
// below the backup. The demoted master advertises at once and the backup
// acts on that advert, so the handover takes one link delay, not a
// master-down interval.
func TestPlannedHandover(t *testing.T) {
	const delay = time.Millisecond
	carpCfg := carp.Config{VHID: 1, Addrs: vip4, Password: []byte("pw")}
	vrrpCfg := carp.Config{VHID: 1, Addrs: vip4, Password: []byte{}, Protocol: carp.ProtocolVRRPv3, Preempt: true, DemotionWeight: 255}
	tests := []struct {
		name   string
		base   carp.Config
		setup  func(a, b *carp.Config)
		act    func(t *testing.T, g *carp.Group, c carp.Config)
		reason carp.Reason
	}{
		{
			name:   "carp demotion, backup without preempt",
			base:   carpCfg,
			setup:  func(a, b *carp.Config) { b.AdvSkew = 100 },
			act:    func(t *testing.T, g *carp.Group, _ carp.Config) { g.SetDemotion("maintenance", 1) },
			reason: carp.ReasonDemotedMaster,
		},
		{
			name:  "carp demotion in skew, backup with preempt",
			base:  carpCfg,
			setup: func(a, b *carp.Config) { a.DemoteInSkew, b.DemoteInSkew, b.Preempt, b.AdvSkew = true, true, true, 100 },
			act:   func(t *testing.T, g *carp.Group, _ carp.Config) { g.SetDemotion("maintenance", 1) },
			// The advskew of 240 makes the master slower, and a
			// preempting backup checks that first.
			reason: carp.ReasonPreempt,
		},
		{
			name:  "carp advskew raised",
			base:  carpCfg,
			setup: func(a, b *carp.Config) { b.AdvSkew, b.Preempt = 100, true },
			act: func(t *testing.T, g *carp.Group, c carp.Config) {
				c.AdvSkew = 200
				if err := g.Reconfigure(c); err != nil {
					t.Fatal(err)
				}
			},
			reason: carp.ReasonPreempt,
		},
		{
			name:   "vrrp demotion",
			base:   vrrpCfg,
			setup:  func(a, b *carp.Config) { a.Priority, b.Priority = 200, 100 },
			act:    func(t *testing.T, g *carp.Group, _ carp.Config) { g.SetDemotion("maintenance", 1) },
			reason: carp.ReasonPreempt,
		},
		{
			name:  "vrrp priority lowered",
			base:  vrrpCfg,
			setup: func(a, b *carp.Config) { a.Priority, b.Priority = 200, 100 },
			act: func(t *testing.T, g *carp.Group, c carp.Config) {
				c.Priority = 50
				if err := g.Reconfigure(c); err != nil {
					t.Fatal(err)
				}
			},
			reason: carp.ReasonPreempt,
		},
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

				start := time.Now()
				tt.act(t, a.g, ca)
				sleep(10 * time.Millisecond)
				wantState(t, b, carp.Master)
				wantState(t, a, carp.Backup)
				got := b.last()
				if got.Reason != tt.reason {
					t.Errorf("b: %+v, want reason %v", got, tt.reason)
				}
				took := got.At.Sub(start)
				t.Logf("handover in %v (master-down interval %v)", took, b.g.MasterDownInterval())
				if took > delay {
					t.Errorf("handover took %v, want one link delay (%v)", took, delay)
				}
			})
		})
	}
}

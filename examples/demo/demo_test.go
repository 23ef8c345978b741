package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestScenario plays the whole demo inside a synctest bubble: every
// transport is in memory and every timer is a time timer, so simulated
// time makes the run take milliseconds and the takeover exactly the
// master-down interval.
func TestScenario(t *testing.T) {
	tests := []struct {
		name string
		opts func(*options)
		want []string // lines (or parts of lines) the timeline must contain
	}{
		{
			name: "defaults",
			opts: func(*options) {},
			want: []string{
				"node1  BACKUP → MASTER (master timed out)",
				"node2  demoted 32 (sync: bulk sync pending)",
				"node2  bulk sync [██████████████████████████████] 100% 500/500",
				"node2  bulk sync complete: 500 connections",
				`node2  demotion "pfsync-bulk" cleared → advertises demote 0`,
				"node1  CRASH: power lost",
				"node2  BACKUP → MASTER (master timed out): took over 3.391s after the crash (master-down 3×advbase+advskew/256 = 3×1+100/256 = 3.391s)",
				"node2  committed 500 replicated connections into its table",
				"node2  installed 192.0.2.100/24",
				"node2  announced [192.0.2.100] (gratuitous ARP)",
				"node2  holds 500/500 connections after the takeover ✓",
				"node1  back after a reboot",
				"node1  BACKUP → MASTER (preempting a slower master)",
				"node2  MASTER → BACKUP (more frequent advertisement received)",
				"node1  holds 500/500 connections after the preemption ✓",
				"✓ all invariants held",
			},
		},
		{
			name: "three nodes without preemption",
			opts: func(o *options) { o.Nodes, o.Preempt, o.AdvSkew = 3, false, 50 },
			want: []string{
				"node3  bulk sync complete: 500 connections",
				"node2  BACKUP → MASTER (master timed out): took over 3.195s after the crash (master-down 3×advbase+advskew/256 = 3×1+50/256 = 3.195s)",
				"node2  holds 500/500 connections after the takeover ✓",
				"node1  ready to take over: 500/500 connections replicated",
				"node2  holds 500/500 connections at the end ✓",
				"✓ all invariants held",
			},
		},
		{
			name: "five nodes, slower timing",
			opts: func(o *options) { o.Nodes, o.AdvBase = 5, 2 },
			want: []string{
				"node5  bulk sync complete: 500 connections",
				"took over 6.391s after the crash (master-down 3×advbase+advskew/256 = 3×2+100/256 = 6.391s)",
				"node1  holds 500/500 connections after the preemption ✓",
				"✓ all invariants held",
			},
		},
		{
			name: "VRRPv3",
			opts: func(o *options) { o.Protocol = "vrrp3" },
			want: []string{
				"speaking VRRPv3, VIP 192.0.2.100 (VRID 1)",
				"priority node1=200 node2=150, advert interval 1s",
				"node2  demoted 32 (sync: bulk sync pending) → advertises priority 1",
				`node2  demotion "pfsync-bulk" cleared → advertises priority 150`,
				"node1  CRASH: power lost",
				// RFC 5798: skew (256-150)×1s/256 = 0.414s, master-down 3×1s+0.414s.
				"node2  BACKUP → MASTER (master timed out): took over 3.414s after the crash (master-down 3×interval+skew, skew (256-priority)×interval/256 = (256-150)×1.000s/256 = 0.414s; 3×1.000s+0.414s = 3.414s)",
				"node2  committed 500 replicated connections into its table",
				"node2  holds 500/500 connections after the takeover ✓",
				"node1  BACKUP → MASTER (preempting a lower-priority master)",
				"node2  MASTER → BACKUP (higher-priority advertisement received)",
				"node1  holds 500/500 connections after the preemption ✓",
				"✓ all invariants held",
			},
		},
		{
			name: "VRRPv3, three nodes, 100 ms, lossy, without preemption",
			opts: func(o *options) {
				o.Protocol, o.Nodes, o.AdvertInt, o.Preempt, o.Loss, o.Seed = "vrrp3", 3, 100*time.Millisecond, false, 0.05, 3
			},
			want: []string{
				"node3  bulk sync complete: 500 connections",
				"node2  holds 500/500 connections after the takeover ✓",
				"node1  ready to take over: 500/500 connections replicated",
				"✓ all invariants held",
			},
		},
		{
			name: "lossy segment",
			opts: func(o *options) { o.Nodes, o.Loss, o.Seed = 3, 0.05, 7 },
			want: []string{
				"node2  holds 500/500 connections after the takeover ✓",
				"node1  holds 500/500 connections after the preemption ✓",
				"✓ all invariants held",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultOptions()
			o.Conns = 500
			tt.opts(&o)
			synctest.Test(t, func(t *testing.T) {
				var out bytes.Buffer
				err := run(t.Context(), o, &out)
				if err != nil {
					t.Fatalf("run: %v\n%s", err, out.String())
				}
				for _, w := range tt.want {
					if !strings.Contains(out.String(), w) {
						t.Errorf("timeline lacks %q", w)
					}
				}
				if t.Failed() {
					t.Logf("timeline:\n%s", out.String())
				}
			})
		})
	}
}

package main

import (
	"os"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
)

// fastGapBound is the largest gap TestFailoverFast accepts: well below
// the 3.4 s one-second timers cost, so the sub-second path must have been
// taken. The goal, under 1 s, is what BenchmarkFailoverFast of
// internal/lab/fwbench holds the pair to (BENCHMARKS.md).
const fastGapBound = 2500 * time.Millisecond

// TestFailoverFast is the firewall pair with advertisements every 0.1 s:
// 1000 TCP and 50 UDP flows survive a crash of the master (SIGKILL, links
// cut) and its return (rebooted, restarted: it bulk-syncs and preempts),
// in CARP mode (carp.interval: advbase 0) and in VRRPv3 mode, with no
// reset and no lost or reordered byte, and with a largest gap under
// fastGapBound.
//
// It runs only with FWPAIR_E2E_FAST=1. On a loaded shared machine a
// master starved of the CPU for a few hundred milliseconds misses three
// 0.1 s adverts and its backup takes over while it is alive; such a
// spurious takeover, seen here with both CPUs saturated, broke flows
// before any failover was injected (BENCHMARKS.md). That is a property of
// sub-second timers on a starved host, not of the code under test, so the
// default suite leaves it out rather than flake.
func TestFailoverFast(t *testing.T) {
	if os.Getenv("FWPAIR_E2E_FAST") != "1" {
		t.Skip("sub-second timers on a shared machine: set FWPAIR_E2E_FAST=1 to run")
	}
	for _, tc := range []struct {
		name string
		opts func(fwbench.FwpairOptions) fwbench.FwpairOptions
	}{
		{"carp", func(o fwbench.FwpairOptions) fwbench.FwpairOptions {
			o.Interval = 100 * time.Millisecond
			return o
		}},
		{"vrrp3", func(o fwbench.FwpairOptions) fwbench.FwpairOptions {
			o.Protocol, o.AdvertInt = "vrrp3", 100*time.Millisecond
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testFailoverFast(t, tc.opts(fwbench.FwpairOptions{StartAsMaster: true}), tc.opts(fwbench.FwpairOptions{}))
		})
	}
}

func testFailoverFast(t *testing.T, fw1, fw2 fwbench.FwpairOptions) {
	p := newPair(t, "gff", [3]fwbench.FwpairOptions{1: fw1, 2: fw2})
	p.start(1)
	p.wait(1, "fw1 MASTER of both groups", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	p.start(2)
	p.wait(2, "fw2 BACKUP, in sync, undemoted", 20*time.Second, func(s *Status) bool {
		return allIn(s, "BACKUP") && s.Sync.BulkDone && s.Sync.PeersUp == 1 && maxDemotion(s) == 0
	})
	p.wait(1, "fw1 sees fw2", 10*time.Second, func(s *Status) bool { return s.Sync.PeersUp == 1 && maxDemotion(s) == 0 })

	const nTCP, nUDP = 1000, 50
	fs, srvs := startTraffic(t, p, nTCP, nUDP, 0, 0)
	if n := fs.waitRecovered(time.Now(), 30*time.Second); n != nTCP+nUDP {
		t.Fatalf("only %d of %d flows echo before any failover", n, nTCP+nUDP)
	}
	p.wait(2, "every flow replicated to fw2", 20*time.Second, func(s *Status) bool { return s.Sync.Records >= nTCP+nUDP })
	checkFlows(t, "before failover", fs)

	phase := func(name string, fail func() time.Time, newMaster int) bool {
		return t.Run(name, func(t *testing.T) {
			fs.resetPhase()
			at := fail()
			p.waitTakeover(t, newMaster, at, 0)
			t.Logf("fw%d MASTER of both groups %v after the failure", newMaster, time.Since(at).Round(time.Millisecond))
			if n := fs.waitRecovered(time.Now(), 30*time.Second); n != nTCP+nUDP {
				t.Errorf("%d of %d flows recovered", n, nTCP+nUDP)
			}
			s := checkFlows(t, name, fs)
			if s.MaxGapTCP >= fastGapBound {
				t.Errorf("%s: largest TCP gap %v, want under %v with 0.1 s advertisements", name, s.MaxGapTCP, fastGapBound)
			}
		})
	}
	if !phase("crash", func() time.Time { return p.crash(1) }, 2) {
		return
	}
	phase("return", func() time.Time {
		p.Reboot(1)
		p.Cut(1, false)
		back := time.Now()
		p.start(1)
		return back
	}, 1)

	final := fwbench.Summarize(fs.stop(20*time.Second), true)
	t.Logf("final: %v", final)
	if final.TCPFailed > 0 {
		t.Errorf("%d TCP flows lost data: %v", final.TCPFailed, final.Examples)
	}
	for _, srv := range srvs {
		if n := srv.Resets(); n > 0 {
			t.Errorf("the server saw %d TCP connections reset", n)
		}
	}
}

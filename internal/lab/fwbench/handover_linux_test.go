package fwbench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// handoverStacks are the planned handovers compared by BenchmarkHandover:
// fwpair's maintenance mode, a failing fwpair track script, and a failing
// keepalived track_script (keepalived + conntrackd). All use a 1 s advert
// interval; the checks run every second and fail after two failures.
var handoverStacks = []string{"gocarp-fwpair-maintenance", "gocarp-fwpair-track", "keepalived+conntrackd-track"}

// BenchmarkHandover runs FWBENCH_FLOWS (default 1000) long-lived TCP flows
// through fw1 and hands the groups to fw2 on purpose, the daemons still
// running: fwpair -maintenance on, or a track script that starts failing
// (a file appears). It reports the largest gap between two echoes of any
// flow (the flows send every FWBENCH_INTERVAL_MS, default 50 ms, so a gap
// of that much is no loss), the median of
// the flows' largest gaps, the TCP flows that survived without a reset or
// lost byte, and the time from the trigger until fw2 held both
// addresses (for a tracker, its detection: two failed checks a second
// apart). Run with -benchtime 1x; -count N interleaves the stacks.
func BenchmarkHandover(b *testing.B) {
	for _, name := range handoverStacks {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				runHandover(b, name)
			}
		})
	}
}

func runHandover(b *testing.B, name string) {
	l := NewLab(b, "gho")
	failFile := func(i int) string { return filepath.Join(l.Dir, fmt.Sprintf("fail%d", i)) }
	script := func(i int) string { return "test ! -e " + failFile(i) }
	var s Stack
	var trigger func()
	switch name {
	case "keepalived+conntrackd-track":
		s = &Conntrackd{L: l, TrackScript: script}
		trigger = func() { touch(b, failFile(1)) }
	default:
		g := &Gocarp{L: l, Bin: fwpairBin.Path(b), Label: name}
		for i := 1; i <= 2; i++ {
			g.Extra[i] = map[string]any{"track": []any{map[string]any{
				"name": "svc", "type": "script", "script": script(i), "interval": "1s", "fall": 2, "rise": 2,
			}}}
		}
		s = g
		trigger = func() { touch(b, failFile(1)) }
		if name == "gocarp-fwpair-maintenance" {
			trigger = func() {
				cfg, _ := g.Config(1)
				l.FW[1].Run(g.Bin, "-config", cfg, "-maintenance", "on")
			}
		}
	}
	s.Start(1)
	s.WaitMaster(1, 30*time.Second)
	s.Start(2)
	s.WaitBackup(2, 30*time.Second)

	nTCP := envInt(b, "FWBENCH_FLOWS", 1000)
	srv, err := StartEchoServer(l.Server, ServerAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	interval := time.Duration(envInt(b, "FWBENCH_INTERVAL_MS", 50)) * time.Millisecond
	fs, err := StartFlows(l.Client, ServerAddr, nTCP, 0, interval)
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Stop(0)
	if n := fs.WaitRecovered(time.Now(), 30*time.Second); n != nTCP {
		b.Fatalf("%d of %d flows work before the handover", n, nTCP)
	}
	if !Poll(60*time.Second, func() bool { return s.Replicated(2) >= nTCP }) {
		b.Fatalf("fw2 holds %d of %d flows", s.Replicated(2), nTCP)
	}
	before := Summarize(fs.Stats(), false)
	fs.ResetPhase()
	resets := srv.Resets()
	start := time.Now()
	trigger()
	s.WaitMaster(2, 30*time.Second)
	took := time.Since(start)
	recovered := fs.WaitRecovered(time.Now(), 40*time.Second)
	sum := Summarize(fs.Stop(15*time.Second), true)
	resets = srv.Resets() - resets
	b.Logf("%s: before the handover %v; handover %v after the trigger, recovered %d/%d, server saw %d resets, %v",
		name, before, took.Round(time.Millisecond), recovered, nTCP, resets, sum)
	b.ReportMetric(float64(sum.TCP-sum.TCPFailed), "tcp_survived")
	b.ReportMetric(float64(sum.MaxGapTCP.Milliseconds()), "max_gap_ms")
	b.ReportMetric(float64(sum.P50Gap.Milliseconds()), "p50_gap_ms")
	b.ReportMetric(float64(took.Milliseconds()), "handover_ms")
}

func touch(b *testing.B, path string) {
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.Fatal(err)
	}
}

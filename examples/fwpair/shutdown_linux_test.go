package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
)

// setStartWait rewrites carp.start_wait in the configuration file of
// firewall i.
func (p *pair) setStartWait(i int, wait string) {
	p.T.Helper()
	b, err := os.ReadFile(p.cfg[i])
	if err != nil {
		p.T.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		p.T.Fatal(err)
	}
	cfg["carp"].(map[string]any)["start_wait"] = wait
	if b, err = json.Marshal(cfg); err != nil {
		p.T.Fatal(err)
	}
	if err := os.WriteFile(p.cfg[i], b, 0o600); err != nil {
		p.T.Fatal(err)
	}
}

// waitExit waits for firewall i's daemon to exit and checks it exited 0.
func (p *pair) waitExit(i int, after string) {
	p.T.Helper()
	select {
	case <-p.proc[i].Done():
	case <-time.After(20 * time.Second):
		p.T.Fatalf("fw%d did not exit within 20s of %s", i, after)
	}
	if err := p.proc[i].Err(); err != nil {
		p.T.Errorf("fw%d exited with %v after %s, want status 0", i, err, after)
	}
}

// TestSignalDuringStartup: SIGTERM while fwpair waits (start_wait) for a
// sync peer ends it at once, cleanly (status 0), without starting the
// groups. fwpair used to catch signals only once started: the signal
// killed it on the spot, and one arriving right after the groups started
// skipped the bow-out.
func TestSignalDuringStartup(t *testing.T) {
	p := newPair(t, "gss", [3]fwbench.FwpairOptions{1: {StartAsMaster: true}})
	p.setStartWait(1, "1m") // no peer runs: it would wait a minute
	p.start(1)
	if _, _, err := p.proc[1].WaitLine(0, "start_as_master: waiting for a sync peer", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.proc[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(1, "SIGTERM")
	if _, _, err := p.proc[1].WaitLine(0, "shutting down while starting", 0); err != nil {
		t.Error(err)
	}
	if n := p.proc[1].Count(0, "fwpair: started"); n != 0 {
		t.Error("fw1 started its groups after SIGTERM")
	}
}

// TestShutdownBowOut: SIGTERM to the MASTER of both groups: each group
// sends its bow-out, the BACKUP takes both over because of it, and the
// old master exits 0.
func TestShutdownBowOut(t *testing.T) {
	p := newPair(t, "gsb", [3]fwbench.FwpairOptions{1: {StartAsMaster: true}})
	p.start(1)
	p.wait(1, "fw1 MASTER", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	p.start(2)
	// A backup honours only the bow-out of a master it has heard (a bow-out
	// from a node it never heard could be a replay): wait until fw2 has
	// heard fw1's adverts in both groups.
	p.wait(2, "fw2 BACKUP, hearing fw1", 20*time.Second, func(s *Status) bool {
		return allIn(s, "BACKUP") && !slices.ContainsFunc(s.Groups, func(g GroupStatus) bool {
			return g.CARP.Ipackets+g.CARP.Ipackets6 < 2
		})
	})
	from := p.proc[2].Len()
	if err := p.proc[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(1, "SIGTERM")
	for _, vhid := range []string{"vhid=1", "vhid=2"} {
		line, _, err := p.proc[2].WaitLine(from, vhid+` from=BACKUP to=MASTER`, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if want := `reason="bow-out received"`; !strings.Contains(line, want) {
			t.Errorf("fw2 took %s over with %q, want %s", vhid, line, want)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
)

// TestSplit is the chaos soak's split (fwpair, seed 3): fw1's adverts of
// one group are lost on the way out, so fw2 takes that group alone while
// fw1, hearing fw2 and staying MASTER of both groups, never sees a
// transition. For as long as the split lasts the flows are asymmetric, one
// direction through each firewall, and fw1's own entries see
// acknowledgements of data they never saw. With strict window tracking
// those packets are INVALID: with the LAN group split, the server's
// replies are not translated back, reach fw1's own stack at the WAN
// address and are answered with a reset (every TCP flow dies); with the
// WAN group split, the client's packets are dropped (every TCP flow
// stalls). No TCP flow may be reset or stall, and fw1 must keep every
// flow's entry.
func TestSplit(t *testing.T) {
	for _, group := range []int{0, 1} {
		name := []string{"lan", "wan"}[group]
		t.Run(name, func(t *testing.T) { testSplit(t, group) })
	}
}

func testSplit(t *testing.T, group int) {
	p := newPair(t, "gsp", [3]fwbench.FwpairOptions{1: {StartAsMaster: true}, 2: {}})
	port := [2]string{p.LANPort[1], p.WANPort[1]}[group]
	p.start(1)
	p.wait(1, "fw1 MASTER of both groups", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	p.start(2)
	p.wait(2, "fw2 BACKUP, in sync, undemoted", 20*time.Second, func(s *Status) bool {
		return allIn(s, "BACKUP") && s.Sync.BulkDone && s.Sync.PeersUp == 1 && maxDemotion(s) == 0
	})
	p.wait(1, "fw1 sees fw2", 10*time.Second, func(s *Status) bool { return s.Sync.PeersUp == 1 && maxDemotion(s) == 0 })

	const nTCP, nTCP6 = 10, 10
	fs, srvs := startTraffic(t, p, nTCP, 0, nTCP6, 0)
	if n := fs.waitRecovered(time.Now(), 30*time.Second); n != nTCP+nTCP6 {
		t.Fatalf("only %d of %d flows echo before the split", n, nTCP+nTCP6)
	}
	p.wait(2, "every flow replicated to fw2", 20*time.Second, func(s *Status) bool { return s.Sync.Records >= nTCP+nTCP6 })
	checkFlows(t, "before the split", fs)
	before := p.ConntrackCount(1)
	t.Logf("fw1 before the split: %d kernel entries, %d own TCP flows set BE_LIBERAL", before, p.status(1).Conntrack.Liberalized)

	// fw1's adverts of the group (IP protocol 112, both families) are
	// lost in the switch, silently: fw1 sends them without an error, everything
	// else still flows, and fw1 still hears fw2's.
	rules := filepath.Join(p.Dir, "split.nft")
	if err := os.WriteFile(rules, []byte(`table bridge split {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "`+port+`" meta l4proto 112 counter drop
	}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs.resetPhase()
	split := time.Now()
	p.Switch().Run("nft", "-f", rules)
	healed := false
	heal := func() {
		if !healed {
			healed = true
			p.Switch().Run("nft", "delete", "table", "bridge", "split")
		}
	}
	t.Cleanup(heal)

	// fw2 takes the group, installs its addresses and announces them, so
	// from now on one direction of every flow goes through fw2; fw1
	// keeps both groups.
	st := p.wait(2, "fw2 MASTER of the group, its addresses installed and announced", 30*time.Second, func(s *Status) bool {
		// The follower installs only after its commit returned.
		v := s.Groups[group].VIP
		return s.Groups[group].State == "MASTER" && v.Installs > 0 && v.Announcements > 0
	})
	t.Logf("fw2 took the group %v after the split: %+v", time.Since(split).Round(time.Millisecond), st.Sync.Commits)
	if st1 := p.status(1); !allIn(st1, "MASTER") {
		t.Fatalf("fw1 gave up a group during the split (%+v): not the split under test", st1.Groups)
	}
	// Every flow must keep echoing through the split, one direction
	// through each firewall.
	during := time.Now()
	if n := fs.waitRecovered(during, 30*time.Second); n != nTCP+nTCP6 {
		t.Errorf("%d of %d flows echo during the split", n, nTCP+nTCP6)
	}
	checkFlows(t, "during the split", fs)
	if n := p.ConntrackCount(1); n < before {
		t.Errorf("fw1's kernel holds %d entries during the split, %d before", n, before)
	}

	heal()
	p.wait(2, "fw2 BACKUP of both groups after the split healed", 30*time.Second, func(s *Status) bool { return allIn(s, "BACKUP") })
	if n := fs.waitRecovered(time.Now(), 30*time.Second); n != nTCP+nTCP6 {
		t.Errorf("%d of %d flows echo after the split healed", n, nTCP+nTCP6)
	}
	checkFlows(t, "after the split healed", fs)
	for _, srv := range srvs {
		if n := srv.Resets(); n > 0 {
			t.Errorf("the server saw %d TCP connections reset", n)
		}
	}
}

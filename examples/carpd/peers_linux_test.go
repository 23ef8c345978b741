package main

import (
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// TestUnicastPeersThree: three nodes on unicast only, each listing the
// other two with a repeated --peer. Both backups hear the master (neither
// becomes MASTER while it lives); when it dies, the better backup takes
// over and the third node stays BACKUP, hearing the new master.
func TestUnicastPeersThree(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b", "c")
	ip := func(n string) string { return tb.nodes[n].ip.String() }
	start := func(name, skew string, peers ...string) *netns.Process {
		args := []string{"-k", skew}
		for _, p := range peers {
			args = append(args, "--peer", ip(p))
		}
		return tb.carpd(name, false, args...)
	}
	a := start("a", "0", "b", "c")
	tb.waitEvent(0, "a up")
	from := len(tb.eventLines())
	start("b", "50", "a", "c")
	c := start("c", "100", "a", "b")
	tb.waitEvent(from, "b down")
	tb.waitEvent(from, "c down")
	deadline := time.Now().Add(stateTimeout)
	for atoi(t, stats(t, c), "ipackets") < 5 {
		if time.Now().After(deadline) {
			t.Fatal("c did not receive 5 unicast adverts")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := tb.countEvent("b up") + tb.countEvent("c up"); n != 0 {
		t.Fatalf("a backup became MASTER %d times while a was alive", n)
	}
	kill(t, a)
	tb.waitEvent(from, "b up")
	// c hears b's adverts: it must not take over as well.
	for atoi(t, stats(t, c), "ipackets") < 10 {
		if time.Now().After(deadline.Add(stateTimeout)) {
			t.Fatal("c did not hear the new master")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := tb.countEvent("c up"); n != 0 {
		t.Fatalf("c became MASTER %d times", n)
	}
}

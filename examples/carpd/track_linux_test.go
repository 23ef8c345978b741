package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTrackScript: a --track-script that starts failing on the master
// hands the group to the backup (weight 0 forces it out of MASTER, without
// the backup's --preempt); when it succeeds again the master takes the
// group back (--preempt).
func TestTrackScript(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	broken := filepath.Join(tb.dir, "broken")
	tb.startPair("a", "b", tb.carpdFn(false, "-P", "--track-script", "test ! -e "+broken,
		"--track-interval", "100ms", "--track-fall", "2", "--track-rise", "2"), tb.carpdFn(false))
	from := len(tb.eventLines())
	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	i := tb.waitEvent(from, "b up")
	tb.waitEvent(from, "a down")
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	tb.waitEvent(i+1, "a up")
	tb.waitEvent(i+1, "b down")
}

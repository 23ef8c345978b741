package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTimeline(t *testing.T) {
	var out strings.Builder
	tl := newTimeline(&out)
	tl.start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tl.printAt(tl.start.Add(3391*time.Millisecond), "node2", "BACKUP → MASTER (%s)", "master timed out")
	tl.note("✓ done")
	want := "  3.391s  node2  BACKUP → MASTER (master timed out)\n✓ done\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// TestProgressBar checks that, outside a terminal, a bar is printed when it
// starts and when it crosses a quarter, and never goes backwards.
func TestProgressBar(t *testing.T) {
	var out strings.Builder
	tl := newTimeline(&out)
	b := tl.newBar("node2", "bulk sync", 200)
	for _, done := range []int{10, 20, 49, 50, 40, 120, 199, 200, 200} {
		b.set(done)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		got = append(got, line[strings.Index(line, "node2"):])
	}
	want := []string{
		"node2  bulk sync [█░░░░░░░░░░░░░░░░░░░░░░░░░░░░░]   5% 10/200",
		"node2  bulk sync [███████░░░░░░░░░░░░░░░░░░░░░░░]  25% 50/200",
		"node2  bulk sync [██████████████████░░░░░░░░░░░░]  60% 120/200",
		"node2  bulk sync [█████████████████████████████░]  99% 199/200",
		"node2  bulk sync [██████████████████████████████] 100% 200/200",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bar lines (-want +got):\n%s", diff)
	}
}

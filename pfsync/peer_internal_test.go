package pfsync

import (
	"testing"
	"time"
)

// TestSkipGap: giving up a gap skips every frame missing up to the highest
// frame seen when the gap was noticed, in one go, and keeps a hole that
// appeared later, with its own timeout.
func TestSkipGap(t *testing.T) {
	var p peer
	now := time.Unix(1000, 0)
	for s := uint64(1); s <= 20; s++ {
		if s != 3 && s != 7 && s != 12 {
			p.accept(s)
		}
	}
	p.gapSince, p.gapHigh = now, p.highest // noticed with 20 the highest
	for s := uint64(22); s <= 25; s++ {    // 21 missing, noticed later
		p.accept(s)
	}
	later := now.Add(time.Second)
	p.skipGap(p.gapHigh, later)
	if p.next != 21 {
		t.Fatalf("after skipping up to 20: next = %d, want 21 (3, 7 and 12 given up at once, 21 kept)", p.next)
	}
	if !p.hasGap() || p.gapSince != later || p.gapHigh != 25 {
		t.Fatalf("the later hole: hasGap %v gapSince %v gapHigh %d, want true %v 25", p.hasGap(), p.gapSince, p.gapHigh, later)
	}
	p.skipGap(p.gapHigh, later.Add(time.Second))
	if p.next != 26 || p.hasGap() || !p.gapSince.IsZero() {
		t.Fatalf("after skipping up to 25: next %d hasGap %v gapSince %v, want 26 false zero", p.next, p.hasGap(), p.gapSince)
	}
}

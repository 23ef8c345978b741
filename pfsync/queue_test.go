package pfsync

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCoalesceTable lists the queue transitions (what a pending change
// becomes when another change of the same record follows it;
// docs/protocol.md, "What a sender sends") as the engine implements them.
func TestCoalesceTable(t *testing.T) {
	tests := []struct {
		from      slot
		op        op
		announced bool
		want      slot
	}{
		{slotNone, opUpsert, false, slotUpsert},
		{slotNone, opUpsert, true, slotUpsert},
		{slotUpsert, opUpsert, false, slotUpsert}, // update after insert is absorbed
		{slotUpsert, opDelete, false, slotNone},   // delete of an unsent insert sends nothing
		{slotUpsert, opDelete, true, slotDelete},  // a delete replaces a queued update
		{slotNone, opDelete, true, slotDelete},
		{slotDelete, opDelete, true, slotDelete},
		{slotDelete, opUpsert, true, slotUpsert}, // re-created: the new life is sent
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d+%d,announced=%v", tt.from, tt.op, tt.announced), func(t *testing.T) {
			if got := coalesce(tt.from, tt.op, tt.announced); got != tt.want {
				t.Errorf("coalesce(%d, %d, %v) = %d, want %d", tt.from, tt.op, tt.announced, got, tt.want)
			}
		})
	}
}

// TestCoalesceProperty checks, for random sequences of changes, that the
// slot always reflects the last change: an upsert leaves an upsert; a
// delete leaves a delete if peers heard of the record, and nothing at all
// otherwise.
func TestCoalesceProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		announced := rng.IntN(2) == 0
		s := slotNone
		var last op
		for n := 1 + rng.IntN(10); n > 0; n-- {
			last = op(rng.IntN(2))
			s = coalesce(s, last, announced)
		}
		want := slotUpsert
		if last == opDelete {
			want = slotNone
			if announced {
				want = slotDelete
			}
		}
		if s != want {
			t.Fatalf("last change %d (announced %v) left slot %d, want %d", last, announced, s, want)
		}
	}
}

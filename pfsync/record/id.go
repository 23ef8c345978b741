package record

import (
	"fmt"
	"sync/atomic"
	"time"
)

// IDAllocator hands out the IDs of the records one node creates.
//
// The counter is seeded with the Unix time in seconds shifted left by 32,
// exactly like pf's pf_status.stateid, so a node that restarts never reuses
// an id of its previous life as long as its clock did not step back and it
// allocated fewer than 2^32 ids per second of its previous uptime. Peers may
// still hold records (or tombstones) of the previous life under the same
// creator; reusing an id would merge unrelated flows.
//
// An IDAllocator is safe for concurrent use. The zero value is not usable;
// use NewIDAllocator.
type IDAllocator struct {
	creator uint32
	seed    uint64 // the counter's start: Next returns Nums above it
	next    atomic.Uint64
}

// NewIDAllocator returns an allocator for the node creator (non-zero) seeded
// from now, normally time.Now() at engine start.
func NewIDAllocator(creator uint32, now time.Time) (*IDAllocator, error) {
	if creator == 0 {
		return nil, fmt.Errorf("record: creator 0 out of range 1-4294967295")
	}
	secs := now.Unix()
	if secs < 0 {
		return nil, fmt.Errorf("record: seed time %v before 1970", now)
	}
	a := &IDAllocator{creator: creator, seed: uint64(secs) << 32}
	a.next.Store(a.seed)
	return a, nil
}

// Next returns a new ID, never returned before by this allocator. Num is never
// zero.
func (a *IDAllocator) Next() ID {
	n := a.next.Add(1)
	return ID{Creator: a.creator, Num: n}
}

// Creator returns the node id the allocator was made for.
func (a *IDAllocator) Creator() uint32 { return a.creator }

// Issued reports whether id was returned by Next: an ID of this allocator's
// creator between its seed and the last one handed out. An ID of the same
// creator that was not issued belongs to an earlier life of the node (or to
// nobody yet), and what became of it is not this allocator's knowledge.
func (a *IDAllocator) Issued(id ID) bool {
	return id.Creator == a.creator && id.Num > a.seed && id.Num <= a.next.Load()
}

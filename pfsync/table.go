package pfsync

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Table is the embedder's state table: the dataplane's connection-tracking
// entries (Linux conntrack, a Go userspace flow table). The engine applies
// the changes it receives from peers to it: at once with CommitDirect, or
// only in PrepareTakeover with CommitOnTakeover (conntrackd's external
// cache).
//
// The engine never calls the Table for changes the embedder itself reported
// (Upsert, Delete): like pfsync, a state is not echoed back to the table it
// came from. Calls are serial (never concurrent with each other) and made
// with the engine's lock held: a Table must not call back into the engine
// and should return quickly. The record passed is valid only during the
// call; a Table that keeps it copies the struct (its Ext data is never
// modified in place, so a shallow copy is safe).
//
// An error is counted in Stats.TableErrors and logged; the engine does not
// retry (the next change of the record, or a takeover commit, applies it
// again).
type Table interface {
	// Insert adds a record the table does not hold yet.
	Insert(rec *record.Record) error
	// Update replaces a record the table already holds with a newer state.
	Update(rec *record.Record) error
	// Delete removes a record; deleting an absent record is not an error.
	Delete(id record.ID) error
}

// BatchTable is a Table that writes many records in one call. The engine
// then never calls Insert or Update for a peer's record: with CommitDirect
// it writes the remote changes of each received frame in one CommitBatch
// once the frame is read (a bulk frame carries a hundred records at MTU
// 9000), and PrepareTakeover hands it the records waiting for a takeover
// (CommitOnTakeover) a thousand at a time. A kernel table writes a batch in
// a few system calls (pfsync/conntrack batches its netlink messages,
// masters before RELATED flows) instead of a round trip per record.
type BatchTable interface {
	Table
	// CommitBatch inserts every record of recs, or updates it where the
	// table holds it already, and sets errs[i] (len(errs) == len(recs)) to
	// the error of recs[i], nil when it was written. When ctx is done it
	// stops and sets ctx's error for the records it did not attempt (they
	// stay queued for the next takeover). The rules of Table apply: calls
	// are serial, made with the engine's lock held, and the records are
	// valid only during the call.
	CommitBatch(ctx context.Context, recs []record.Record, errs []error)
}

// MemTable is an in-memory Table: a map from record ID to record, safe for
// concurrent use. It is the reference table for tests and the demo, and a
// starting point for a Go dataplane that keeps its own flow table.
//
// The zero value is an empty table ready to use.
type MemTable struct {
	mu sync.RWMutex
	m  map[record.ID]record.Record
}

var _ Table = (*MemTable)(nil)

// Insert stores rec.
func (t *MemTable) Insert(rec *record.Record) error {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[record.ID]record.Record)
	}
	t.m[rec.ID] = *rec
	t.mu.Unlock()
	return nil
}

// Update stores rec, replacing the previous state.
func (t *MemTable) Update(rec *record.Record) error { return t.Insert(rec) }

// Delete removes the record id.
func (t *MemTable) Delete(id record.ID) error {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
	return nil
}

// Get returns the record id.
func (t *MemTable) Get(id record.ID) (record.Record, bool) {
	t.mu.RLock()
	r, ok := t.m[id]
	t.mu.RUnlock()
	return r, ok
}

// Len returns the number of records.
func (t *MemTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// Records returns a copy of every record, ordered by ID.
func (t *MemTable) Records() []record.Record {
	t.mu.RLock()
	recs := slices.Collect(maps.Values(t.m))
	t.mu.RUnlock()
	slices.SortFunc(recs, func(a, b record.Record) int { return compareID(a.ID, b.ID) })
	return recs
}

func compareID(a, b record.ID) int {
	if a.Creator != b.Creator {
		if a.Creator < b.Creator {
			return -1
		}
		return 1
	}
	switch {
	case a.Num < b.Num:
		return -1
	case a.Num > b.Num:
		return 1
	}
	return 0
}

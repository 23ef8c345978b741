package pfsync

import (
	"runtime"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestBulkStartPresizeBounded: a peer announcing a bulk of 2^40 records
// does not make the joiner allocate a table for them (it used to size its
// store for up to 2^26 entries, gigabytes, on the peer's word).
func TestBulkStartPresizeBounded(t *testing.T) {
	e, err := New(Config{Node: 1, Transport: discard{}, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	e.started, e.epoch = true, 0
	var b wire.Builder
	if err := b.Reset(nil, 1500, wire.Header{Sender: 2, Epoch: 9, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBulkStart(wire.BulkStart{Generation: fuzzBulkGen, Expected: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	confirm(t, e, 2, 9, time.Now())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	e.mu.Lock()
	e.input(Datagram{Payload: b.Frame()}, time.Now())
	e.mu.Unlock()
	runtime.ReadMemStats(&after)
	if s := e.Stats(); s.BulkStarted != 1 {
		t.Fatalf("BulkStarted = %d: the frame did not start the bulk this test is about", s.BulkStarted)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("a BulkStart announcing 2^40 records allocated %d MiB", grew>>20)
	}
}

// checkExternal fails unless the engine's count of dirty entries is the
// number of entries flagged dirty.
func checkExternal(t *testing.T, e *Engine) {
	t.Helper()
	if counted, actual := DirtyCounts(e); counted != actual {
		t.Errorf("external count %d, %d entries dirty", counted, actual)
	}
}

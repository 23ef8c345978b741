package pfsync_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

// syncPair starts two engines on a network with a one-way delay of 1 ms
// and waits until they are in sync with each other.
func syncPair(t *testing.T) (*pfsynctest.Network, *pfsync.Engine, *pfsync.Engine) {
	t.Helper()
	network, err := pfsynctest.New(&pfsynctest.Config{Faults: pfsynctest.Faults{Delay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
	b := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true})
	waitFor(t, 10*time.Second, "both in sync", func() bool { return a.Stats().BulkDone && b.Stats().BulkDone })
	return network, a, b
}

// TestUpsertSyncWaitsForThePeer: UpsertSync returns once the peer holds
// the record, one round trip after the call.
func TestUpsertSyncWaitsForThePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := syncPair(t)
		rec := testRecord(a.NewID(), 1)
		start := time.Now()
		if err := a.UpsertSync(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if _, ok := b.Get(rec.ID); !ok {
			t.Fatalf("UpsertSync returned after %v and the peer does not hold the record", took)
		}
		// One round trip: not the flush delay (100 ms) before sending,
		// nor the peer's ack delay (50 ms) before acknowledging.
		if took != 2*time.Millisecond {
			t.Errorf("UpsertSync took %v, want one round trip (2ms)", took)
		}
	})
}

// TestUpsertSyncDeadline: a peer that cannot be reached makes UpsertSync
// return ctx's error at the deadline; the record is not lost, the peer
// gets it after the heal. With the peer gone for good, UpsertSync does
// not wait.
func TestUpsertSyncDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, a, b := syncPair(t)
		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2})
		rec := testRecord(a.NewID(), 1)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := a.UpsertSync(ctx, rec)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 20*time.Millisecond {
			t.Fatalf("UpsertSync across a partition = %v after %v, want the deadline after 20ms", err, time.Since(start))
		}
		network.Heal()
		waitFor(t, 10*time.Second, "the record at the peer after the heal", func() bool { _, ok := b.Get(rec.ID); return ok })

		// The peer is gone: once a counts it down, nothing to wait for.
		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2})
		waitFor(t, 10*time.Second, "the peer counted down", func() bool { return a.Stats().PeersUp == 0 })
		start = time.Now()
		if err := a.UpsertSync(t.Context(), testRecord(a.NewID(), 2)); err != nil || time.Since(start) != 0 {
			t.Errorf("UpsertSync with no peer up = %v after %v, want nil at once", err, time.Since(start))
		}
	})
}

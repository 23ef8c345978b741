package pfsync_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
)

// TestLifetimeAtTakeover: a record's remaining lifetime (Expire) is reduced
// by the time it waited in the engine before PrepareTakeover hands it to
// the Table (conntrackd's commit: last timeout minus the time since the
// last update); a record whose lifetime ran out is not committed.
func TestLifetimeAtTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		var tabB pfsync.MemTable
		b := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true, Table: &tabB, Commit: pfsync.CommitOnTakeover})
		long, short := testRecord(a.NewID(), 1), testRecord(a.NewID(), 2)
		long.Expire, short.Expire = 100, 20
		for _, r := range []record.Record{long, short} {
			if err := a.Upsert(r); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond) // flushed (FlushDelay 100 ms) and received
		synctest.Wait()
		if b.Len() != 2 {
			t.Fatalf("B holds %d records, want 2", b.Len())
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		n, err := b.PrepareTakeover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("PrepareTakeover committed %d records, want 1 (the other ran out)", n)
		}
		got := map[record.ID]uint32{}
		for _, r := range tabB.Records() {
			got[r.ID] = r.Expire
		}
		if diff := cmp.Diff(map[record.ID]uint32{long.ID: 70}, got); diff != "" {
			t.Errorf("Table lifetimes after 30 s in the engine (-want +got):\n%s", diff)
		}
		if got := b.Stats().Expired; got != 1 {
			t.Errorf("Stats.Expired = %d, want 1", got)
		}
	})
}

// TestLifetimeAgedInBulk: a node that holds another node's record for a
// while sends what remains of its lifetime in a bulk sync.
func TestLifetimeAgedInBulk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		b := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true})
		r := testRecord(a.NewID(), 1)
		r.Expire = 100
		if err := a.Upsert(r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := b.Get(r.ID); !ok {
			t.Fatal("B did not receive the record")
		}
		// C joins 30 s later and hears only B.
		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2, 3})
		time.Sleep(30 * time.Second)
		c := mustEngine(t, pfsync.Config{Node: 3, Transport: network.Attach(3), Insecure: true})
		time.Sleep(time.Second)
		synctest.Wait()
		got, ok := c.Get(r.ID)
		if !ok {
			t.Fatalf("C did not receive the record in B's bulk: %+v", c.Stats())
		}
		// 30 or 31 s: B's clock counts whole seconds since its start.
		if got.Expire != 70 && got.Expire != 69 {
			t.Errorf("C received Expire %d from B, want 70 (100 less the 30 s B held it)", got.Expire)
		}
	})
}

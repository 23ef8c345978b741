package pfsync_test

import (
	"bytes"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// TestReplayAfterRestartChangesNothing: an attacker on the sync link
// recorded a peer's sealed frames carrying an insert, and replays them to
// a node that has just restarted (its Sealer's replay window is gone, so
// the frames authenticate) before the live peer reaches it. The record
// was deleted since: applying the replay would bring it back. Nothing the
// replay carries counts until the peer has echoed the node's new epoch;
// the live peer then brings the node its current table, without the
// deleted record.
func TestReplayAfterRestartChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		psk, err := seal.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		sealer := func(node pfsync.NodeID, boot uint32) pfsync.Sealer {
			s, err := seal.New(seal.Config{Node: node, Boot: boot, Keys: []seal.Key{{ID: 1, Secret: psk}}, SendKeyID: 1})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Sealer: sealer(1, 1)})
		var mu sync.Mutex
		var recorded [][]byte
		recording := false
		tap := &tapTransport{Transport: network.Attach(2)}
		tap.setFilter(func(frame []byte) []byte {
			mu.Lock()
			if recording {
				recorded = append(recorded, bytes.Clone(frame))
			}
			mu.Unlock()
			return frame
		})
		r := mustEngine(t, pfsync.Config{Node: 2, Transport: tap, Sealer: sealer(2, 1)})
		for i := range 50 {
			if err := s.Upsert(testRecord(s.NewID(), uint16(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second)

		// The attacker records the frames carrying an insert...
		mu.Lock()
		recording = true
		mu.Unlock()
		ghost := testRecord(s.NewID(), 99)
		if err := s.Upsert(ghost); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		mu.Lock()
		recording = false
		n := len(recorded)
		mu.Unlock()
		if _, ok := r.Get(ghost.ID); !ok || n == 0 {
			t.Fatalf("the insert did not reach the node (%d frames recorded)", n)
		}
		// ... which the owner deletes.
		if err := s.Delete(ghost.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if _, ok := r.Get(ghost.ID); ok {
			t.Fatal("the delete did not reach the node")
		}

		// The node restarts while the live peer cannot reach it, and
		// gets the recording.
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2, 9})
		var tab pfsync.MemTable
		r2 := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Sealer: sealer(2, 2), Table: &tab, Commit: pfsync.CommitDirect})
		attacker := network.Attach(9)
		for _, f := range recorded {
			if err := attacker.Send(2, f); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		st := r2.Stats()
		if r2.Len() != 0 || tab.Len() != 0 {
			t.Fatalf("the replay changed the restarted node: %d records in the engine, %d in its table", r2.Len(), tab.Len())
		}
		if st.Unconfirmed == 0 || st.Peers[1].Confirmed {
			t.Fatalf("Unconfirmed = %d, peer confirmed %v: the replay was not seen and held back", st.Unconfirmed, st.Peers[1].Confirmed)
		}
		if st.BulkDone {
			t.Fatal("in sync on a replay")
		}

		// The live peer reaches the node: it gets the current table.
		network.Heal()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st = r2.Stats()
		if !st.BulkDone || !st.Peers[1].Confirmed {
			t.Fatalf("not in sync with the live peer: %+v", st)
		}
		if _, ok := tab.Get(ghost.ID); ok {
			t.Error("the deleted record came back")
		}
		if r2.Len() != s.Len() || tab.Len() != s.Len() {
			t.Errorf("restarted node holds %d records (%d in its table), the peer %d", r2.Len(), tab.Len(), s.Len())
		}
		t.Logf("%d recorded frames replayed, %d held back", len(recorded), st.Unconfirmed)
	})
}

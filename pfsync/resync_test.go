package pfsync_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// silence cuts the joiner off both ways for d, long enough for each side
// to count the other down, while the founder changes, deletes and creates
// a few records.
func silence(t *testing.T, f *pfsync.Engine, tap *tapTransport, d time.Duration) {
	t.Helper()
	tap.cut.Store(true)
	tap.setFilter(func([]byte) []byte { return nil })
	for i, r := range f.Records()[:10] {
		r.Packets[0]++
		r.Peers[0].SeqLo += 1000
		if err := f.Upsert(r); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := f.Delete(r.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 3 {
		if err := f.Upsert(testRecord(f.NewID(), uint16(60000+i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(d)
	if f.Stats().Peers[2].Up {
		t.Fatal("the founder still counts the joiner up: the silence was too short")
	}
	tap.cut.Store(false)
	tap.setFilter(nil)
}

// TestPeerBackAfterSilenceFetchesOnlyWhatDiffers: after a silence that
// lost frames both ways, each node compares the other's whole-table
// digest with its own and fetches the buckets that differ — a few records
// changed, not the 20,000-record table, in either direction.
func TestPeerBackAfterSilenceFetchesOnlyWhatDiffers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20000
		f, j, tap := bulkPair(t, n, pfsync.Config{AntiEntropy: -1})
		waitFor(t, 30*time.Second, "the joiner's bulk", func() bool { return j.Stats().BulkDone })
		f0, j0 := f.Stats(), j.Stats()
		silence(t, f, tap, 6*time.Second)
		time.Sleep(10 * time.Second)
		js, fs := synced(t, f, j)
		if js.Resyncs == 0 || fs.Resyncs == 0 {
			t.Fatalf("Resyncs: joiner %d, founder %d; want a resynchronisation by digest on both sides", js.Resyncs, fs.Resyncs)
		}
		if js.ResyncTimeouts+fs.ResyncTimeouts != 0 {
			t.Errorf("ResyncTimeouts: joiner %d, founder %d", js.ResyncTimeouts, fs.ResyncTimeouts)
		}
		sentF := fs.BulkRecordsSent - f0.BulkRecordsSent
		sentJ := js.BulkRecordsSent - j0.BulkRecordsSent
		if sentF == 0 || sentF > n/16 || sentJ > n/16 {
			t.Errorf("bulk records sent after the silence: founder %d, joiner %d; want the few buckets of 15 changes (1-%d each), not the table",
				sentF, sentJ, n/16)
		}
		t.Logf("buckets fetched: joiner %d, founder %d; records sent: founder %d, joiner %d",
			js.ResyncBuckets, fs.ResyncBuckets, sentF, sentJ)
	})
}

// TestResyncWithoutDigestFetchesTheTable: a peer that sends no digest
// (here: every digest is lost) is resynchronised the old way, with its
// whole table, once Config.BulkTimeout passes.
func TestResyncWithoutDigestFetchesTheTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 2000
		f, j, tap := bulkPair(t, n, pfsync.Config{AntiEntropy: -1})
		waitFor(t, 30*time.Second, "the joiner's bulk", func() bool { return j.Stats().BulkDone })
		silence(t, f, tap, 6*time.Second)
		dropped := tap.cutElements(t, wire.KindDigest)
		time.Sleep(10 * time.Second)
		js, _ := synced(t, f, j)
		if dropped.Load() == 0 {
			t.Fatal("no digest was dropped")
		}
		if js.ResyncTimeouts == 0 || js.BulkCompleted < 2 {
			t.Errorf("ResyncTimeouts %d, BulkCompleted %d: want the whole-table bulk after the digest never came", js.ResyncTimeouts, js.BulkCompleted)
		}
	})
}

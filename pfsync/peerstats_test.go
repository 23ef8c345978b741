package pfsync_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestPeerStatsBulkProgress: while a bulk sync runs, the joiner's
// PeerStats of the founder show its progress (records announced and
// received, ranges settled of those to settle); once done, nothing runs.
func TestPeerStatsBulkProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 4000
		f, j, _ := bulkPair(t, n, pfsync.Config{BulkRate: 100, BulkBurst: 1})
		waitFor(t, 20*time.Second, "a quarter of the bulk", func() bool { return j.Stats().BulkReceived >= n/4 })
		s := j.Stats()
		ps := s.Peers[1]
		if ps.BulkExpected != n || ps.BulkReceived < n/4 || ps.BulkReceived >= n {
			t.Errorf("founder's bulk progress %d of %d; want a quarter or more of %d", ps.BulkReceived, ps.BulkExpected, n)
		}
		if ps.BulkReceived != s.BulkReceived || ps.BulkExpected != s.BulkExpected {
			t.Errorf("per peer %d/%d, engine-wide %d/%d: one bulk runs, they must agree",
				ps.BulkReceived, ps.BulkExpected, s.BulkReceived, s.BulkExpected)
		}
		if ps.BulkRanges != wire.Buckets || ps.BulkRangesDone >= ps.BulkRanges {
			t.Errorf("ranges %d of %d settled; want fewer than all of %d", ps.BulkRangesDone, ps.BulkRanges, wire.Buckets)
		}
		time.Sleep(60 * time.Second)
		synced(t, f, j)
		if ps := j.Stats().Peers[1]; ps.BulkExpected != 0 || ps.BulkReceived != 0 || ps.BulkRanges != 0 || ps.BulkRangesDone != 0 {
			t.Errorf("after the bulk: %+v; want no bulk progress", ps)
		}
	})
}

// TestPeerStatsRetransmissions: a frame of the founder's stream is lost on
// its way to the joiner. The joiner counts the gap and its nack against
// the founder; the founder counts the nack and the records it sent again
// against the joiner; the engine-wide counters are the sums.
func TestPeerStatsRetransmissions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, j, tap := bulkPair(t, 100, pfsync.Config{})
		time.Sleep(10 * time.Second)
		synced(t, f, j)
		var mu sync.Mutex
		dropped := uint64(0)
		tap.setFilter(func(frame []byte) []byte {
			seq, seqd, bulk := frameInfo(frame)
			mu.Lock()
			defer mu.Unlock()
			if seqd && !bulk && dropped == 0 {
				dropped = seq
				return nil
			}
			return frame
		})
		recs := f.Records()
		for i, r := range recs[:20] {
			r.Packets[0]++
			if err := f.Upsert(r); err != nil {
				t.Fatal(err)
			}
			if i%5 == 4 {
				time.Sleep(100 * time.Millisecond) // the next ones leave in another frame
			}
		}
		time.Sleep(5 * time.Second)
		synced(t, f, j)
		mu.Lock()
		lost := dropped
		mu.Unlock()
		if lost == 0 {
			t.Fatal("no frame was dropped")
		}
		js, fs := j.Stats(), f.Stats()
		jp, fp := js.Peers[1], fs.Peers[2]
		if jp.Gaps == 0 || jp.NacksSent == 0 {
			t.Errorf("joiner's view of the founder: gaps %d, nacks sent %d; want both counted", jp.Gaps, jp.NacksSent)
		}
		if fp.NacksReceived == 0 || fp.Retransmits == 0 {
			t.Errorf("founder's view of the joiner: nacks received %d, retransmits %d; want both counted", fp.NacksReceived, fp.Retransmits)
		}
		if jp.GapsGivenUp != 0 {
			t.Errorf("joiner gave up %d gaps; the retransmission should have filled it", jp.GapsGivenUp)
		}
		for _, c := range []struct {
			name       string
			peer, wide uint64
		}{
			{"joiner NacksSent", jp.NacksSent, js.NacksSent},
			{"founder NacksReceived", fp.NacksReceived, fs.NacksReceived},
			{"founder Retransmits", fp.Retransmits, fs.Retransmits},
			{"joiner GapsGivenUp", jp.GapsGivenUp, js.GapsGivenUp},
		} {
			if c.peer != c.wide {
				t.Errorf("%s: per peer %d, engine-wide %d; one peer: they must agree", c.name, c.peer, c.wide)
			}
		}
	})
}

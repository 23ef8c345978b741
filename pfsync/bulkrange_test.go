package pfsync_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// tapTransport lets a test cut a node's sends and rewrite or drop the
// frames it receives (the engines run Insecure, so frames are plaintext).
type tapTransport struct {
	pfsync.Transport
	cut    atomic.Bool
	mu     sync.Mutex
	filter func(frame []byte) []byte // nil result: the frame is lost
}

func (t *tapTransport) Send(to pfsync.NodeID, frame []byte) error {
	if t.cut.Load() {
		return nil // lost on the way
	}
	return t.Transport.Send(to, frame)
}

func (t *tapTransport) Receive() (pfsync.Datagram, error) {
	for {
		d, err := t.Transport.Receive()
		if err != nil {
			return d, err
		}
		t.mu.Lock()
		f := t.filter
		t.mu.Unlock()
		if f == nil {
			return d, nil
		}
		if p := f(d.Payload); p != nil {
			d.Payload = p
			return d, nil
		}
	}
}

func (t *tapTransport) setFilter(f func([]byte) []byte) {
	t.mu.Lock()
	t.filter = f
	t.mu.Unlock()
}

// cutElements makes t take every element of kind out of the frames it
// receives, and returns the count of elements taken out.
func (t *tapTransport) cutElements(tb *testing.T, kind wire.Kind) *atomic.Int64 {
	var cut atomic.Int64
	t.setFilter(func(frame []byte) []byte {
		return withoutElements(tb, frame, func(k wire.Kind) bool {
			if k == kind {
				cut.Add(1)
				return true
			}
			return false
		})
	})
	return &cut
}

// frameInfo tells a sequenced frame's number and whether it is a bulk frame.
func frameInfo(frame []byte) (seq uint64, sequenced, bulk bool) {
	var rd wire.Reader
	if rd.Reset(frame) != nil {
		return 0, false, false
	}
	h := rd.Header()
	for rd.Next() {
		if rd.Kind() == wire.KindBulkStart {
			bulk = true
		}
	}
	return h.Seq, h.Flags&wire.FlagUnsequenced == 0, bulk
}

// withoutFirstRecord rebuilds frame without its first record element, as
// a buggy or corrupting sender would send it.
func withoutFirstRecord(t *testing.T, frame []byte) []byte {
	dropped := false
	return withoutElements(t, frame, func(k wire.Kind) bool {
		if (k == wire.KindInsert || k == wire.KindUpdate) && !dropped {
			dropped = true
			return true
		}
		return false
	})
}

// withoutElements rebuilds frame without the elements drop picks, in
// order.
func withoutElements(t *testing.T, frame []byte, drop func(wire.Kind) bool) []byte {
	var rd wire.Reader
	if err := rd.Reset(frame); err != nil {
		t.Error(err)
		return frame
	}
	var b wire.Builder
	if err := b.Reset(nil, max(len(frame), 128), rd.Header()); err != nil {
		t.Error(err)
		return frame
	}
	b.SetFlags(rd.Header().Flags)
	for rd.Next() {
		k := rd.Kind()
		if drop(k) {
			continue
		}
		var err error
		switch k {
		case wire.KindInsert, wire.KindUpdate:
			err = b.AddRecordBody(k, rd.Raw())
		default:
			el, derr := rd.Element()
			if derr != nil {
				t.Error(derr)
				return frame
			}
			err = b.Add(el)
		}
		if err != nil {
			t.Error(err)
			return frame
		}
	}
	return b.Frame()
}

// bulkPair starts a founder holding n records of its own and a joiner whose
// transport the test taps.
func bulkPair(t *testing.T, n int, founder pfsync.Config) (f, j *pfsync.Engine, tap *tapTransport) {
	t.Helper()
	network, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	founder.Node, founder.Transport, founder.Insecure = 1, network.Attach(1), true
	f = mustEngine(t, founder)
	for i := range n {
		if err := f.Upsert(testRecord(f.NewID(), uint16(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Second) // the founder's discovery window passes
	tap = &tapTransport{Transport: network.Attach(2)}
	j = mustEngine(t, pfsync.Config{Node: 2, Transport: tap, Insecure: true})
	return f, j, tap
}

// sameRecords fails unless j holds every record of f at f's version.
func sameRecords(t *testing.T, f, j *pfsync.Engine) {
	t.Helper()
	recs := f.Records()
	if got := j.Len(); got != len(recs) {
		t.Errorf("joiner holds %d records, founder %d", got, len(recs))
	}
	bad := 0
	for _, want := range recs {
		got, ok := j.Get(want.ID)
		if !ok || got.Version != want.Version {
			if bad++; bad <= 5 {
				t.Errorf("record %v: joiner has version %d (present %v), founder %d", want.ID, got.Version, ok, want.Version)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d records differ in all", bad)
	}
}

// synced waits for the bubble to settle, fails unless the joiner j is in
// sync, not degraded and holds every record of the founder f, and returns
// both engines' statistics.
func synced(t *testing.T, f, j *pfsync.Engine) (js, fs pfsync.Stats) {
	t.Helper()
	synctest.Wait()
	js, fs = j.Stats(), f.Stats()
	if !js.BulkDone || js.Degraded {
		t.Fatalf("joiner BulkDone %v Degraded %v: %+v", js.BulkDone, js.Degraded, js)
	}
	sameRecords(t, f, j)
	return js, fs
}

// waitFor advances the bubble's fake clock until cond holds or limit
// passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBulkRetriesOnlyTheFailedRange: one bulk frame reaches the joiner
// without one of its records. The mark of that record's range fails, and
// the joiner asks again for that range only: the founder sends the table
// once plus one range, not twice.
func TestBulkRetriesOnlyTheFailedRange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5000
		f, j, tap := bulkPair(t, n, pfsync.Config{})
		bulkFrames := 0
		tap.setFilter(func(frame []byte) []byte {
			if _, seqd, bulk := frameInfo(frame); seqd && bulk {
				if bulkFrames++; bulkFrames == 10 {
					return withoutFirstRecord(t, frame)
				}
			}
			return frame
		})
		time.Sleep(30 * time.Second)
		js, fs := synced(t, f, j)
		if js.BulkRangesFailed != 1 {
			t.Errorf("BulkRangesFailed = %d, want 1", js.BulkRangesFailed)
		}
		if js.BulkBucketsRetried < 1 || js.BulkBucketsRetried > 4 {
			t.Errorf("BulkBucketsRetried = %d, want the one failed range (1-4 of %d buckets)", js.BulkBucketsRetried, wire.Buckets)
		}
		extra := int(fs.BulkRecordsSent) - n
		if extra < 1 || extra > n/32 {
			t.Errorf("founder sent %d bulk records for %d: the retry cost %d records, want one range (1-%d)", fs.BulkRecordsSent, n, extra, n/32)
		}
		t.Logf("retry: %d buckets, %d records", js.BulkBucketsRetried, extra)
	})
}

// TestBulkResumesAfterInterruption: the joiner's sends are cut during the
// bulk, long enough for the founder to count it down and drop the
// transfer. After the heal the joiner asks for the buckets it does not
// hold yet: the founder sends the table about once, not once and a part.
func TestBulkResumesAfterInterruption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20000
		// About 28 records per 1500-byte frame at 50 frames/s: a 14 s bulk.
		f, j, tap := bulkPair(t, n, pfsync.Config{BulkRate: 50, BulkBurst: 1})
		waitFor(t, 10*time.Second, "a quarter of the bulk", func() bool { return j.Stats().BulkReceived >= n/4 })
		tap.cut.Store(true)
		waitFor(t, 10*time.Second, "the founder counting the joiner down", func() bool { return !f.Stats().Peers[2].Up })
		time.Sleep(5 * time.Second)
		if got := j.Len(); got >= n {
			t.Fatalf("joiner holds all %d records before the heal: the interruption came too late", got)
		}
		tap.cut.Store(false)
		time.Sleep(30 * time.Second)
		js, fs := synced(t, f, j)
		if js.BulkFailed == 0 {
			t.Errorf("BulkFailed = 0: the transfer was never interrupted")
		}
		if extra := int(fs.BulkRecordsSent) - n; extra > n/16 {
			t.Errorf("founder sent %d bulk records for %d: the retry resent %d records the joiner already held", fs.BulkRecordsSent, n, extra)
		}
		t.Logf("founder sent %d bulk records for %d; joiner asked again for %d buckets in %d failed attempts",
			fs.BulkRecordsSent, n, js.BulkBucketsRetried, js.BulkFailed)
	})
}

// TestBulkLostFramesRefetchSettled: halfway through the bulk, the founder
// updates records and the frames carrying those updates never reach the
// joiner (every retransmission is lost too), so the joiner gives the gap
// up. Some updated records are in buckets already settled: once the bulk
// is complete, the joiner compares the founder's digest with its table
// and fetches the buckets that differ, rather than keep the stale copies.
func TestBulkLostFramesRefetchSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 10000
		// No anti-entropy: it would repair stale copies later on its own;
		// this is about the bulk session.
		f, j, tap := bulkPair(t, n, pfsync.Config{BulkRate: 100, BulkBurst: 1, AntiEntropy: -1})
		waitFor(t, 10*time.Second, "half of the bulk", func() bool { return j.Stats().BulkReceived >= n/2 })
		var mu sync.Mutex
		lost := map[uint64]bool{}
		dropping := true
		tap.setFilter(func(frame []byte) []byte {
			seq, seqd, bulk := frameInfo(frame)
			mu.Lock()
			defer mu.Unlock()
			if seqd && !bulk && dropping {
				lost[seq] = true
			}
			if seqd && lost[seq] {
				return nil
			}
			return frame
		})
		recs := f.Records()
		updated := map[record.ID]bool{}
		for _, r := range recs[:200] {
			r.Packets[0]++
			r.Peers[0].SeqLo += 1000
			if err := f.Upsert(r); err != nil {
				t.Fatal(err)
			}
			updated[r.ID] = true
		}
		time.Sleep(time.Second) // the updates leave and are lost
		mu.Lock()
		dropping = false
		nlost := len(lost)
		mu.Unlock()
		if nlost == 0 {
			t.Fatal("no update frame was lost")
		}
		time.Sleep(60 * time.Second)
		js, fs := synced(t, f, j)
		if js.GapsGivenUp == 0 {
			t.Errorf("the joiner never gave up the lost frames: %+v", js)
		}
		if js.Resyncs == 0 {
			t.Errorf("the joiner did not compare digests after the bulk: %+v", js)
		}
		t.Logf("%d frames lost, %d gaps given up, %d buckets found different by digest, %d retried; founder sent %d bulk records for %d",
			nlost, js.GapsGivenUp, js.ResyncBuckets, js.BulkBucketsRetried, fs.BulkRecordsSent, n)
	})
}

// TestAntiEntropyRepairsOnlyMismatchingBuckets: the founder's send queue
// overflows and drops three updates, a silent divergence. Its next digest
// shows the joiner which anti-entropy buckets differ, and the joiner asks
// for those buckets of the founder's records only, not for all of them.
func TestAntiEntropyRepairsOnlyMismatchingBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5000
		f, j, _ := bulkPair(t, n, pfsync.Config{MaxPending: 10, AntiEntropy: 5 * time.Second})
		waitFor(t, 20*time.Second, "the joiner's bulk", func() bool { return j.Stats().BulkDone })
		before, drops0 := f.Stats().BulkRecordsSent, f.Stats().QueueDrops
		for _, r := range f.Records()[:13] {
			r.Packets[0]++
			if err := f.Upsert(r); err != nil {
				t.Fatal(err)
			}
		}
		if drops := f.Stats().QueueDrops - drops0; drops != 3 {
			t.Fatalf("QueueDrops = %d, want 3 of 13 updates beyond MaxPending 10", drops)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		sameRecords(t, f, j)
		js := j.Stats()
		if js.DigestMismatches < 1 || js.DigestMismatches > 3 {
			t.Errorf("DigestMismatches = %d, want the 1-3 buckets of the dropped updates", js.DigestMismatches)
		}
		repair := f.Stats().BulkRecordsSent - before
		if repair < 3 || repair > n/8 {
			t.Errorf("the repair sent %d records, want those of 1-3 of 64 anti-entropy buckets (3-%d)", repair, n/8)
		}
		t.Logf("%d buckets differed, repair sent %d records", js.DigestMismatches, repair)
	})
}

// TestBulkEndLostAfterEveryRangeSettled: the bulk's end marker never
// reaches the joiner (it is cut from its frame, retransmissions included),
// but every range of the bulk matched its mark. When the attempt's
// deadline comes, there is nothing left to ask for: the session is
// complete, not a failure that sends another request.
func TestBulkEndLostAfterEveryRangeSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 2000
		f, j, tap := bulkPair(t, n, pfsync.Config{})
		dropped := tap.cutElements(t, wire.KindBulkEnd)
		waitFor(t, 30*time.Second, "the joiner in sync", func() bool { return j.Stats().BulkDone })
		js, _ := synced(t, f, j)
		if dropped.Load() == 0 {
			t.Fatal("no end marker was dropped")
		}
		if js.BulkFailed != 0 || js.BulkBucketsRetried != 0 {
			t.Errorf("BulkFailed = %d, BulkBucketsRetried = %d: a bulk whose every range settled was counted failed and asked for again",
				js.BulkFailed, js.BulkBucketsRetried)
		}
		if js.BulkCompleted != 1 {
			t.Errorf("BulkCompleted = %d, want 1", js.BulkCompleted)
		}
	})
}

package pfsync_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

// syncWatch is a Demoter that notes, when the engine clears its bulk
// demotion, how many records the engine holds at that moment (the Demoter
// is called without the engine's lock, so it may call back into it).
type syncWatch struct {
	e       *pfsync.Engine
	mu      sync.Mutex
	cleared bool
	at      time.Time
	held    int
}

func (w *syncWatch) SetDemotion(source string, n int) {
	if source != pfsync.DemoteSourceBulk {
		return
	}
	held := w.e.Len()
	w.mu.Lock()
	defer w.mu.Unlock()
	if n == 0 && !w.cleared {
		w.cleared, w.at, w.held = true, time.Now(), held
	}
}

func (w *syncWatch) state() (cleared bool, at time.Time, held int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cleared, w.at, w.held
}

// watched returns a started engine whose Demoter is a syncWatch, with n
// records of its own upserted before Start (a founder's dataplane).
func watched(t *testing.T, cfg pfsync.Config, n int) (*pfsync.Engine, *syncWatch) {
	t.Helper()
	w := &syncWatch{}
	cfg.Insecure, cfg.Demoter = true, w
	e, err := pfsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.e = e
	for i := range n {
		if err := e.Upsert(testRecord(e.NewID(), uint16(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, w
}

func TestInSyncFounderAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		e, w := watched(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Discovery: 4 * time.Second}, 10)
		time.Sleep(3900 * time.Millisecond)
		synctest.Wait()
		if cleared, _, _ := w.state(); cleared || e.Stats().BulkDone {
			t.Fatal("bulk demotion cleared before the discovery window ended")
		}
		if got := e.Demotion(); got != 32 {
			t.Errorf("Demotion() within the window = %d, want 32 (init)", got)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		cleared, at, _ := w.state()
		if !cleared {
			t.Fatalf("founder still demoted after the discovery window: stats %+v", e.Stats())
		}
		if got, want := at.Sub(start), 4*time.Second; got != want {
			t.Errorf("bulk demotion cleared %v after Start, want %v", got, want)
		}
		if got := e.Demotion(); got != 0 {
			t.Errorf("Demotion() of a lone founder = %d, want 0 (no peer being silent demotes)", got)
		}
		if s := e.Stats(); !s.BulkDone || s.Degraded {
			t.Errorf("Stats BulkDone %v Degraded %v, want true false", s.BulkDone, s.Degraded)
		}
	})
}

// TestInSyncFounderAndJoiner: the founder holding every record is in sync
// by its discovery window, not by the (empty) bulk of a joiner; the joiner
// only once the founder's bulk, paced slowly here, arrived whole.
func TestInSyncFounderAndJoiner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const records = 2000
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		// About 20 records per 1500-byte frame at 20 frames/s: a 5 s bulk.
		f, fw := watched(t, pfsync.Config{Node: 1, Transport: network.Attach(1), BulkRate: 20, BulkBurst: 1}, records)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if cleared, _, held := fw.state(); !cleared || held != records {
			t.Fatalf("founder alone for 5 s: bulk demotion cleared %v holding %d records, want cleared holding %d", cleared, held, records)
		}
		joined := time.Now()
		j, jw := watched(t, pfsync.Config{Node: 2, Transport: network.Attach(2)}, 0)
		time.Sleep(time.Second)
		synctest.Wait()
		if cleared, _, held := jw.state(); cleared {
			t.Fatalf("joiner cleared its bulk demotion holding %d of %d records", held, records)
		}
		if got := j.Demotion(); got != 32 {
			t.Errorf("joiner's Demotion() during the bulk = %d, want 32", got)
		}
		if got := f.Demotion(); got != 0 {
			t.Errorf("founder's Demotion() with a joiner up = %d, want 0", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		cleared, at, held := jw.state()
		if !cleared {
			t.Fatalf("joiner never in sync: stats %+v", j.Stats())
		}
		if held != records {
			t.Errorf("joiner cleared its bulk demotion holding %d records, want %d", held, records)
		}
		if took := at.Sub(joined); took < 2*time.Second {
			t.Errorf("joiner in sync %v after Start, before the paced bulk could have arrived", took)
		}
		if got := j.Demotion(); got != 0 {
			t.Errorf("joiner's Demotion() after its bulk = %d, want 0", got)
		}
	})
}

// TestInSyncSimultaneousBoot: three nodes start at once, one with records
// and a slow bulk; the two empty ones finish their bulks to each other at
// once, but neither is in sync before it holds the third one's records.
func TestInSyncSimultaneousBoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const records = 1000
		network, err := pfsynctest.New(&pfsynctest.Config{Faults: pfsynctest.Faults{Delay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		var ws []*syncWatch
		var es []*pfsync.Engine
		for i := range 3 {
			n := 0
			if i == 0 {
				n = records
			}
			e, w := watched(t, pfsync.Config{Node: pfsync.NodeID(i + 1), Transport: network.Attach(pfsync.NodeID(i + 1)), BulkRate: 20, BulkBurst: 1}, n)
			es, ws = append(es, e), append(ws, w)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for i, w := range ws[1:] {
			if cleared, _, held := w.state(); cleared {
				t.Errorf("node %d in sync after 1 s holding %d of %d records", i+2, held, records)
			}
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		for i, w := range ws {
			cleared, _, held := w.state()
			if !cleared {
				t.Errorf("node %d never in sync: %+v", i+1, es[i].Stats())
				continue
			}
			if held != records {
				t.Errorf("node %d cleared its bulk demotion holding %d records, want %d", i+1, held, records)
			}
			// Each bulk request is addressed to one peer: none was
			// cancelled by a request meant for another and timed out.
			if s := es[i].Stats(); s.BulkFailed != 0 {
				t.Errorf("node %d: %d bulk attempts failed on a perfect network", i+1, s.BulkFailed)
			}
		}
	})
}

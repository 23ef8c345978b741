package conntrack

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// afterDump runs after once, after the first dump that follows arming.
type afterDump struct {
	dumper
	armed atomic.Bool
	after func()
}

func (d *afterDump) Dump(o *ct.DumpOptions) ([]ct.Flow, error) {
	flows, err := d.dumper.Dump(o)
	if d.armed.CompareAndSwap(true, false) {
		d.after()
	}
	return flows, err
}

// TestOverrunResyncSeesLaterFlows: once the event socket overran, the
// kernel drops every further event without another error until the
// socket's queue has been emptied. The resync the overrun causes must
// therefore dump only after the watcher emptied the queue: a flow created
// after a dump taken while the queue still held events had its event
// dropped and was not in the dump, and was reported only by the next
// periodic resync (30 s by default) — the last flows of a burst reaching
// the peers half a minute late. Here the Sink is stalled while 20,000
// flows are created, so the socket overruns with thousands of events
// queued behind the watcher's; flows created right after the overrun's
// dump must be reported without any periodic resync.
func TestOverrunResyncSeesLaterFlows(t *testing.T) {
	tp := netns.New(t, "gco")
	_, fd := testNS(t, tp, "a")
	const n, k = 20000, 50
	recs := benchRecords(n + k)
	writer := newBackend(t, Config{NetNS: fd})

	w := newBackend(t, Config{NetNS: fd, ReadBuffer: 4 << 20, Resync: -1})
	w.lossResync = 0
	var hook *afterDump
	w.wrapDump = func(d dumper) dumper {
		hook = &afterDump{dumper: d, after: func() {
			// The flows created after the dump: only their events
			// can bring them.
			if res, err := writer.Commit(context.Background(), recs[n:]); err != nil || res.Created != k {
				t.Errorf("commit after the dump: %+v, %v", res, err)
			}
		}}
		return hook
	}
	sink := newFakeSink(0)
	if err := w.Start(sink); err != nil {
		t.Fatal(err)
	}
	if err := w.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	sink.mu.Lock()
	sink.gate = gate
	sink.mu.Unlock()
	hook.armed.Store(true)
	if res, err := writer.Commit(context.Background(), recs[:n]); err != nil || res.Created != n {
		t.Fatalf("commit: %+v, %v", res, err)
	}
	sink.mu.Lock()
	sink.gate = nil
	sink.mu.Unlock()
	close(gate)

	// The deadline only turns a lost flow into a failure: with no
	// periodic resync it would never be reported.
	deadline := time.After(30 * time.Second)
	for sink.len() < n+k {
		select {
		case <-sink.changed:
		case <-deadline:
			s := w.Stats()
			t.Fatalf("%d of %d flows reported (overruns %d, resyncs %d)", sink.len(), n+k, s.Overruns, s.Resyncs)
		}
	}
	if s := w.Stats(); s.Overruns == 0 {
		t.Errorf("stats %+v: the socket never overran, the test tested nothing", s)
	}
	if hook.armed.Load() {
		t.Error("no resync after the overrun")
	}
}

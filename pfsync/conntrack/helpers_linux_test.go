package conntrack

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync/record"
	ct "github.com/ti-mo/conntrack"
)

// fakeSink records what the watcher reports. NewID hands out ids of creator
// 1; every Upsert and Delete is also sent on ch (if not nil). While gate is
// not nil, Upsert and Delete wait for it to be closed: the tests use it to
// stall the watcher and overrun its socket.
type fakeSink struct {
	mu   sync.Mutex
	next uint64
	recs map[record.ID]record.Record
	dels []record.ID
	ch   chan action
	gate chan struct{}
	// changed is signalled (without blocking) after every change.
	changed chan struct{}
}

func newFakeSink(buffer int) *fakeSink {
	s := &fakeSink{recs: make(map[record.ID]record.Record), changed: make(chan struct{}, 1)}
	if buffer > 0 {
		s.ch = make(chan action, buffer)
	}
	return s
}

func (s *fakeSink) NewID() record.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return record.ID{Creator: 1, Num: s.next}
}

func (s *fakeSink) wait() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (s *fakeSink) Upsert(rec record.Record) error {
	s.wait()
	s.mu.Lock()
	s.recs[rec.ID] = rec
	s.mu.Unlock()
	s.signal()
	if s.ch != nil {
		s.ch <- action{rec: rec}
	}
	return nil
}

func (s *fakeSink) Delete(id record.ID) error {
	s.wait()
	s.mu.Lock()
	delete(s.recs, id)
	s.dels = append(s.dels, id)
	s.mu.Unlock()
	s.signal()
	if s.ch != nil {
		s.ch <- action{del: true, id: id}
	}
	return nil
}

func (s *fakeSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// testNS creates a fresh network namespace (conntrack works there without
// any rule) and returns it with an open descriptor for Config.NetNS.
func testNS(t *testing.T, tp *netns.Topology, name string) (*netns.NS, int) {
	t.Helper()
	n := tp.Node(name)
	f, err := os.Open(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return n, int(f.Fd())
}

// dumpNS returns every flow of the namespace's table.
func dumpNS(t *testing.T, fd int) []ct.Flow {
	t.Helper()
	c, err := ct.Dial(netlinkConfig(fd))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	return flows
}

// findFlow returns the flow with the original source src.
func findFlow(flows []ct.Flow, src netip.AddrPort) (ct.Flow, bool) {
	for _, f := range flows {
		if tupleToRecord(&f.TupleOrig).Src == src {
			return f, true
		}
	}
	return ct.Flow{}, false
}

// next waits for the sink's next action; the deadline only turns a hang
// into a failure.
func (s *fakeSink) nextAction(t *testing.T) action {
	t.Helper()
	select {
	case a := <-s.ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no action reported within 10 s")
	}
	return action{}
}

// startWatching returns a backend with cfg whose watcher reports to a fresh
// fakeSink; both are closed when the test ends. It returns once the
// watcher's first resync is over: that resync drops the events queued
// before its dump (the dump supersedes them), so a flow a test creates
// while it runs would be reported without its event being counted.
func startWatching(t *testing.T, cfg Config) (*Backend, *fakeSink) {
	t.Helper()
	sink := newFakeSink(64)
	b := newBackend(t, cfg)
	if err := b.Start(sink); err != nil {
		t.Fatal(err)
	}
	if err := b.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, sink
}

func newBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func (s *fakeSink) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

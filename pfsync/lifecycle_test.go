package pfsync_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
)

func TestConfigValidation(t *testing.T) {
	network, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := network.Attach(1)
	tests := []struct {
		name string
		cfg  pfsync.Config
		want string
	}{
		{"node", pfsync.Config{Transport: tr, Insecure: true}, "pfsync: Config.Node 0 out of range 1-4294967295"},
		{"transport", pfsync.Config{Node: 1, Insecure: true}, "pfsync: Config.Transport is nil, want a Transport"},
		{"sealer", pfsync.Config{Node: 1, Transport: tr}, "pfsync: Config.Sealer is nil and Config.Insecure is false (refusing to sync state unauthenticated)"},
		{"flush", pfsync.Config{Node: 1, Transport: tr, Insecure: true, FlushDelay: 2 * time.Second}, "pfsync: Config.FlushDelay 2s out of range 1ms-1s"},
		{"dead", pfsync.Config{Node: 1, Transport: tr, Insecure: true, DeadAfter: 1}, "pfsync: Config.DeadAfter 1 out of range 2-100"},
		{"rate", pfsync.Config{Node: 1, Transport: tr, Insecure: true, BulkRate: -5}, "pfsync: Config.BulkRate -5 out of range 1-10000000"},
		{"commit", pfsync.Config{Node: 1, Transport: tr, Insecure: true, Commit: 7}, "pfsync: Config.Commit 7 out of range 0-1"},
		{"demote", pfsync.Config{Node: 1, Transport: tr, Insecure: true, DemoteInit: 300}, "pfsync: Config.DemoteInit 300 out of range 1-255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pfsync.New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := pfsync.New(pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err == nil {
			t.Error("second Start succeeded")
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := e.Upsert(testRecord(e.NewID(), 1)); !errors.Is(err, pfsync.ErrClosed) {
			t.Errorf("Upsert after Close = %v, want ErrClosed", err)
		}
		if err := e.Start(); !errors.Is(err, pfsync.ErrClosed) {
			t.Errorf("Start after Close = %v, want ErrClosed", err)
		}
		// synctest.Test fails if a goroutine of the engine is left behind.
	})
}

type demoter struct {
	mu sync.Mutex
	m  map[string]int
}

func (d *demoter) SetDemotion(source string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]int{}
	}
	if n == 0 {
		delete(d.m, source)
		return
	}
	d.m[source] = n
}

func (d *demoter) get() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]int{}
	for k, v := range d.m {
		m[k] = v
	}
	return m
}

func TestDemotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		var dem demoter
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, Demoter: &dem})
		for i := range 50 {
			if err := a.Upsert(testRecord(a.NewID(), uint16(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		want := map[string]int{pfsync.DemoteSourceBulk: 32}
		if diff := cmp.Diff(want, dem.get()); diff != "" {
			t.Errorf("alone, within the discovery window (-want +got):\n%s", diff)
		}
		if got := a.Demotion(); got != 32 {
			t.Errorf("Demotion() = %d, want 32", got)
		}
		time.Sleep(3 * time.Second) // past the discovery window (3 heartbeats)
		synctest.Wait()
		want = map[string]int{}
		if diff := cmp.Diff(want, dem.get()); diff != "" {
			t.Errorf("alone, founder after the discovery window (-want +got):\n%s", diff)
		}

		b := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true})
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff(map[string]int{}, dem.get()); diff != "" {
			t.Errorf("after the bulk sync (-want +got):\n%s", diff)
		}
		if got, want := b.Stats().BulkCompleted, uint64(1); got < want {
			t.Errorf("B completed %d bulk syncs, want at least %d", got, want)
		}
		if got := b.Len(); got != 50 {
			t.Errorf("B holds %d records after its bulk sync, want 50", got)
		}

		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2})
		time.Sleep(4 * time.Second) // DeadAfter (3) heartbeats (1 s) and some
		synctest.Wait()
		// A silent sync link demotes neither end (both would notice it,
		// and the first to would be preempted by the other).
		if diff := cmp.Diff(map[string]int{}, dem.get()); diff != "" {
			t.Errorf("every peer silent (-want +got):\n%s", diff)
		}
		network.Heal()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff(map[string]int{}, dem.get()); diff != "" {
			t.Errorf("after the heal (-want +got):\n%s", diff)
		}
	})
}

// slowTable cancels the takeover's context after a number of inserts: the
// deadline passes in the middle of the commit. (A Table that sleeps would
// block the engine, whose lock it is called under, and synctest's clock.)
type slowTable struct {
	pfsync.MemTable
	mu     sync.Mutex
	left   int
	cancel context.CancelFunc
}

func (s *slowTable) Insert(r *record.Record) error {
	s.mu.Lock()
	if s.cancel != nil {
		if s.left--; s.left == 0 {
			s.cancel()
		}
	}
	s.mu.Unlock()
	return s.MemTable.Insert(r)
}

// takeoverPair starts an owner with n records and a backup that keeps
// them for the takeover (CommitOnTakeover) with table, and waits until the
// backup holds them.
func takeoverPair(t *testing.T, table pfsync.Table, n int) (owner, backup *pfsync.Engine) {
	t.Helper()
	network, err := pfsynctest.New(&pfsynctest.Config{MTU: 9000})
	if err != nil {
		t.Fatal(err)
	}
	owner = mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
	backup = mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true, Table: table, Commit: pfsync.CommitOnTakeover})
	for i := range n {
		if err := owner.Upsert(testRecord(owner.NewID(), uint16(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	synctest.Wait()
	return owner, backup
}

func TestPrepareTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tabB slowTable
		const n = 1000
		a, b := takeoverPair(t, &tabB, n)
		if got := tabB.Len(); got != 0 {
			t.Fatalf("external cache: the backup's table got %d records before the takeover", got)
		}
		if got := b.Stats().External; got != n {
			t.Fatalf("backup holds %d external records, want %d", got, n)
		}

		// The deadline passes after 300 records: partial, and an error.
		ctx, cancel := context.WithCancel(t.Context())
		tabB.mu.Lock()
		tabB.left, tabB.cancel = 300, cancel
		tabB.mu.Unlock()
		got, err := b.PrepareTakeover(ctx)
		cancel()
		tabB.mu.Lock()
		tabB.cancel = nil
		tabB.mu.Unlock()
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "incomplete") {
			t.Errorf("PrepareTakeover past its deadline: err = %v, want an incomplete error wrapping context.Canceled", err)
		}
		if got <= 0 || got >= n || tabB.Len() != got {
			t.Errorf("PrepareTakeover past its deadline committed %d (table %d), want a part of %d", got, tabB.Len(), n)
		}

		// Enough time: the rest, and the table equals the owner's view.
		rest, err := b.PrepareTakeover(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got+rest != n {
			t.Errorf("committed %d + %d records, want %d", got, rest, n)
		}
		if diff := cmp.Diff(a.Records(), tabB.Records(), recordOpts); diff != "" {
			t.Errorf("committed table differs from the owner's records (-owner +table):\n%s", diff)
		}
		if got := b.Stats().External; got != 0 {
			t.Errorf("%d records still external after the takeover", got)
		}
		if again, err := b.PrepareTakeover(t.Context()); again != 0 || err != nil {
			t.Errorf("second PrepareTakeover = %d, %v; want 0, nil", again, err)
		}

		// Committed records that change again wait for the next takeover,
		// and records deleted meanwhile leave the count.
		recs := a.Records()
		for _, r := range recs[:10] {
			r.Packets[0]++
			if err := a.Upsert(r); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range recs[5:15] {
			if err := a.Delete(r.ID); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := b.Stats().External; got != 5 {
			t.Errorf("%d records external after 10 committed ones changed and 10 (5 of them changed) were deleted, want 5", got)
		}
	})
}

// batchTable is a BatchTable over a MemTable that notes its batches,
// refuses the first record of its first batch and cancels a context after
// some batches.
type batchTable struct {
	pfsync.MemTable
	mu      sync.Mutex
	sizes   []int
	refused record.ID
	cancel  func()
	batches int // cancel after this many batches
}

func (t *batchTable) CommitBatch(ctx context.Context, recs []record.Record, errs []error) {
	t.mu.Lock()
	t.sizes = append(t.sizes, len(recs))
	if t.cancel != nil && len(t.sizes) == t.batches {
		t.cancel()
	}
	first := len(t.sizes) == 1
	t.mu.Unlock()
	for i := range recs {
		switch {
		case first && i == 0:
			t.refused = recs[i].ID
			errs[i] = errors.New("refused")
		case i >= len(recs)/2 && ctx.Err() != nil:
			errs[i] = ctx.Err() // stops halfway through the batch
		default:
			errs[i] = t.Insert(&recs[i])
		}
	}
}

// TestPrepareTakeoverBatches: a BatchTable gets the external cache in
// batches of at most 1024 records; a refused record stays external and is
// counted; a deadline stops the commit between or inside batches, and the
// records not written wait for the next call.
func TestPrepareTakeoverBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tab batchTable
		const n = 2500
		a, b := takeoverPair(t, &tab, n)
		recs := a.Records()

		// Cancelled during the second batch: the first batch is written
		// (but its refused record), half of the second.
		ctx, cancel := context.WithCancel(t.Context())
		tab.mu.Lock()
		tab.cancel, tab.batches = cancel, 2
		tab.mu.Unlock()
		got, err := b.PrepareTakeover(ctx)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("PrepareTakeover cancelled: err = %v, want context.Canceled", err)
		}
		if want := 1024 - 1 + 512; got != want || tab.Len() != want {
			t.Errorf("cancelled during the second batch: %d committed (table %d), want %d", got, tab.Len(), want)
		}
		if s := b.Stats(); s.TableErrors != 1 || s.External != n-got {
			t.Errorf("TableErrors %d External %d, want 1 and %d", s.TableErrors, s.External, n-got)
		}

		tab.mu.Lock()
		tab.cancel = nil
		refused := tab.refused
		tab.mu.Unlock()
		if _, ok := tab.Get(refused); ok {
			t.Errorf("the refused record %v is in the table", refused)
		}
		rest, err := b.PrepareTakeover(t.Context())
		if err != nil || got+rest != n {
			t.Fatalf("second PrepareTakeover = %d, %v; want %d, nil", rest, err, n-got)
		}
		for i, size := range tab.sizes {
			if size > 1024 || size == 0 {
				t.Errorf("batch %d of %d records, want 1-1024", i, size)
			}
		}
		if len(tab.sizes) != 2+1 {
			t.Errorf("%d batches (%v), want 2 (cancelled) + 1 for the %d records left", len(tab.sizes), tab.sizes, n-got)
		}
		if diff := cmp.Diff(recs, tab.Records(), recordOpts); diff != "" {
			t.Errorf("committed table differs from the owner's records (-owner +table):\n%s", diff)
		}
		if s := b.Stats(); s.External != 0 {
			t.Errorf("%d records still external", s.External)
		}
	})
}

// countingTable is a BatchTable that counts single and batched writes.
type countingTable struct {
	pfsync.MemTable
	mu               sync.Mutex
	inserts, batches int
	records          int
}

func (t *countingTable) Insert(r *record.Record) error {
	t.mu.Lock()
	t.inserts++
	t.mu.Unlock()
	return t.MemTable.Insert(r)
}

func (t *countingTable) Update(r *record.Record) error { return t.Insert(r) }

func (t *countingTable) CommitBatch(ctx context.Context, recs []record.Record, errs []error) {
	t.mu.Lock()
	t.batches++
	t.records += len(recs)
	t.mu.Unlock()
	for i := range recs {
		errs[i] = t.MemTable.Insert(&recs[i])
	}
}

// TestCommitDirectBatches: with CommitDirect, a BatchTable receives each
// frame's remote changes in one call, never one Insert per record.
func TestCommitDirectBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		const n = 2000
		for i := range n {
			if err := a.Upsert(testRecord(a.NewID(), uint16(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Second)
		var tab countingTable
		mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true, Table: &tab}) // bulk
		time.Sleep(10 * time.Second)
		recs := a.Records()
		for _, r := range recs[:100] { // incremental updates
			r.Packets[0]++
			if err := a.Upsert(r); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff(a.Records(), tab.Records(), recordOpts); diff != "" {
			t.Fatalf("table differs from the owner's records (-owner +table):\n%s", diff)
		}
		tab.mu.Lock()
		defer tab.mu.Unlock()
		if tab.inserts != 0 {
			t.Errorf("%d single Inserts, want every write in a batch", tab.inserts)
		}
		if tab.records != n+100 || tab.batches == 0 || tab.batches > tab.records/10 {
			t.Errorf("%d records in %d batches, want %d records in frames of many", tab.records, tab.batches, n+100)
		}
		t.Logf("%d records in %d batches", tab.records, tab.batches)
	})
}

// fullTable refuses every write, like a kernel table at nf_conntrack_max.
type fullTable struct{ pfsync.MemTable }

func (*fullTable) Insert(*record.Record) error { return errors.New("table full") }
func (*fullTable) Update(*record.Record) error { return errors.New("table full") }

// lineCounter is a slog.Handler that keeps the records it is given.
type lineCounter struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (*lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineCounter) WithGroup(string) slog.Handler      { return h }

// matching returns the messages containing s, with their "suppressed"
// attribute (-1 when absent).
func (h *lineCounter) matching(s string) []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int64
	for _, r := range h.recs {
		if !strings.Contains(r.Message, s) {
			continue
		}
		n := int64(-1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				n = int64(a.Value.Uint64())
			}
			return true
		})
		out = append(out, n)
	}
	return out
}

// TestTableRefusalsLoggedOnce: a table that refuses every record (a full
// kernel table) costs one log line per interval, not one per record; every
// refusal is counted, and the next line says how many were held back.
func TestTableRefusalsLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(&pfsynctest.Config{MTU: 9000})
		if err != nil {
			t.Fatal(err)
		}
		h := &lineCounter{}
		owner := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		backup := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true,
			Table: &fullTable{}, Commit: pfsync.CommitOnTakeover, Logger: slog.New(h)})
		const n = 300
		for i := range n {
			if err := owner.Upsert(testRecord(owner.NewID(), uint16(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got, err := backup.PrepareTakeover(t.Context()); got != 0 || err != nil {
			t.Fatalf("PrepareTakeover into a full table = %d, %v; want 0, nil", got, err)
		}
		if s := backup.Stats(); s.TableErrors != n {
			t.Errorf("TableErrors %d, want %d", s.TableErrors, n)
		}
		if lines := h.matching("table refused"); len(lines) != 1 || lines[0] != 0 {
			t.Fatalf("%d refused records logged in %d lines (suppressed %v...), want one line (suppressed 0)", n, len(lines), lines[:min(len(lines), 3)])
		}
		time.Sleep(10 * time.Second)
		backup.PrepareTakeover(t.Context())
		if lines := h.matching("table refused"); len(lines) != 2 || lines[1] != n-1 {
			t.Errorf("after the interval: lines %v, want a second one with suppressed %d", lines, n-1)
		}
	})
}

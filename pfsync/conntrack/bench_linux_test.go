package conntrack

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	ct "github.com/ti-mo/conntrack"
)

func BenchmarkFlowToRecord(b *testing.B) {
	f := convCases()[0].flow // TCP, NAT, mark, labels, counters
	b.ReportAllocs()
	for b.Loop() {
		if _, err := flowToRecord(&f, testID, 1, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordToFlow(b *testing.B) {
	r := convCases()[0].rec
	b.ReportAllocs()
	for b.Loop() {
		if _, err := recordToFlow(&r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildMessage(b *testing.B) {
	r := convCases()[0].rec
	f, err := recordToFlow(&r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildMessage(&f, true); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRecords returns n distinct established TCP records with source NAT.
func benchRecords(n int) []record.Record {
	recs := make([]record.Record, n)
	base := convCases()[0].rec
	base.Ext = base.Ext[:1] // mark only: labels need a rule
	base.Key.Zone = 0
	for i := range recs {
		r := base
		r.ID.Num = uint64(i + 1)
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r.Key.Orig.Src = netip.AddrPortFrom(a, 40000)
		r.Key.Reply.Dst = netip.AddrPortFrom(r.Key.Reply.Dst.Addr(), uint16(1024+i%60000)) // NAT ports must not clash
		if i >= 60000 {
			r.Key.Reply.Dst = netip.AddrPortFrom(a, 40000) // beyond the port range: no NAT
		}
		recs[i] = r
	}
	return recs
}

func benchNS(b *testing.B) int {
	tp := netns.New(b, "gck")
	n := tp.Node("a")
	f, err := os.Open(n.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// BenchmarkInject measures Insert into a namespace's kernel table, one
// netlink round trip per record.
func BenchmarkInject(b *testing.B) {
	fd := benchNS(b)
	be, err := New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	recs := benchRecords(b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range recs {
		if err := be.Insert(&recs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkCommit measures a takeover commit of 10000 records into an
// empty table (flushed between rounds).
func BenchmarkCommit(b *testing.B) {
	const n = 10000
	recs := benchRecords(n)
	fd := benchNS(b)
	be, err := New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	c, err := ct.Dial(netlinkConfig(fd))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var total time.Duration
	for b.Loop() {
		res, err := be.Commit(context.Background(), recs)
		if err != nil || res.Created != n {
			b.Fatalf("commit %+v: %v", res, err)
		}
		total += res.Duration
		b.StopTimer()
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for i := range recs {
			if err := be.Delete(recs[i].ID); err != nil { // forget them
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "entries/s")
}

// BenchmarkObserve measures the watcher's handling of one UPDATE event of a
// known flow (conversion, comparison, new version).
func BenchmarkObserve(b *testing.B) {
	tr := newTracker(&Filter{AssuredOnly: true}, time.Minute)
	var ids counter
	f := convCases()[0].flow
	if _, ok, err := tr.observe(&f, testNow, ids.next); !ok || err != nil {
		b.Fatal(err)
	}
	states := []uint8{tcpFinWait, tcpEstablished}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.ProtoInfo.TCP.State = states[i%2]
		i++
		if _, ok, err := tr.observe(&f, testNow, ids.next); !ok || err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertCurrent measures Insert of a record the kernel holds in
// that state already (the engine's one-by-one takeover commit after a
// batched Commit): no netlink round trip.
func BenchmarkInsertCurrent(b *testing.B) {
	const n = 10000
	recs := benchRecords(n)
	be, err := New(Config{NetNS: benchNS(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	if res, err := be.Commit(context.Background(), recs); err != nil || res.Created != n {
		b.Fatalf("commit %+v: %v", res, err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := be.Insert(&recs[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if s := be.Stats(); s.Unchanged != uint64(i) {
		b.Fatalf("%d of %d inserts were not recognised as current", s.Unchanged, i)
	}
}

// tableOnly hides the backend's CommitBatch: the engine then commits one
// Insert per record, as before pfsync.BatchTable.
type tableOnly struct{ pfsync.Table }

// takeoverPair makes a backend in a benchmark namespace and starts two
// engines on an in-memory network: an owner and a backup with
// CommitOnTakeover whose Table is table(be). The caller closes all three.
func takeoverPair(b *testing.B, table func(*Backend) pfsync.Table) (be *Backend, owner, backup *pfsync.Engine) {
	b.Helper()
	be, err := New(Config{NetNS: benchNS(b)})
	if err != nil {
		b.Fatal(err)
	}
	network, err := pfsynctest.New(&pfsynctest.Config{MTU: 9000})
	if err != nil {
		b.Fatal(err)
	}
	owner, err = pfsync.New(pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	backup, err = pfsync.New(pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true,
		Table: table(be), Commit: pfsync.CommitOnTakeover})
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range []*pfsync.Engine{owner, backup} {
		if err := e.Start(); err != nil {
			b.Fatal(err)
		}
	}
	return be, owner, backup
}

// BenchmarkTakeover measures PrepareTakeover of 10,000 records an engine
// with CommitOnTakeover received from a peer, into a namespace's kernel
// table: through CommitBatch (batched netlink writes) and one Insert per
// record.
func BenchmarkTakeover(b *testing.B) {
	const n = 10000
	for _, tc := range []struct {
		name    string
		table   func(*Backend) pfsync.Table
		callers int // PrepareTakeover calls at once (fwpair: one per CARP group)
	}{
		{"batch", func(be *Backend) pfsync.Table { return be }, 1},
		{"batch-two-groups", func(be *Backend) pfsync.Table { return be }, 2},
		{"one-by-one", func(be *Backend) pfsync.Table { return tableOnly{be} }, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				be, owner, backup := takeoverPair(b, tc.table)
				replicate(b, owner, backup, n, 30*time.Second)
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				var mu sync.Mutex
				got, errs := 0, []error(nil)
				for range tc.callers {
					wg.Go(func() {
						k, err := backup.PrepareTakeover(context.Background())
						mu.Lock()
						got, errs = got+k, append(errs, err)
						mu.Unlock()
					})
				}
				wg.Wait()
				total += time.Since(start)
				b.StopTimer()
				if err := errors.Join(errs...); err != nil || got != n {
					b.Fatalf("PrepareTakeover = %d, %v; want %d", got, err, n)
				}
				owner.Close()
				backup.Close()
				be.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
		})
	}
}

// BenchmarkGuards measures the checks a peer's record passes before it is
// written (the Filter, with two ignored prefixes and a protocol list, and
// the timeout cap): the part of Insert they add.
func BenchmarkGuards(b *testing.B) {
	recs := benchRecords(1024)
	f := Filter{
		Ignore:    []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("10.255.0.0/30")},
		Protocols: []uint8{record.ProtoTCP, record.ProtoUDP},
	}
	tmo := defaultTimeouts()
	flows := make([]ct.Flow, len(recs))
	for i := range recs {
		var err error
		if flows[i], err = recordToFlow(&recs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i, n := 0, 0
	for b.Loop() {
		if f.passRecord(&recs[i%len(recs)]) && tmo.limit(&flows[i%len(recs)]) > 0 {
			n++
		}
		i++
	}
	if n != i {
		b.Fatalf("%d of %d records passed", n, i)
	}
}

// BenchmarkLiberalizeOwn measures what the watcher adds to the event of a
// local TCP flow that starts carrying data: one netlink write setting
// BE_LIBERAL (liberalizeOwn with one flow, as handle calls it).
func BenchmarkLiberalizeOwn(b *testing.B) {
	fd := benchNS(b)
	be, err := New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	const n = 4096
	recs := benchRecords(n)
	keys := make([]flowKey, n)
	for i := range recs {
		if err := be.Insert(&recs[i]); err != nil {
			b.Fatal(err)
		}
		keys[i] = keyOf(&recs[i].Key)
	}
	i := 0
	for b.Loop() {
		be.liberalizeOwn(keys[i%n : i%n+1])
		i++
	}
	if s := be.Stats(); s.Errors != 0 || s.Liberalized == 0 {
		b.Fatalf("stats %+v", s)
	}
}

// BenchmarkLiberalizeOwnBatch is BenchmarkLiberalizeOwn with 64 flows per
// write, as the watcher collects them (ownLiberalDelay): the time reported
// is per write of 64, cpu_ns/flow per flow.
func BenchmarkLiberalizeOwnBatch(b *testing.B) {
	fd := benchNS(b)
	be, err := New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	const n, batch = 4096, 64
	recs := benchRecords(n)
	keys := make([]flowKey, n)
	for i := range recs {
		if err := be.Insert(&recs[i]); err != nil {
			b.Fatal(err)
		}
		keys[i] = keyOf(&recs[i].Key)
	}
	i, flows := 0, 0
	cpu0 := processCPU(b)
	for b.Loop() {
		be.liberalizeOwn(keys[i : i+batch])
		flows += batch
		if i += batch; i+batch > n {
			i = 0
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(flows), "cpu_ns/flow")
	if s := be.Stats(); s.Errors != 0 || s.Liberalized == 0 {
		b.Fatalf("stats %+v", s)
	}
}

// replicate upserts n benchmark records on owner and waits, up to limit,
// until backup holds them all in its external cache.
func replicate(b *testing.B, owner, backup *pfsync.Engine, n int, limit time.Duration) {
	b.Helper()
	recs := benchRecords(n)
	for i := range recs {
		recs[i].ID = owner.NewID()
		if err := owner.Upsert(recs[i]); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(limit); backup.Stats().External < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("backup holds %d of %d records", backup.Stats().External, n)
		}
	}
}

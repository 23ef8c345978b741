package conntrack

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

// BenchmarkTakeoverWatched measures what fwpair's takeover commit does with
// the external cache: PrepareTakeover of CONNTRACK_BENCH_RECORDS (default
// 100,000) records an engine with CommitOnTakeover received from a peer,
// called by two goroutines at once (fwpair's LAN and WAN groups take over
// together), into a namespace's kernel table whose backend watcher runs
// (Start: every create comes back as a NEW event the watcher reads and
// recognises as the echo of the injection). The figure is the time from
// the calls to their return.
func BenchmarkTakeoverWatched(b *testing.B) {
	n := 100000
	if s := os.Getenv("CONNTRACK_BENCH_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("CONNTRACK_BENCH_RECORDS=%q: want a positive integer", s)
		}
		n = v
	}
	for _, watch := range []bool{true, false} {
		name := "watched"
		if !watch {
			name = "unwatched"
		}
		b.Run(name, func(b *testing.B) { benchTakeoverLarge(b, n, watch) })
	}
}

func benchTakeoverLarge(b *testing.B, n int, watch bool) {
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		be, err := New(Config{NetNS: benchNS(b)})
		if err != nil {
			b.Fatal(err)
		}
		network, err := pfsynctest.New(&pfsynctest.Config{MTU: 9000})
		if err != nil {
			b.Fatal(err)
		}
		owner, err := pfsync.New(pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		if err != nil {
			b.Fatal(err)
		}
		backup, err := pfsync.New(pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true,
			Table: be, Commit: pfsync.CommitOnTakeover})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range []*pfsync.Engine{owner, backup} {
			if err := e.Start(); err != nil {
				b.Fatal(err)
			}
		}
		if watch {
			if err := be.Start(backup); err != nil {
				b.Fatal(err)
			}
		}
		recs := benchRecords(n)
		for i := range recs {
			recs[i].ID = owner.NewID()
			if err := owner.Upsert(recs[i]); err != nil {
				b.Fatal(err)
			}
		}
		for deadline := time.Now().Add(120 * time.Second); backup.Stats().External < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("backup holds %d of %d records", backup.Stats().External, n)
			}
		}
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		got, errs := 0, []error(nil)
		for range 2 {
			wg.Go(func() {
				k, err := backup.PrepareTakeover(context.Background())
				mu.Lock()
				got, errs = got+k, append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		took := time.Since(start)
		total += took
		b.StopTimer()
		if err := errors.Join(errs...); err != nil || got != n {
			b.Fatalf("PrepareTakeover = %d, %v; want %d", got, err, n)
		}
		// The echoes of the creates still arrive; wait for them, so the
		// next round starts clean and the count says the watcher kept up.
		st := be.Stats()
		b.Logf("%d records in %v; watcher: %d events, %d echoes, %d overruns, %d resyncs", n, took.Round(time.Millisecond),
			st.Events, st.Echoes, st.Overruns, st.Resyncs)
		owner.Close()
		backup.Close()
		be.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/commit")
}

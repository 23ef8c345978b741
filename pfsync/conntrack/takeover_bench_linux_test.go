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
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// BenchmarkTakeoverWatched measures what fwpair's takeover commit does with
// the external cache: PrepareTakeover of CONNTRACK_BENCH_RECORDS (default
// 100,000) records an engine with CommitOnTakeover received from a peer,
// called by two goroutines at once (fwpair's LAN and WAN groups take over
// together), into a namespace's kernel table whose backend watcher runs
// (Start: every create comes back as a NEW event the watcher reads and
// recognises as the echo of the injection). The figures are the time from
// the calls to their return and the CPU time the process used meanwhile.
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
	var total, totalCPU time.Duration
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
		start, cpu0 := time.Now(), processCPU(b)
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
		cpu := processCPU(b) - cpu0
		totalCPU += cpu
		b.StopTimer()
		if err := errors.Join(errs...); err != nil || got != n {
			b.Fatalf("PrepareTakeover = %d, %v; want %d", got, err, n)
		}
		// The echoes of the creates still arrive; wait for them, so the
		// next round starts clean and the count says the watcher kept up.
		st := be.Stats()
		b.Logf("%d records in %v, CPU %v; watcher: %d events, %d echoes, %d overruns, %d resyncs", n, took.Round(time.Millisecond), cpu.Round(time.Millisecond),
			st.Events, st.Echoes, st.Overruns, st.Resyncs)
		owner.Close()
		backup.Close()
		be.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/commit")
	b.ReportMetric(totalCPU.Seconds()/float64(b.N), "cpu_s/commit")
}

// processCPU returns the CPU time (user and system, every thread) the
// process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkObserveEcho measures the watcher's handling of the event that
// echoes the injection of a peer's record (decoded already): what every
// record of a takeover commit costs the watcher.
func BenchmarkObserveEcho(b *testing.B) {
	recs := benchRecords(1024)
	tr := newTracker(&Filter{}, time.Minute)
	flows := make([]ct.Flow, len(recs))
	for i := range recs {
		f, err := recordToFlow(&recs[i])
		if err != nil {
			b.Fatal(err)
		}
		canon, err := canonical(&f, recs[i].ID, recs[i].Version)
		if err != nil {
			b.Fatal(err)
		}
		reg, ok := tr.register(keyOf(&recs[i].Key), canon, testNow)
		if !ok {
			b.Fatal("not registered")
		}
		tr.written(reg)
		fi := f
		fi.Status = ct.Status(InjectStatus(uint32(f.Status)))
		tcp := *f.ProtoInfo.TCP
		of, rf := injectFlags(&tcp)
		tcp.OriginalFlags, tcp.ReplyFlags = of, rf
		fi.ProtoInfo.TCP = &tcp
		flows[i] = fi
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := tr.observe(&flows[i%len(flows)], testNow, nil); ok || err != nil {
			b.Fatalf("echo reported: %v", err)
		}
		i++
	}
	if s := tr.stats; s.Echoes != uint64(i) {
		b.Fatalf("%d echoes of %d events", s.Echoes, i)
	}
}

package conntrack

import (
	"context"
	"errors"
	"os"
	"path"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// BenchmarkTakeoverWatched measures what fwpair's takeover commit does with
// the external cache: PrepareTakeover of CONNTRACK_BENCH_RECORDS (default
// 100,000) records an engine with CommitOnTakeover received from a peer,
// called by two goroutines at once (fwpair's LAN and WAN groups take over
// together), into a namespace's kernel table. The sub-benchmarks: watched,
// the backend's watcher runs (Start), as in fwpair; unwatched, it does not;
// listener, it does not but another socket listens to the kernel's NEW
// events and drops them unread (conntrackd or conntrack -E would), so the
// kernel builds an event for every create. The figures are the time from
// the calls to their return and the CPU time the process used meanwhile;
// with the watcher, the log also says how long after the commit the
// watcher had caught up with the flows created during it (catchUpNew) and
// the CPU time used meanwhile. CONNTRACK_BENCH_CPUPROFILE=file writes a
// CPU profile of the commit alone (startBenchProfile).
func BenchmarkTakeoverWatched(b *testing.B) {
	n := 100000
	if s := os.Getenv("CONNTRACK_BENCH_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("CONNTRACK_BENCH_RECORDS=%q: want a positive integer", s)
		}
		n = v
	}
	for _, mode := range []string{"watched", "unwatched", "listener"} {
		b.Run(mode, func(b *testing.B) { benchTakeoverLarge(b, n, mode) })
	}
}

func benchTakeoverLarge(b *testing.B, n int, mode string) {
	watch := mode == "watched"
	var total, totalCPU time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		be, owner, backup := takeoverPair(b, func(be *Backend) pfsync.Table { return be })
		var caught <-chan struct{}
		if watch {
			caught = catchUpSignal(be)
			if err := be.Start(backup); err != nil {
				b.Fatal(err)
			}
		}
		var lis *netlink.Conn
		if mode == "listener" {
			var err error
			lis, err = dialNetfilter(be.cfg.NetNS)
			if err != nil {
				b.Fatal(err)
			}
			if err := lis.SetBPF([]bpf.RawInstruction{{Op: 0x06, K: 0}}); err != nil {
				b.Fatal(err)
			}
			if err := lis.JoinGroup(uint32(netfilter.GroupCTNew)); err != nil {
				b.Fatal(err)
			}
		}
		replicate(b, owner, backup, n, 120*time.Second)
		round++
		stopProfile := startBenchProfile(b, round)
		b.StartTimer()
		start := time.Now()
		usr0, sys0 := processUsage(b)
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
		usr1, sys1 := processUsage(b)
		usr, sys := usr1-usr0, sys1-sys0
		cpu := usr + sys
		totalCPU += cpu
		b.StopTimer()
		stopProfile()
		if err := errors.Join(errs...); err != nil || got != n {
			b.Fatalf("PrepareTakeover = %d, %v; want %d", got, err, n)
		}
		st := be.Stats()
		b.Logf("%d records in %v, CPU %v (user %v, system %v); watcher: %d events, %d echoes, %d overruns, %d resyncs", n, took.Round(time.Millisecond), cpu.Round(time.Millisecond),
			usr.Round(time.Millisecond), sys.Round(time.Millisecond),
			st.Events, st.Echoes, st.Overruns, st.Resyncs)
		if caught != nil {
			select {
			case <-caught:
			case <-time.After(30 * time.Second):
				b.Fatal("the watcher did not catch up within 30 s of the commit")
			}
			after := time.Since(start) - took
			u, s := processUsage(b)
			b.Logf("caught up %v after the commit, CPU %v meanwhile (user %v, system %v)", after.Round(time.Millisecond),
				(u + s - usr1 - sys1).Round(time.Millisecond), (u - usr1).Round(time.Millisecond), (s - sys1).Round(time.Millisecond))
		}
		if lis != nil {
			lis.Close()
		}
		owner.Close()
		backup.Close()
		be.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/commit")
	b.ReportMetric(totalCPU.Seconds()/float64(b.N), "cpu_s/commit")
}

// catchUpSignal returns a channel that receives when be's watcher has
// caught up with the flows created during a commit (catchUpNew); call it
// before Start.
func catchUpSignal(be *Backend) <-chan struct{} {
	c := make(chan struct{}, 1)
	be.onCatchUp = func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return c
}

// processCPU returns the CPU time (user and system, every thread) the
// process has used so far.
func processCPU(b *testing.B) time.Duration {
	usr, sys := processUsage(b)
	return usr + sys
}

// processUsage returns the user and the system CPU time (every thread)
// the process has used so far.
func processUsage(b *testing.B) (usr, sys time.Duration) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// startBenchProfile starts a CPU profile into the file named by
// CONNTRACK_BENCH_CPUPROFILE, if set, and returns the function that stops
// it: a profile of the measured window alone, where -test.cpuprofile would
// take in the set-up (replicating the records to the engine) too. The
// sub-benchmark's name and the round are appended to the file name.
func startBenchProfile(b *testing.B, round int) func() {
	name := os.Getenv("CONNTRACK_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	name += "." + path.Base(b.Name()) + "." + strconv.Itoa(round)
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
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

// BenchmarkWatcherEvents measures the watcher's handling of the kernel's
// NEW events: 5,000 established TCP flows are created (by a second
// backend's Commit, so they start liberal and need no write) while the
// watcher's Sink is stalled, so their events wait in the socket buffer;
// then the Sink is released and the time, CPU and allocations until it has
// all 5,000 are reported per event — reading, decoding, the tracker and
// the report, no kernel write.
func BenchmarkWatcherEvents(b *testing.B) {
	const n = 5000
	w, writer, sink, c := watcherBench(b)
	recs := benchRecords(n)
	var wall, cpu time.Duration
	var allocs, bytes uint64
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		for i := range recs {
			recs[i].ID.Num = uint64(round*n + i) // new identities: new flows to the writer
		}
		gate := make(chan struct{})
		sink.mu.Lock()
		sink.gate = gate
		sink.mu.Unlock()
		if res, err := writer.Commit(context.Background(), recs); err != nil || res.Created != n {
			b.Fatalf("commit %+v: %v", res, err)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start, cpu0 := time.Now(), processCPU(b)
		b.StartTimer()
		sink.mu.Lock()
		sink.gate = nil
		sink.mu.Unlock()
		close(gate)
		for sink.len() < n {
			<-sink.changed
		}
		b.StopTimer()
		wall += time.Since(start)
		cpu += processCPU(b) - cpu0
		runtime.ReadMemStats(&m1)
		allocs += m1.Mallocs - m0.Mallocs
		bytes += m1.TotalAlloc - m0.TotalAlloc
		if s := w.Stats(); s.Overruns != 0 {
			b.Fatalf("the event socket overran: %+v", s)
		}
		// Empty the table and let the watcher report the deletes.
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for i := range recs {
			if err := writer.Delete(recs[i].ID); err != nil { // forget them
				b.Fatal(err)
			}
		}
		for sink.len() > 0 {
			<-sink.changed
		}
		b.StartTimer()
	}
	events := float64(n * round)
	b.ReportMetric(float64(wall.Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu_ns/event")
	b.ReportMetric(float64(allocs)/events, "allocs/event")
	b.ReportMetric(float64(bytes)/events, "B/event")
}

// BenchmarkCommitUpdates measures a commit of 10,000 records the kernel
// holds already in an older state (a direct-mode backup receiving the
// changes of flows it has): updates only.
func BenchmarkCommitUpdates(b *testing.B) {
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
	var total time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range recs {
			recs[i].Version++
			recs[i].Expire = 3000 + uint32(recs[i].Version)
		}
		b.StartTimer()
		res, err := be.Commit(context.Background(), recs)
		if err != nil || res.Updated != n {
			b.Fatalf("commit %+v: %v", res, err)
		}
		total += res.Duration
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "updates/s")
}

// watcherBench starts, in a namespace of its own, a watcher reporting to a
// fake sink (resynced, so it starts from an empty table), a second backend
// to write with, and a plain ctnetlink connection; all are closed at the
// benchmark's end.
func watcherBench(b *testing.B) (w, writer *Backend, sink *fakeSink, c *ct.Conn) {
	b.Helper()
	fd := benchNS(b)
	w, err := New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	writer, err = New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { writer.Close() })
	sink = newFakeSink(0)
	if err := w.Start(sink); err != nil {
		b.Fatal(err)
	}
	if err := w.Resync(context.Background()); err != nil {
		b.Fatal(err)
	}
	c, err = ct.Dial(netlinkConfig(fd))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return w, writer, sink, c
}

package conntrack

import (
	"context"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"
)

// BenchmarkWatcherOwnStrict measures what the watcher spends on its own TCP
// flows turning strict while they carry data (as every forwarded flow is
// from its first packet): 2,000 established flows are created (liberal,
// reported), then made strict one after the other through ctnetlink, as
// fast as one socket can; the watcher handles each UPDATE event, writes
// BE_LIBERAL back and handles the echo of that write. Reported per flow:
// wall time and the CPU time of the whole process from the first strict
// update until a sentinel created after the echoes is reported (the
// updates themselves included, the same for any watcher).
func BenchmarkWatcherOwnStrict(b *testing.B) {
	const n = 2000
	w, writer, sink, c := watcherBench(b)
	recs := benchRecords(n + 2)
	strict := make([]ct.Flow, n)
	for i := range strict {
		strict[i] = ct.Flow{TupleOrig: tupleToFlow(recs[i].Key.Orig, recs[i].Key.Proto),
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: tcpEstablished,
				OriginalFlags: uint16(tcpFlagBeLiberal), ReplyFlags: uint16(tcpFlagBeLiberal)}}}
	}
	waitLen := func(want int) {
		for sink.len() != want {
			<-sink.changed
		}
	}
	var wall, cpu time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		for i := range recs {
			recs[i].ID.Num = uint64(round*(n+2) + i)
		}
		if res, err := writer.Commit(context.Background(), recs[:n]); err != nil || res.Created != n {
			b.Fatalf("commit %+v: %v", res, err)
		}
		waitLen(n)
		start, cpu0 := time.Now(), processCPU(b)
		b.StartTimer()
		for i := range strict {
			if err := c.Update(strict[i]); err != nil {
				b.Fatal(err)
			}
		}
		// The first sentinel's event follows the strict updates', the
		// second's the echoes of the writes they caused.
		for k := n; k < n+2; k++ {
			if err := writer.Insert(&recs[k]); err != nil {
				b.Fatal(err)
			}
			waitLen(k + 1)
		}
		b.StopTimer()
		wall += time.Since(start)
		cpu += processCPU(b) - cpu0
		if s := w.Stats(); s.Liberalized != uint64(round*n) || s.Overruns != 0 {
			b.Fatalf("stats %+v, want %d liberalized", s, round*n)
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for i := range recs {
			if err := writer.Delete(recs[i].ID); err != nil {
				b.Fatal(err)
			}
		}
		waitLen(0)
		b.StartTimer()
	}
	flows := float64(n * round)
	b.ReportMetric(float64(wall.Nanoseconds())/flows, "ns/flow")
	b.ReportMetric(float64(cpu.Nanoseconds())/flows, "cpu_ns/flow")
}

package pfsync_test

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
)

// countTable counts inserts and closes done when it reached want.
type countTable struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
}

func newCountTable(want int) *countTable {
	return &countTable{want: want, done: make(chan struct{})}
}

func (c *countTable) Insert(*record.Record) error {
	c.mu.Lock()
	c.n++
	if c.n == c.want {
		close(c.done)
	}
	c.mu.Unlock()
	return nil
}
func (c *countTable) Update(*record.Record) error { return nil }
func (c *countTable) Delete(record.ID) error      { return nil }

// benchRecord returns a typical established TCP flow.
func benchRecord(id record.ID, i int) record.Record {
	orig := record.Tuple{
		Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000)),
		Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 443),
	}
	return record.Record{
		ID:  id,
		Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: uint32(i) * 7919, SeqHi: uint32(i)*7919 + 64240, MaxWin: 64240, WScale: 7, Scaled: true},
			{Level: record.TCPEstablished, SeqLo: uint32(i) * 104729, SeqHi: uint32(i)*104729 + 65535, MaxWin: 65535, WScale: 7, Scaled: true},
		},
		Expire: 86400, Timeout: 3, Packets: [2]uint64{12, 10}, Bytes: [2]uint64{2400, 9000},
	}
}

func benchNetwork(b *testing.B) *pfsynctest.Network {
	n, err := pfsynctest.New(&pfsynctest.Config{MTU: 9000, QueueLen: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func benchEngine(b *testing.B, cfg pfsync.Config) *pfsync.Engine {
	cfg.Insecure = true
	if cfg.BulkTimeout == 0 {
		cfg.BulkTimeout = time.Minute
	}
	e, err := pfsync.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// BenchmarkReplicate measures records per second through two engines: a
// local Upsert on one until the record is in the other's Table.
func BenchmarkReplicate(b *testing.B) {
	network := benchNetwork(b)
	tab := newCountTable(b.N)
	a := benchEngine(b, pfsync.Config{Node: 1, Transport: network.Attach(1)})
	benchEngine(b, pfsync.Config{Node: 2, Transport: network.Attach(2), Table: tab})
	for a.Demotion() != 0 { // both up and synced
		runtime.Gosched()
	}
	recs := make([]record.Record, b.N)
	for i := range recs {
		recs[i] = benchRecord(a.NewID(), i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range recs {
		if err := a.Upsert(recs[i]); err != nil {
			b.Fatal(err)
		}
	}
	<-tab.done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkBulkSync measures the bulk sync of 1,000,000 records from one
// engine to a joining one over the in-memory network (MTU 9000).
func BenchmarkBulkSync(b *testing.B) {
	const n = 1_000_000
	network := benchNetwork(b)
	a := benchEngine(b, pfsync.Config{Node: 1, Transport: network.Attach(1), BulkRate: 10_000_000, BulkBurst: 100_000})
	for i := range n {
		if err := a.Upsert(benchRecord(a.NewID(), i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		tab := newCountTable(n)
		start := time.Now()
		e := benchEngine(b, pfsync.Config{Node: pfsync.NodeID(2 + i), Transport: network.Attach(pfsync.NodeID(2 + i)), Table: tab})
		<-tab.done
		if testing.Verbose() {
			s := e.Stats()
			s.Peers = nil
			b.Logf("receiver: %+v", s)
			s = a.Stats()
			s.Peers = nil
			b.Logf("sender: %+v", s)
			b.Logf("network: %+v", network.Stats())
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/bulk")
		b.ReportMetric(n/time.Since(start).Seconds(), "records/s")
	}
}

// BenchmarkMemoryPerRecord measures the heap an engine holds per record it
// replicates (its store: the record's wire encoding keyed by its ID).
func BenchmarkMemoryPerRecord(b *testing.B) {
	const n = 200_000
	for range b.N {
		network := benchNetwork(b)
		e := benchEngine(b, pfsync.Config{Node: 1, Transport: network.Attach(1)})
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := int64(ms.HeapAlloc)
		for i := range n {
			if err := e.Upsert(benchRecord(e.NewID(), i)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if e.Len() != n {
			b.Fatalf("engine holds %d records, want %d", e.Len(), n)
		}
		b.ReportMetric(float64(int64(ms.HeapAlloc)-before)/n, "B/record")
		e.Close()
	}
}

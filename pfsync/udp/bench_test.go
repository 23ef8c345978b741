package udp

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/seal"
)

const (
	benchFrame  = 1400 // bytes on the wire per frame
	benchRecord = 40   // assumed size of one compressed state update
	benchWindow = 32   // frames in flight: well inside the default socket buffer, so none is lost
)

// BenchmarkUDPSealedThroughput sends 1400-byte frames over loopback UDP from
// one goroutine to another and, in "sealed", seals each before Send and opens
// each after Receive; "clear" is the same without the seal. records/s
// assumes 40-byte updates: (1400-45)/40 = 33 per sealed frame, 35 per clear
// frame. Run with -cpu 1 for the one-core figure.
func BenchmarkUDPSealedThroughput(b *testing.B) {
	for _, sealed := range []bool{true, false} {
		name := "clear"
		if sealed {
			name = "sealed"
		}
		b.Run(name, func(b *testing.B) { benchThroughput(b, sealed) })
	}
}

func benchThroughput(b *testing.B, sealed bool) {
	trs := cluster(b, netip.MustParseAddr("127.0.0.1"), 2)
	a, r := trs[0], trs[1]
	defer a.Close()
	var sa, sr *seal.Sealer
	overhead := 0
	if sealed {
		psk, err := seal.GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		keys := []seal.Key{{ID: 1, Secret: psk}}
		if sa, err = seal.New(seal.Config{Node: 1, Boot: 1, Keys: keys, SendKeyID: 1}); err != nil {
			b.Fatal(err)
		}
		if sr, err = seal.New(seal.Config{Node: 2, Boot: 1, Keys: keys, SendKeyID: 1}); err != nil {
			b.Fatal(err)
		}
		overhead = sa.Overhead()
	}
	plain := make([]byte, benchFrame-overhead)
	records := len(plain) / benchRecord

	credit := make(chan struct{}, benchWindow)
	for range benchWindow {
		credit <- struct{}{}
	}
	errc := make(chan error, 1)
	n := b.N
	b.SetBytes(benchFrame)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		var out []byte
		for range n {
			d, err := r.Receive()
			if err != nil {
				errc <- err
				return
			}
			if sealed {
				if _, out, err = sr.Open(out[:0], d.Payload); err != nil {
					errc <- err
					return
				}
			}
			credit <- struct{}{}
		}
		errc <- nil
	}()
	buf := make([]byte, 0, benchFrame)
	timer := time.NewTimer(time.Hour)
	for range n {
		select {
		case <-credit:
		default:
			timer.Reset(5 * time.Second)
			select {
			case <-credit:
			case <-timer.C:
				b.Fatal("a frame was lost (no credit back within 5s)")
			}
		}
		frame := plain
		if sealed {
			var err error
			if buf, err = sa.Seal(buf[:0], plain); err != nil {
				b.Fatal(err)
			}
			frame = buf
		}
		if err := a.Send(pfsync.Broadcast, frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	fps := float64(n) / elapsed.Seconds()
	b.ReportMetric(fps, "frames/s")
	b.ReportMetric(fps*float64(records), "records/s")
}

// BenchmarkUpsertSync measures how long a dataplane that defers a new
// flow's first packet (pfsync.Engine.UpsertSync) holds it: two sealed
// engines over loopback UDP, one UpsertSync per iteration, until the peer
// has acknowledged the record. pfsync holds a deferred packet at most
// 20 ms.
func BenchmarkUpsertSync(b *testing.B) {
	trs := cluster(b, netip.MustParseAddr("127.0.0.1"), 2)
	psk, err := seal.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	var es [2]*pfsync.Engine
	for i, tr := range trs {
		node := pfsync.NodeID(i + 1)
		s, err := seal.New(seal.Config{Node: node, Boot: 1, Keys: []seal.Key{{ID: 1, Secret: psk}}, SendKeyID: 1})
		if err != nil {
			b.Fatal(err)
		}
		if es[i], err = pfsync.New(pfsync.Config{Node: node, Transport: tr, Sealer: s}); err != nil {
			b.Fatal(err)
		}
		if err := es[i].Start(); err != nil {
			b.Fatal(err)
		}
		defer es[i].Close()
	}
	for deadline := time.Now().Add(10 * time.Second); !es[0].Stats().BulkDone || !es[1].Stats().BulkDone; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the engines did not sync")
		}
	}
	var took []time.Duration
	for b.Loop() {
		rec := benchFlow(es[0].NewID(), len(took))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := es[0].UpsertSync(ctx, rec)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50_µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99_µs")
}

// benchFlow returns an established IPv4 TCP flow numbered i.
func benchFlow(id record.ID, i int) record.Record {
	orig := record.Tuple{
		Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(1024+i%60000)),
		Dst: netip.MustParseAddrPort("192.0.2.1:443"),
	}
	r := record.Record{ID: id, Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()}, Expire: 3600}
	r.Peers[0] = record.Peer{Level: record.TCPEstablished, SeqLo: 1, SeqHi: 65536, MaxWin: 65535}
	r.Peers[1] = r.Peers[0]
	return r
}

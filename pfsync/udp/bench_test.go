package udp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync"
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

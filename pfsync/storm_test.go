package pfsync_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestStormFramesFull sends a storm of new records, all within one flush
// interval, and checks that they leave in full frames: the change that
// fills a frame's worth does not fit that frame, and it must wait for the
// next one rather than leave alone in a frame of its own (which doubled
// the frames of a storm).
func TestStormFramesFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		ep := network.Attach(2)
		const n = 2400
		for i := range n {
			if err := a.Upsert(benchRecord(a.NewID(), i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // the flush delay: what is left leaves
		var perFrame []int
		for {
			d, ok := tryReceive(ep)
			if !ok {
				break
			}
			var rd wire.Reader
			if err := rd.Reset(d.Payload); err != nil {
				t.Fatal(err)
			}
			k := 0
			for rd.Next() {
				if rd.Kind() == wire.KindInsert {
					k++
				}
			}
			if k > 0 {
				perFrame = append(perFrame, k)
			}
		}
		total, full := 0, 0
		for _, k := range perFrame {
			total += k
			full = max(full, k)
		}
		if total != n {
			t.Fatalf("%d records in %d frames, want %d", total, len(perFrame), n)
		}
		if want := (n + full - 1) / full; len(perFrame) > want {
			t.Errorf("%d records left in %d frames, want %d (at most %d a frame): %v", n, len(perFrame), want, full, perFrame)
		}
	})
}

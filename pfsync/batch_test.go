package pfsync_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

// batchTransport is a Transport with SendBatch: it records each call's
// size and sends the frames one by one, or refuses them all while fail
// is set. It counts the frames that came through Send instead.
type batchTransport struct {
	pfsync.Transport
	mu      sync.Mutex
	batches []int
	sends   int
	refused int
	fail    bool
}

var _ pfsync.BatchSender = (*batchTransport)(nil)

func (b *batchTransport) Send(to pfsync.NodeID, frame []byte) error {
	b.mu.Lock()
	b.sends++
	b.mu.Unlock()
	return b.Transport.Send(to, frame)
}

func (b *batchTransport) SendBatch(frames []pfsync.Outgoing) {
	b.mu.Lock()
	b.batches = append(b.batches, len(frames))
	fail := b.fail
	if fail {
		b.refused += len(frames)
	}
	b.mu.Unlock()
	for i := range frames {
		if fail {
			frames[i].Err = errors.New("refused")
			continue
		}
		frames[i].Err = b.Transport.Send(frames[i].To, frames[i].Frame)
	}
}

// counts returns the frames handed over in batches and through Send, and
// the largest batch.
func (b *batchTransport) counts() (batched, sent, largest int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.batches {
		batched += n
	}
	if len(b.batches) > 0 {
		largest = slices.Max(b.batches)
	}
	return batched, b.sends, largest
}

// TestBatchSender runs an engine whose Transport is a BatchSender through
// a bulk sync to a joining node and a storm of new records: the records
// arrive, frames leave in batches of several, every frame is counted once
// in Stats, and frames the transport refuses count as send errors.
func TestBatchSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		bt := &batchTransport{Transport: network.Attach(1)}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: bt, Insecure: true})
		for i := range 3000 {
			if err := a.Upsert(benchRecord(a.NewID(), i)); err != nil {
				t.Fatal(err)
			}
		}
		var tabB pfsync.MemTable
		mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true, Table: &tabB})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := tabB.Len(); n != 3000 {
			t.Fatalf("after the bulk sync node 2 holds %d records, want 3000; stats %+v", n, a.Stats())
		}
		for i := range 3000 {
			if err := a.Upsert(benchRecord(a.NewID(), 3000+i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := tabB.Len(); n != 6000 {
			t.Fatalf("after the storm node 2 holds %d records, want 6000", n)
		}
		batched, sent, largest := bt.counts()
		s := a.Stats()
		if uint64(batched+sent) != s.FramesOut || s.SendErrors != 0 {
			t.Errorf("%d frames batched + %d sent, Stats %d out and %d errors; want the sum out and no error", batched, sent, s.FramesOut, s.SendErrors)
		}
		if largest < 2 || batched <= sent {
			t.Errorf("largest batch %d, %d frames batched, %d sent one by one; want most frames in batches of several", largest, batched, sent)
		}

		bt.mu.Lock()
		bt.fail = true
		bt.mu.Unlock()
		for i := range 100 {
			if err := a.Upsert(benchRecord(a.NewID(), 6000+i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		bt.mu.Lock()
		refused := bt.refused
		bt.mu.Unlock()
		s2 := a.Stats()
		if refused == 0 || s2.SendErrors != uint64(refused) || s2.FramesOut != s.FramesOut {
			t.Errorf("%d frames refused: SendErrors %d, FramesOut %d → %d; want the refused counted as errors, none out", refused, s2.SendErrors, s.FramesOut, s2.FramesOut)
		}
	})
}

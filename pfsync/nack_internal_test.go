package pfsync

import (
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// nackEngine returns an engine (not started) that has sent frames up to
// top and holds the last held of them for resending, and a confirmed peer
// 2 whose acks it reads.
func nackEngine(tb testing.TB, top uint64, held int) (*Engine, *peer) {
	tb.Helper()
	e, err := New(Config{Node: 1, Transport: newNullTransport(), Insecure: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	p := &peer{id: 2, epoch: 9, up: true, confirmed: true, lastHeard: time.Now()}
	e.peers[2] = p
	e.nextSeq = top + 1
	for s := top - uint64(held) + 1; s <= top; s++ {
		e.ring.push(sentFrame{seq: s})
	}
	return e, p
}

// TestHugeNackBoundedByHeldFrames: an Ack may name ranges up to 2^62
// frames long (the decoder only checks that they ascend); handling it must
// cost work in proportion to the frames held for resending, not to the
// range, nor to how many frames this node ever sent. One such 187-byte
// frame held the engine's lock for over a second.
func TestHugeNackBoundedByHeldFrames(t *testing.T) {
	for _, tt := range []struct {
		name string
		top  uint64 // highest sequence number sent
		held int
		nack []wire.SeqRange
	}{
		{"one range over everything", 1 << 20, 3, []wire.SeqRange{{First: 1, Last: 1 << 62}}},
		{"ranges below and above the held frames", 1 << 20, 3, []wire.SeqRange{
			{First: 1, Last: 1<<20 - 10}, {First: 1<<20 - 1, Last: 1 << 20}, {First: 1<<20 + 1, Last: 1 << 62}}},
		{"a long life", 1<<62 - 5, 4, []wire.SeqRange{{First: 1, Last: 1<<62 + 1}, {First: 1<<62 + 2, Last: 1<<64 - 1}}},
		{"nothing held", 1 << 20, 0, []wire.SeqRange{{First: 1, Last: 1 << 62}}},
	} {
		e, p := nackEngine(t, tt.top, tt.held)
		e.mu.Lock()
		e.acked(p, &wire.Ack{Peer: 1, Epoch: e.epoch, Cum: 0, Nacks: tt.nack}, time.Now())
		steps, sent := e.nackSteps, e.stats.FramesOut
		e.mu.Unlock()
		if steps > uint64(tt.held) {
			// Fatal: the next case would take as long as its range.
			t.Fatalf("%s: the ack visited %d resend-queue slots for %d held frames", tt.name, steps, tt.held)
		}
		if want := uint64(min(tt.held, 2)); tt.name == "ranges below and above the held frames" && sent != want {
			t.Errorf("%s: %d frames resent, want %d (the held frames the ranges name)", tt.name, sent, want)
		} else if tt.name != "ranges below and above the held frames" && sent != uint64(tt.held) {
			t.Errorf("%s: %d frames resent, want every held frame (%d)", tt.name, sent, tt.held)
		}
	}
}

// BenchmarkHugeNack measures the input of one frame carrying an Ack whose
// nack range spans 2^62 frames, at a node that has sent 2^20 frames and
// holds 4 for resending.
func BenchmarkHugeNack(b *testing.B) {
	e, _ := nackEngine(b, 1<<20, 4)
	var bld wire.Builder
	if err := bld.Reset(nil, 1500, wire.Header{Sender: 2, Epoch: 9, Seq: 1}); err != nil {
		b.Fatal(err)
	}
	bld.SetFlags(wire.FlagUnsequenced)
	if err := bld.AddAck(&wire.Ack{Peer: 1, Epoch: e.epoch, Nacks: []wire.SeqRange{{First: 1, Last: 1 << 62}}}); err != nil {
		b.Fatal(err)
	}
	d := Datagram{From: 2, Payload: bld.Frame()}
	b.ReportAllocs()
	for b.Loop() {
		e.mu.Lock()
		e.input(d, time.Now())
		e.mu.Unlock()
	}
}

// TestResendQueueBoundsControlFrames: frames that carry only control
// elements (requests, which a peer's input makes us send) are held for
// resending like any other, and must count against ResendLimit: while a
// peer that is up acknowledges nothing they used to pile up without bound.
func TestResendQueueBoundsControlFrames(t *testing.T) {
	e, err := New(Config{Node: 1, Transport: newNullTransport(), Insecure: true, ResendLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.peers[2] = &peer{id: 2, epoch: 9, up: true, confirmed: true, lastHeard: now}
	for i := range 100 {
		e.ctlq = append(e.ctlq, ctl{kind: wire.KindRequest, id: record.ID{Creator: 2, Num: uint64(i + 1)}})
		e.flushLocked(now)
	}
	if n := e.ring.len(); n > 10 {
		t.Errorf("%d frames of requests held for a peer that acknowledges nothing, ResendLimit 10", n)
	}
	if e.stats.ResendDrops == 0 {
		t.Error("no drop counted")
	}
}

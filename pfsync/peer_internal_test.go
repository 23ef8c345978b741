package pfsync

import (
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestSkipGap: giving up a gap skips every frame missing up to the highest
// frame seen when the gap was noticed, in one go, and keeps a hole that
// appeared later, with its own timeout.
func TestSkipGap(t *testing.T) {
	var p peer
	now := time.Unix(1000, 0)
	for s := uint64(1); s <= 20; s++ {
		if s != 3 && s != 7 && s != 12 {
			p.accept(s)
		}
	}
	p.gapSince, p.gapHigh = now, p.highest // noticed with 20 the highest
	for s := uint64(22); s <= 25; s++ {    // 21 missing, noticed later
		p.accept(s)
	}
	later := now.Add(time.Second)
	p.skipGap(p.gapHigh, later)
	if p.next != 21 {
		t.Fatalf("after skipping up to 20: next = %d, want 21 (3, 7 and 12 given up at once, 21 kept)", p.next)
	}
	if !p.hasGap() || p.gapSince != later || p.gapHigh != 25 {
		t.Fatalf("the later hole: hasGap %v gapSince %v gapHigh %d, want true %v 25", p.hasGap(), p.gapSince, p.gapHigh, later)
	}
	p.skipGap(p.gapHigh, later.Add(time.Second))
	if p.next != 26 || p.hasGap() || !p.gapSince.IsZero() {
		t.Fatalf("after skipping up to 25: next %d hasGap %v gapSince %v, want 26 false zero", p.next, p.hasGap(), p.gapSince)
	}
}

// TestConfirmedStreamStartsAfterTheHello: a peer's stream counts from the
// frame after the Hello that confirmed it, not from the first frame to
// arrive: frames sent after the Hello and delivered out of order all count.
func TestConfirmedStreamStartsAfterTheHello(t *testing.T) {
	e, err := New(Config{Node: 1, Transport: discard{}, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	e.started = true
	now := time.Now()
	frame := func(h wire.Header, fill func(*wire.Builder) error) []byte {
		var b wire.Builder
		if err := b.Reset(nil, 1500, h); err != nil {
			t.Fatal(err)
		}
		if err := fill(&b); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), b.Frame()...)
	}
	hello := frame(wire.Header{Sender: 2, Epoch: 9, Seq: 5, Flags: wire.FlagUnsequenced}, func(b *wire.Builder) error {
		return b.AddHello(wire.Hello{Node: 2, Epoch: 9, Flags: wire.HelloReply, Echo: e.epoch})
	})
	recs := make([]record.Record, 2)
	frames := make([][]byte, 2)
	for i := range recs {
		recs[i] = record.Record{ID: record.ID{Creator: 2, Num: uint64(i + 1)}, Key: record.Key{Family: record.IPv4, Proto: record.ProtoUDP}}
		recs[i].Key.Orig.Src = mustAP("10.0.0.1:1")
		recs[i].Key.Orig.Dst = mustAP("10.0.0.2:2")
		recs[i].Key.Reply = recs[i].Key.Orig.Reverse()
		frames[i] = frame(wire.Header{Sender: 2, Epoch: 9, Seq: uint64(6 + i)}, func(b *wire.Builder) error { return b.AddInsert(&recs[i]) })
	}
	e.mu.Lock()
	e.input(Datagram{Payload: hello}, now)
	e.input(Datagram{Payload: frames[1]}, now) // seq 7 overtakes seq 6
	e.input(Datagram{Payload: frames[0]}, now)
	e.mu.Unlock()
	for _, r := range recs {
		if _, ok := e.Get(r.ID); !ok {
			t.Errorf("record %v of a frame after the confirming Hello was dropped", r.ID)
		}
	}
	if p := e.peers[2]; p == nil || !p.confirmed || p.next != 8 || p.hasGap() {
		t.Errorf("peer 2 after frames 6 and 7: %+v", p)
	}
}

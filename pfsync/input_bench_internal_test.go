package pfsync

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// BenchmarkFrameInput measures the input of one frame from a confirmed
// peer: its header, the peer lookup and stream bookkeeping, and its
// elements — 20 full records the engine already holds (decoded and
// merged, no change), and an ack of our stream.
func BenchmarkFrameInput(b *testing.B) {
	e, err := New(Config{Node: 1, Transport: newNullTransport(), Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	e.peers[2] = &peer{id: 2, epoch: 9, up: true, confirmed: true, lastHeard: time.Now(), synced: true}
	var bld wire.Builder
	if err := bld.Reset(nil, 1500, wire.Header{Sender: 2, Epoch: 9, Seq: 1}); err != nil {
		b.Fatal(err)
	}
	bld.SetFlags(wire.FlagUnsequenced)
	for i := range 20 {
		orig := record.Tuple{
			Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 40000),
			Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 443),
		}
		r := record.Record{
			ID:    record.ID{Creator: 2, Num: uint64(i + 1)},
			Key:   record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
			Peers: [2]record.Peer{{Level: record.TCPEstablished}, {Level: record.TCPEstablished}},
		}
		if err := bld.AddUpdate(&r); err != nil {
			b.Fatal(err)
		}
	}
	if err := bld.AddAck(&wire.Ack{Peer: 1, Epoch: e.epoch, Cum: 0}); err != nil {
		b.Fatal(err)
	}
	d := Datagram{From: 2, Payload: bld.Frame()}
	e.mu.Lock()
	e.input(d, time.Now()) // the records are new once
	e.mu.Unlock()
	b.ReportAllocs()
	for b.Loop() {
		e.mu.Lock()
		e.input(d, time.Now())
		e.mu.Unlock()
	}
}

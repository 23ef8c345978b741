package pfsync

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// FuzzInput feeds arbitrary frames to an engine's input path: whatever
// arrives, it must not panic, and its bookkeeping must stay consistent.
func FuzzInput(f *testing.F) {
	// Seeds: well-formed frames of every kind the engine handles.
	var b wire.Builder
	add := func(flags wire.Flags, fill func(*wire.Builder)) {
		if err := b.Reset(nil, 1500, wire.Header{Sender: 2, Epoch: 9, Seq: 1}); err != nil {
			f.Fatal(err)
		}
		b.SetFlags(flags)
		fill(&b)
		f.Add(append([]byte(nil), b.Frame()...))
	}
	id := record.ID{Creator: 2, Num: 77}
	rec := record.Record{ID: id, Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP}}
	rec.Key.Orig.Src = mustAP("10.0.0.1:1")
	rec.Key.Orig.Dst = mustAP("10.0.0.2:2")
	rec.Key.Reply = rec.Key.Orig.Reverse()
	add(0, func(b *wire.Builder) { b.AddInsert(&rec); b.AddDelete(wire.Delete{ID: id, Version: 3}) })
	add(0, func(b *wire.Builder) {
		b.AddBulkStart(wire.BulkStart{Generation: 5, Expected: 1})
		b.AddUpdate(&rec)
		b.AddBulkEnd(wire.BulkEnd{Generation: 5})
	})
	// The answer to the bulk request the engine sends when it first hears
	// node 2 (its epoch is pinned to 0 below, so the generation is known):
	// a whole bulk in one frame, its mark and its end.
	var dig record.Digest
	dig.Add(id, 0)
	add(0, func(b *wire.Builder) {
		b.AddBulkStart(wire.BulkStart{Generation: fuzzBulkGen, Expected: 1})
		b.AddUpdate(&rec)
		b.AddBulkMark(wire.BulkMark{Generation: fuzzBulkGen, Since: 1, First: 0, Last: wire.Buckets - 1, Digest: dig})
		b.AddBulkEnd(wire.BulkEnd{Generation: fuzzBulkGen, Digest: dig})
	})
	add(0, func(b *wire.Builder) {
		b.AddBulkStart(wire.BulkStart{Generation: fuzzBulkGen, Expected: 2})
		b.AddBulkMark(wire.BulkMark{Generation: fuzzBulkGen, Since: 1, First: 3, Last: 9, Digest: dig})
		b.AddUpdate(&rec)
	})
	add(0, func(b *wire.Builder) {
		b.AddRequest(wire.Request{ID: id})
		b.AddBulkRequest(wire.BulkRequest{Generation: 1})
		b.AddClear(wire.Clear{Creator: 2})
	})
	add(wire.FlagUnsequenced, func(b *wire.Builder) {
		b.AddHello(wire.Hello{Node: 2, Epoch: 9})
		b.AddHeartbeat(wire.Heartbeat{Interval: time.Second})
		b.AddAck(&wire.Ack{Peer: 1, Epoch: 1, Cum: 0, Nacks: []wire.SeqRange{{First: 1, Last: 2}}})
		b.AddDigest(&wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, Sums: make([]uint64, antiEntropyBuckets)})
	})
	// A whole-table digest asked for (answered) and one sent in answer.
	add(wire.FlagUnsequenced, func(b *wire.Builder) {
		b.AddDigest(&wire.Digest{Creator: 0, Buckets: wire.Buckets, Sums: make([]uint64, 100)})
		b.AddDigest(&wire.Digest{Creator: 0, Flags: wire.DigestReply, Buckets: wire.Buckets, First: 100, Sums: make([]uint64, 50)})
	})
	d := rec.Delta(record.FieldsAll)
	add(0, func(b *wire.Builder) { b.AddDelta(&d) })
	// Fields that drive loops: a nack range of 2^62 frames, a request for
	// a record of the engine's (node 1's) earlier life, a Clear of its
	// records, digest parts of one bucket and repeated.
	add(wire.FlagUnsequenced, func(b *wire.Builder) {
		b.AddAck(&wire.Ack{Peer: 1, Epoch: 0, Cum: 0, Nacks: []wire.SeqRange{{First: 1, Last: 1 << 62}}})
		b.AddDigest(&wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, First: 5, Sums: []uint64{1}})
		b.AddDigest(&wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, Sums: make([]uint64, antiEntropyBuckets)})
		b.AddDigest(&wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, Sums: make([]uint64, antiEntropyBuckets)})
	})
	add(0, func(b *wire.Builder) {
		b.AddRequest(wire.Request{ID: record.ID{Creator: 1, Num: 5}})
		b.AddClear(wire.Clear{Creator: 1})
	})
	f.Add([]byte{1, 0, 0, 0, 0, 2})

	f.Fuzz(func(t *testing.T, frame []byte) {
		var table MemTable
		e, err := New(Config{Node: 1, Transport: discard{}, Insecure: true, Table: &table})
		if err != nil {
			t.Fatal(err)
		}
		e.started = true // input without the goroutines
		e.epoch = 0      // bulk generations the seeds can name
		now := time.Now()
		e.mu.Lock()
		e.input(Datagram{Payload: frame}, now) // from a peer not confirmed yet
		e.mu.Unlock()
		confirm(t, e, 2, 9, now)
		e.mu.Lock()
		e.input(Datagram{Payload: frame}, now)
		e.input(Datagram{Payload: frame}, now) // duplicates too
		e.tick(now.Add(time.Second))
		e.mu.Unlock()
		if got, want := table.Len(), e.Len(); got != want {
			t.Errorf("table holds %d records, engine %d", got, want)
		}
		checkExternal(t, e)
	})
}

// confirm makes node (epoch) a confirmed peer of e: it feeds e the Hello
// that echoes e's epoch. A frame of another epoch fed to e before has
// made the peer restart, so the Hello brings it back to this epoch.
func confirm(t *testing.T, e *Engine, node NodeID, epoch uint64, now time.Time) {
	t.Helper()
	var b wire.Builder
	if err := b.Reset(nil, 1500, wire.Header{Sender: uint32(node), Epoch: epoch, Flags: wire.FlagUnsequenced}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddHello(wire.Hello{Node: uint32(node), Epoch: epoch, Flags: wire.HelloReply, Echo: e.epoch}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.input(Datagram{Payload: b.Frame()}, now)
	if p := e.peers[node]; p == nil || !p.confirmed || p.epoch != epoch {
		t.Fatalf("node %d epoch %d not confirmed by its Hello", node, epoch)
	}
}

// fuzzBulkGen is the generation of the first bulk request an engine of
// epoch 0 addresses to node 2 (bulkOut.nextGen).
const fuzzBulkGen = 2<<32 | 1

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// discard is a Transport that drops what is sent and never receives.
type discard struct{}

func (discard) MTU() int                   { return 1500 }
func (discard) Send(NodeID, []byte) error  { return nil }
func (discard) Receive() (Datagram, error) { return Datagram{}, net.ErrClosed }
func (discard) Close() error               { return nil }

package pfsync

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// digestEngine returns an engine (not started) holding n records of its
// own and of peer 2, with peer 2 confirmed, its stream received up to
// frame 4 and no bulk running: digests from it are comparable.
func digestEngine(t *testing.T, n int) (*Engine, *peer) {
	t.Helper()
	e, err := New(Config{Node: 1, Transport: newNullTransport(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for i := range n {
		for _, c := range []uint32{1, 2} {
			orig := record.Tuple{
				Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1024),
				Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(c)}), 53),
			}
			r := record.Record{ID: record.ID{Creator: c, Num: uint64(i + 1)}, Key: record.Key{Family: record.IPv4, Proto: record.ProtoUDP, Orig: orig, Reply: orig.Reverse()}}
			if err := e.Upsert(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := &peer{id: 2, epoch: 9, up: true, confirmed: true, lastHeard: time.Now(), next: 5, highest: 4, synced: true}
	e.peers[2] = p
	return e, p
}

// digestFrame is an unsequenced frame of peer 2 carrying digests.
func digestFrame(t *testing.T, digests ...wire.Digest) Datagram {
	t.Helper()
	var b wire.Builder
	if err := b.Reset(nil, wire.MaxFrameLen, wire.Header{Sender: 2, Epoch: 9, Seq: 4}); err != nil {
		t.Fatal(err)
	}
	b.SetFlags(wire.FlagUnsequenced)
	for i := range digests {
		if err := b.AddDigest(&digests[i]); err != nil {
			t.Fatal(err)
		}
	}
	return Datagram{From: 2, Payload: b.Frame()}
}

// bulkRequests counts the bulk requests queued.
func bulkRequests(e *Engine) int {
	n := 0
	for _, c := range e.ctlq {
		if c.kind == wire.KindBulkRequest {
			n++
		}
	}
	return n
}

// TestDigestPartsBounded: each digest part a peer sends costs a pass over
// the whole table, and a request for our whole-table digest costs that and
// a few frames. What the parts may name is bounded — no part smaller than
// a sender at the smallest MTU makes (but the last), no bucket twice in a
// round, one answer per heartbeat — and what is refused is counted.
func TestDigestPartsBounded(t *testing.T) {
	mismatch := func(n int) []uint64 {
		s := make([]uint64, n)
		for i := range s {
			s[i] = uint64(i) + 12345
		}
		return s
	}
	t.Run("whole-table requests", func(t *testing.T) {
		e, _ := digestEngine(t, 100)
		var ds []wire.Digest
		for range 25 {
			ds = append(ds, wire.Digest{Buckets: wire.Buckets, Sums: make([]uint64, wire.Buckets)})
		}
		d := digestFrame(t, ds...)
		e.mu.Lock()
		e.input(d, time.Now())
		out, refused := e.stats.FramesOut, e.stats.DigestsRefused
		e.mu.Unlock()
		if out > 2 || refused != 24 {
			t.Errorf("25 requests in one frame drew %d frames (want at most 2: one answer), %d refused (want 24)", out, refused)
		}
	})
	t.Run("tiny anti-entropy parts", func(t *testing.T) {
		e, _ := digestEngine(t, 100)
		var ds []wire.Digest
		for b := range antiEntropyBuckets {
			ds = append(ds, wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, First: uint16(b), Sums: mismatch(1)})
		}
		d := digestFrame(t, ds...)
		e.mu.Lock()
		e.input(d, time.Now())
		reqs, refused := bulkRequests(e), e.stats.DigestsRefused
		e.mu.Unlock()
		// Only the last part may be that small.
		if refused != antiEntropyBuckets-1 || reqs != 1 {
			t.Errorf("%d one-bucket parts: %d refused (want %d), %d repairs asked (want 1)", antiEntropyBuckets, refused, antiEntropyBuckets-1, reqs)
		}
	})
	t.Run("repeated anti-entropy parts", func(t *testing.T) {
		e, _ := digestEngine(t, 100)
		// The peer's digest agrees with us: nothing to repair, but each
		// copy would cost a pass over the table.
		same := make([]uint64, antiEntropyBuckets)
		for id, ent := range e.store {
			if id.Creator == 2 {
				same[record.Bucket(id, antiEntropyBuckets)] += record.Hash(id, ent.ver)
			}
		}
		var ds []wire.Digest
		for range 10 {
			ds = append(ds, wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, Sums: same})
		}
		changed := wire.Digest{Creator: 2, Buckets: antiEntropyBuckets, Sums: mismatch(antiEntropyBuckets)}
		now := time.Now()
		d, next := digestFrame(t, ds...), digestFrame(t, changed)
		e.mu.Lock()
		e.input(d, now)
		reqs, refused := bulkRequests(e), e.stats.DigestsRefused
		e.mu.Unlock()
		if refused != 9 || reqs != 0 {
			t.Errorf("10 copies of a matching digest: %d refused (want 9), %d repairs asked (want 0)", refused, reqs)
		}
		// The next round, a heartbeat later, is compared again.
		e.mu.Lock()
		e.input(next, now.Add(e.cfg.Heartbeat))
		reqs = bulkRequests(e)
		e.mu.Unlock()
		if reqs != 1 {
			t.Errorf("the next round's digest was not compared: %d repairs asked, want 1", reqs)
		}
	})
	t.Run("repeated resync parts", func(t *testing.T) {
		e, p := digestEngine(t, 100)
		var ds []wire.Digest
		for range 30 {
			ds = append(ds, wire.Digest{Flags: wire.DigestReply, Buckets: wire.Buckets, Sums: mismatch(minDigestSums)})
		}
		d := digestFrame(t, ds...)
		now := time.Now()
		e.mu.Lock()
		e.resync(p, now)
		e.input(d, now)
		pending, refused := !p.resyncAt.IsZero(), e.stats.DigestsRefused
		e.mu.Unlock()
		// Thirty copies of buckets 0-10 add up to more sums than there are
		// buckets, but they do not compare buckets 11-255.
		if !pending || refused != 29 {
			t.Errorf("30 copies of one part: resync pending %v (want true: most buckets never compared), %d refused (want 29)", pending, refused)
		}
	})
}

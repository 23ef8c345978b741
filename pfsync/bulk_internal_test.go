package pfsync

import (
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestBulkOutJobs: a retransmitted request changes nothing, a new one from
// the same peer restarts its transfer, transfers are served round robin,
// and the change set lives only while a transfer runs.
func TestBulkOutJobs(t *testing.T) {
	var o bulkOut
	if !o.add(bulkJob{peer: 2, gen: 1}) || !o.add(bulkJob{peer: 3, gen: 1}) {
		t.Fatal("new requests not queued")
	}
	if o.add(bulkJob{peer: 2, gen: 1}) {
		t.Error("a retransmitted request was queued again")
	}
	o.current().pos = 7
	if !o.add(bulkJob{peer: 2, gen: 2}) || len(o.jobs) != 2 || o.jobs[0].gen != 2 || o.jobs[0].pos != 0 {
		t.Errorf("a new request of peer 2 did not restart its transfer in place: %+v", o.jobs[0])
	}
	o.rotate()
	if o.current().peer != 3 {
		t.Errorf("after rotate: peer %d first, want 3", o.current().peer)
	}
	o.dirty = map[record.ID]struct{}{}
	o.changed(record.ID{Creator: 1, Num: 1})
	o.finished()
	if !o.running() || o.dirty == nil {
		t.Error("one transfer left: not running, or the change set was dropped")
	}
	o.finished()
	if o.running() || o.dirty != nil {
		t.Error("no transfer left: still running, or the change set kept")
	}
	o.changed(record.ID{Creator: 1, Num: 2}) // no transfer: nothing to note
}

// TestBulkGen: generations name their receiver in the high bits and never
// repeat within a life; a request for another node is not for us.
func TestBulkGen(t *testing.T) {
	var o bulkOut
	g1, g2 := o.nextGen(5, 1<<40|7), o.nextGen(5, 1<<40|7)
	if g1 == g2 || g1>>32 != 5 || g2>>32 != 5 {
		t.Errorf("generations %x %x", g1, g2)
	}
	if !bulkForUs(g1, 5) || bulkForUs(g1, 6) || !bulkForUs(uint64(uint32(g1)), 6) {
		t.Error("bulkForUs: want for 5, not for 6, and an unaddressed one for everyone")
	}
}

// TestSnapshotOrderedByBucket: a transfer's snapshot holds the records and
// tombstones of its creator and buckets, ordered by bucket, and reads a
// record changed since from the store.
func TestSnapshotOrderedByBucket(t *testing.T) {
	s := testRecords(time.Now())
	for i := range 200 {
		id := record.ID{Creator: uint32(1 + i%2), Num: uint64(i)}
		ent := entry{ver: 1}
		s.setData(&ent, []byte{1})
		s.store[id] = ent
	}
	s.addTomb(record.ID{Creator: 1, Num: 1000}, 3, time.Now())
	var o bulkOut
	j := bulkJob{creator: 1, buckets: wire.AllBuckets()}
	j.snapshot(&s, &o)
	if len(j.ids) != 101 {
		t.Fatalf("snapshot of creator 1: %d IDs, want 100 records and 1 tombstone", len(j.ids))
	}
	for i := 1; i < len(j.ids); i++ {
		if wire.BucketOf(j.ids[i-1]) > wire.BucketOf(j.ids[i]) {
			t.Fatalf("IDs %d and %d out of bucket order", i-1, i)
		}
	}
	id := j.ids[0]
	ent := s.store[id]
	ent.ver = 9
	s.store[id] = ent
	if got, _ := j.entry(&s, &o, 0); got.ver != 1 {
		t.Errorf("unchanged: entry from the snapshot has version %d, want 1", got.ver)
	}
	o.changed(id)
	if got, _ := j.entry(&s, &o, 0); got.ver != 9 {
		t.Errorf("changed: entry has version %d, want the store's 9", got.ver)
	}
}

// TestBulkRecvAttempt walks a receiving session: frames of another
// generation are not ours, marks settle once their frames arrived and only
// if their digest matches, and an attempt that settles nothing counts
// against the retries.
func TestBulkRecvAttempt(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := bulkRecv{session: wire.AllBuckets(), got: new([wire.Buckets]record.Digest)}
	b.attempt(42, t0.Add(time.Second))
	if b.state != bulkRequested || b.want != wire.AllBuckets() {
		t.Fatalf("attempt: state %d", b.state)
	}
	if ours, _ := b.start(wire.BulkStart{Generation: 41}, t0); ours {
		t.Error("a frame of another generation taken for ours")
	}
	if ours, first := b.start(wire.BulkStart{Generation: 42, Expected: 3}, t0.Add(2*time.Second)); !ours || !first || b.expected != 3 || !b.deadline.Equal(t0.Add(2*time.Second)) {
		t.Errorf("first frame: ours %v first %v expected %d", ours, first, b.expected)
	}
	id := record.ID{Creator: 2, Num: 1}
	b.add(id)
	k := uint16(wire.BucketOf(id))
	var d record.Digest
	d.Add(id, 0)
	good := wire.BulkMark{Generation: 42, First: 0, Last: k, Digest: d}
	bad := wire.BulkMark{Generation: 42, First: k + 1, Last: wire.Buckets - 1, Digest: d}
	if !b.mark(10, good) || !b.mark(11, bad) {
		t.Fatal("marks refused")
	}
	if f := b.settleArrived(10); f != 0 || len(b.marks) != 2 {
		t.Errorf("frames up to 9 arrived: %d failed, %d marks wait (want 0, 2)", f, len(b.marks))
	}
	if f := b.settleArrived(12); f != 1 || len(b.marks) != 0 {
		t.Errorf("frames up to 11 arrived: %d failed (want 1)", f)
	}
	if b.left().Len() != wire.Buckets-int(k)-1 || !b.progress {
		t.Errorf("%d buckets left, progress %v", b.left().Len(), b.progress)
	}
	b.ended(wire.BulkEnd{Generation: 42}, 12)
	if b.endArrived(12) || !b.endArrived(13) {
		t.Error("endArrived before and after the end's frame")
	}
	if b.failedAttempt(2) || b.attempts != 0 {
		t.Error("an attempt with progress counted against the retries")
	}
	b.attempt(43, t0)
	if b.failedAttempt(2) || !b.failedAttempt(2) {
		t.Error("want giving up after the second attempt in a row without progress")
	}
	for range wire.Buckets {
		b.state = bulkReceiving
		b.mark(1, wire.BulkMark{Generation: 43})
	}
	if b.mark(1, wire.BulkMark{Generation: 43}) {
		t.Error("more marks than buckets accepted")
	}
}

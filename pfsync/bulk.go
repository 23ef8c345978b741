package pfsync

import (
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// Bulk sync (pfsync §2.5, reference §7.8), verified range by range.
//
// The requester opens a session for a set of buckets (wire.Buckets of them,
// by record ID: every bucket when it joins, the mismatching ones for an
// anti-entropy repair) and sends a BulkRequest with a fresh generation,
// addressed to one peer (bulkGen), in its reliable stream. The peer
// snapshots the IDs it holds in those buckets, orders them by bucket and
// sends them, paced by a token bucket, as full UPDATE (or DELETE) elements
// in frames that each begin with a BulkStart naming the generation — so the
// requester recognises bulk frames even when they arrive out of order or
// are retransmitted. A frame that finishes buckets also carries a BulkMark:
// the range of buckets finished since the previous mark and the
// record.Digest of the IDs sent in them (version 0: a record that changed
// during the transfer is still "sent"). The last frame carries the BulkEnd
// with the digest of the whole attempt.
//
// Once the requester holds the peer's stream up to a mark's frame, it
// compares the mark with the digest of the bulk elements it received in
// those buckets: a match settles them for the session. At the BulkEnd, or
// when the transfer makes no progress for BulkTimeout, it asks again for
// the buckets not settled, and only those: a mismatch or an interruption
// costs the failed ranges, not the table. An attempt that settles nothing
// counts against BulkRetries; after that many in a row the session is
// given up and reported (Stats.BulkGaveUp, DemoteDegraded), never taken for
// success.
//
// Frames of the peer's stream that are lost for good (streamLost) may have
// carried changes to records of any bucket, settled or not: a running full
// session then unsettles every bucket and trusts only marks of ranges that
// began after the loss, so the transfer goes on and the next attempt
// fetches what came before.

type bulkState uint8

const (
	bulkIdle bulkState = iota
	bulkRequested
	bulkReceiving
	bulkComplete
)

// A bucket number fits a byte (bulkJob.snapshot relies on it).
const _ = uint8(wire.Buckets - 1)

// bulkRecv is the bulk sync session this node runs with one peer.
type bulkRecv struct {
	state    bulkState
	creator  uint32                 // 0: every record; else an anti-entropy repair of that creator's records
	session  wire.BucketSet         // the buckets the session must settle
	done     wire.BucketSet         // the buckets settled
	attempts int                    // attempts in a row that settled nothing
	lost     bool                   // frames of the peer's stream were lost for good during the session
	seen     map[record.ID]struct{} // repairs: the IDs the owner sent

	// The current attempt.
	gen      uint64
	want     wire.BucketSet // requested: session minus done when it was sent
	progress bool           // it settled at least one bucket
	deadline time.Time
	expected uint64
	got      *[wire.Buckets]record.Digest // bulk elements received, by bucket
	marks    []pendingMark
	haveEnd  bool
	endSeq   uint64
	end      record.Digest
}

// pendingMark is a BulkMark waiting for the frames before it.
type pendingMark struct {
	seq uint64
	m   wire.BulkMark
}

func (b *bulkRecv) add(id record.ID) {
	b.got[wire.BucketOf(id)].Add(id, 0)
	if b.seen != nil {
		b.seen[id] = struct{}{}
	}
}

// received is the digest of every bulk element of the current attempt.
func (b *bulkRecv) received() record.Digest {
	var d record.Digest
	if b.got != nil {
		for _, g := range b.got {
			d.Combine(g)
		}
	}
	return d
}

func (b *bulkRecv) active() bool { return b.state == bulkRequested || b.state == bulkReceiving }

// bulkJob is a bulk transfer this node sends.
type bulkJob struct {
	peer    NodeID
	gen     uint64
	creator uint32
	buckets wire.BucketSet
	started bool
	ids     []record.ID       // snapshot taken when the job starts, ordered by bucket
	ents    []entry           // ents[i]: ids[i]'s entry then (n == 0: a tombstone)
	compact uint64            // Engine.compactions then
	ends    [wire.Buckets]int // ends[k]: index in ids past bucket k's IDs
	pos     int
	bucket  int           // bucket of ids[pos] (wire.Buckets once every ID is sent)
	cur     record.Digest // IDs sent from the current bucket
	rng     record.Digest // IDs sent from the finished buckets no mark covered yet
	marked  int           // first bucket no mark covered yet
	since   uint64        // first frame that may carry IDs of the next mark
	dig     record.Digest // IDs of every mark sent
}

// requestBulk opens a full bulk sync session with p: every record it
// holds.
func (e *Engine) requestBulk(p *peer, now time.Time) {
	e.startBulk(p, 0, wire.AllBuckets(), now)
}

// startBulk opens a session with p for the records of creator (0: all) in
// buckets, replacing any session running with p.
func (e *Engine) startBulk(p *peer, creator uint32, buckets wire.BucketSet, now time.Time) {
	p.bulk = bulkRecv{creator: creator, session: buckets, got: new([wire.Buckets]record.Digest)}
	if creator != 0 {
		p.bulk.seen = make(map[record.ID]struct{})
	}
	e.sendBulkRequest(p, now)
}

// bulkGen returns a fresh bulk generation addressed to peer to. A
// BulkRequest travels in the sender's reliable stream, a broadcast, and the
// element names no receiver: the generation does, in its high 32 bits
// (0 would mean every receiver). Its low 32 bits start from the epoch and
// count the requests of this life, so a late answer to a request of an
// earlier life or attempt does not match. Without the address, every peer
// would answer (and restart its transfer for) every request: with three or
// more nodes the bulks cancelled each other until they timed out.
func (e *Engine) bulkGen(to NodeID) uint64 {
	e.gen++
	return uint64(to)<<32 | uint64(uint32(e.epoch)+uint32(e.gen))
}

// bulkForUs reports whether a BulkRequest's generation addresses this node.
func (e *Engine) bulkForUs(gen uint64) bool {
	to := NodeID(gen >> 32)
	return to == 0 || to == e.cfg.Node
}

// sendBulkRequest starts an attempt of p's session: it asks for the
// buckets not settled yet.
func (e *Engine) sendBulkRequest(p *peer, now time.Time) {
	b := &p.bulk
	b.state, b.gen = bulkRequested, e.bulkGen(p.id)
	b.want = b.session.Without(b.done)
	b.progress, b.expected, b.haveEnd = false, 0, false
	b.deadline = now.Add(e.cfg.BulkTimeout)
	*b.got = [wire.Buckets]record.Digest{}
	b.marks = b.marks[:0]
	e.ctlq = append(e.ctlq, ctl{kind: wire.KindBulkRequest, gen: b.gen, creator: b.creator, buckets: b.want})
	e.scheduleFlush(now)
}

// bulkFrame handles the BulkStart that opens a bulk frame and reports
// whether the frame belongs to the bulk this node expects from p.
func (e *Engine) bulkFrame(p *peer, s wire.BulkStart, now time.Time) bool {
	if p.bulk.gen != s.Generation || !p.bulk.active() {
		return false
	}
	if p.bulk.state == bulkRequested {
		p.bulk.state = bulkReceiving
		p.bulk.expected = s.Expected
		e.stats.BulkStarted++
		if len(e.store) == 0 && s.Expected > 1024 {
			// A joining node: size the store once instead of growing it
			// step by step through the whole transfer — up to a million
			// records (~50 MB): the count is the peer's word, and a
			// bigger table grows the ordinary way from there.
			e.store = make(map[record.ID]entry, min(s.Expected, maxPresize))
		}
	}
	p.bulk.deadline = now.Add(e.cfg.BulkTimeout)
	return true
}

// maxPresize bounds the store a joining node allocates ahead of a bulk.
const maxPresize = 1 << 20

// bulkMark notes a mark of the bulk this node expects from p, to be
// checked once the frames before it arrived.
func (e *Engine) bulkMark(p *peer, seq uint64, m wire.BulkMark) {
	if p.bulk.state != bulkReceiving || p.bulk.gen != m.Generation {
		return
	}
	if len(p.bulk.marks) >= wire.Buckets {
		// A mark covers a bucket at least: an attempt has no more marks
		// than buckets.
		e.stats.BadValue++
		return
	}
	p.bulk.marks = append(p.bulk.marks, pendingMark{seq: seq, m: m})
}

// checkBulk settles the marks of p's bulk whose frames all arrived, and
// ends the attempt once every frame up to its BulkEnd arrived: the session
// is complete, or it asks again for what is not settled.
func (e *Engine) checkBulk(p *peer, now time.Time) {
	b := &p.bulk
	if b.state != bulkReceiving {
		return
	}
	kept := b.marks[:0]
	for _, pm := range b.marks {
		if p.next <= pm.seq {
			kept = append(kept, pm)
			continue
		}
		e.settle(b, pm.m)
	}
	b.marks = kept
	if !b.haveEnd || p.next <= b.endSeq {
		return
	}
	got := b.received()
	if left := b.session.Without(b.done); !left.Empty() {
		e.stats.BulkFailed++
		e.log.Warn("pfsync: bulk sync incomplete, asking again for the failed ranges", "peer", uint32(p.id),
			"expected", b.end.Count, "received", got.Count, "buckets_left", left.Len(), "attempt", b.attempts+1)
		e.retryBulk(p, now)
		return
	}
	if got != b.end {
		// Every range matched its mark, so the records are all here; the
		// sender's total disagrees with its own marks.
		e.log.Warn("pfsync: bulk end digest differs from the sum of its ranges", "peer", uint32(p.id),
			"expected", b.end.Count, "received", got.Count)
	}
	e.completeBulk(p, now)
}

// settle checks mark m against the bulk elements received and settles its
// buckets if they match.
func (e *Engine) settle(b *bulkRecv, m wire.BulkMark) {
	var d record.Digest
	for k := m.First; k <= m.Last; k++ {
		d.Combine(b.got[k])
	}
	if d != m.Digest {
		e.stats.BulkRangesFailed++
		return
	}
	for k := int(m.First); k <= int(m.Last); k++ {
		if b.want.Has(k) && !b.done.Has(k) {
			b.done.Add(k)
			b.progress = true
		}
	}
}

// completeBulk ends p's session: every bucket is settled.
func (e *Engine) completeBulk(p *peer, now time.Time) {
	b := &p.bulk
	e.stats.BulkCompleted++
	if b.creator == 0 {
		if !p.synced {
			e.log.Info("pfsync: bulk sync complete", "peer", uint32(p.id), "records", len(e.store))
		}
		p.synced, p.bulkFailed = true, false
	} else {
		// An anti-entropy repair: the owner holds at least what it sent.
		// Records of that creator in the repaired buckets held here but
		// not sent are either newer than the owner's snapshot or ghosts
		// whose delete was lost: ask the owner, which answers with the
		// record or its delete.
		for id := range e.store {
			if id.Creator == b.creator && b.session.Has(wire.BucketOf(id)) {
				if _, ok := b.seen[id]; !ok {
					e.request(id, now)
				}
			}
		}
		e.scheduleFlush(now)
	}
	lost := b.lost && b.creator == 0
	p.bulk = bulkRecv{state: bulkComplete}
	if lost {
		e.resync(p, now)
	}
}

// retryBulk asks p again for the buckets of the session not settled, or
// gives the session up after BulkRetries attempts in a row that settled
// nothing.
func (e *Engine) retryBulk(p *peer, now time.Time) {
	b := &p.bulk
	if b.progress {
		b.attempts = 0
	} else {
		b.attempts++
	}
	if b.attempts >= e.cfg.BulkRetries {
		e.stats.BulkGaveUp++
		if b.creator == 0 && !p.synced {
			p.bulkFailed = true
		}
		e.log.Error("pfsync: bulk sync failed, giving up", "peer", uint32(p.id), "attempts", b.attempts,
			"buckets_left", b.session.Without(b.done).Len())
		p.bulk = bulkRecv{state: bulkIdle}
		return
	}
	left := b.session.Without(b.done)
	if left.Empty() {
		// Never ask for nothing: an empty set on the wire means every
		// bucket.
		e.completeBulk(p, now)
		return
	}
	e.stats.BulkBucketsRetried += uint64(left.Len())
	e.sendBulkRequest(p, now)
}

// streamLost handles frames of p's stream up to seq that will never arrive
// (a gap its resend queue could not fill, or a jump beyond the receive
// window). They may have carried changes to records of any bucket: the
// node resynchronises by digest (Engine.resync) — at once, or when the
// full bulk session in progress completes.
func (e *Engine) streamLost(p *peer, seq uint64, now time.Time) {
	e.stats.GapsGivenUp++
	if b := &p.bulk; b.active() && b.creator == 0 {
		// A lost bulk frame fails its range's mark on its own; lost
		// incremental updates may concern records of any range, settled
		// or not: compare digests once the session is complete.
		e.log.Info("pfsync: frames lost during a bulk sync, the tables will be compared by digest when it completes",
			"peer", uint32(p.id), "up_to", seq, "settled", b.done.Len())
		b.lost = true
		return
	}
	e.resync(p, now)
}

// bulkRequested queues (or restarts) the bulk transfer to p.
func (e *Engine) bulkRequested(p *peer, r wire.BulkRequest, now time.Time) {
	if !e.bulkForUs(r.Generation) {
		return // addressed to another peer of the requester
	}
	buckets := r.Buckets
	if buckets.Empty() {
		buckets = wire.AllBuckets()
	}
	job := bulkJob{peer: p.id, gen: r.Generation, creator: r.Creator, buckets: buckets}
	for _, j := range e.bulks {
		if j.peer == p.id && j.gen == job.gen {
			return // the same request again (a retransmission)
		}
		if j.peer == p.id {
			*j = job
			e.wakeBy(now)
			return
		}
	}
	e.bulks = append(e.bulks, &job)
	e.wakeBy(now)
}

// snapshot takes the IDs j sends — records and tombstones of its creator
// and buckets — ordered by bucket with a counting sort, with their entries.
// Reading the store in bucket order would be reading a million-entry map
// at random, a cache miss per record that made a large bulk a third
// slower; the entries taken here are read in order instead, and only a
// record whose encoding changed since (Engine.changed) is looked up again.
func (j *bulkJob) snapshot(e *Engine) {
	type item struct {
		id  record.ID
		ent entry
	}
	items := make([]item, 0, len(e.store)+len(e.tombs))
	bks := make([]uint8, 0, cap(items))
	var start [wire.Buckets]int
	add := func(id record.ID, ent entry) {
		if j.creator != 0 && id.Creator != j.creator {
			return
		}
		k := wire.BucketOf(id)
		if !j.buckets.Has(k) {
			return
		}
		items = append(items, item{id, ent})
		bks = append(bks, uint8(k))
		start[k]++
	}
	for id, ent := range e.store {
		add(id, ent)
	}
	for id := range e.tombs {
		add(id, entry{})
	}
	n := 0
	for k, c := range start {
		start[k] = n
		n += c
		j.ends[k] = n
	}
	j.ids, j.ents = make([]record.ID, len(items)), make([]entry, len(items))
	for i, it := range items {
		k := bks[i]
		j.ids[start[k]], j.ents[start[k]] = it.id, it.ent
		start[k]++
	}
	j.compact, j.started = e.compactions, true
	if e.bulkDirty == nil {
		e.bulkDirty = make(map[record.ID]struct{})
	}
}

// entry returns the current entry of the i-th ID of j's snapshot, and
// whether the record is live.
func (j *bulkJob) entry(e *Engine, i int) (entry, bool) {
	id := j.ids[i]
	if _, changed := e.bulkDirty[id]; !changed && j.compact == e.compactions {
		return j.ents[i], j.ents[i].n != 0
	}
	ent, live := e.store[id]
	return ent, live
}

// sendBulks sends bulk frames as the token bucket allows and returns when
// the next token is due (zero when no bulk is left).
func (e *Engine) sendBulks(now time.Time) time.Time {
	rate := float64(e.cfg.BulkRate)
	e.refill(now, rate, e.cfg.BulkBurst)
	for len(e.bulks) > 0 && e.tokens >= 1 {
		j := e.bulks[0]
		if p := e.peers[j.peer]; p == nil || !p.up {
			e.bulks = e.bulks[1:]
			continue
		}
		if !j.started {
			j.snapshot(e)
		}
		if e.sendBulkFrame(j, now) {
			e.bulks = e.bulks[1:]
			e.stats.BulkSent++
		} else if len(e.bulks) > 1 {
			// Round robin between the transfers: every requester sees
			// progress within its BulkTimeout. Served one after the
			// other, a second joiner of a big table waited for the
			// whole first transfer, timed out and retried until it
			// gave up.
			e.bulks = append(e.bulks[1:], j)
		}
		e.tokens--
	}
	if len(e.bulks) == 0 {
		e.bulks, e.bulkDirty = nil, nil
		return time.Time{}
	}
	return e.tokenDue(now, rate)
}

// bulkTrailer is the room a bulk frame keeps for its BulkMark and BulkEnd.
const bulkTrailer = 2*wire.SectionHeaderLen + wire.BulkMarkLen + wire.BulkEndLen

// advance moves j's bucket cursor to the bucket of ids[pos], folding the
// digests of the buckets it leaves into the range of the next mark.
func (j *bulkJob) advance() {
	for j.bucket < wire.Buckets && j.pos >= j.ends[j.bucket] {
		j.rng.Combine(j.cur)
		j.cur = record.Digest{}
		j.bucket++
	}
}

// sendBulkFrame sends the next frame of j and reports whether j is done.
func (e *Engine) sendBulkFrame(j *bulkJob, now time.Time) bool {
	seq := e.nextSeq
	if err := e.b.Reset(e.frame[:0], e.mtu, e.header(seq)); err != nil {
		return true
	}
	f := sentFrame{seq: seq, bulk: true, bulkGen: j.gen, bulkExp: uint64(len(j.ids))}
	if err := e.b.AddBulkStart(wire.BulkStart{Generation: j.gen, Expected: f.bulkExp}); err != nil {
		return true
	}
	if j.since == 0 {
		j.since = seq
	}
	e.addAcks(now, false)
	if e.b.SetMTU(max(e.b.Len(), e.mtu-bulkTrailer)) != nil {
		return true
	}
	from := j.pos
	for j.pos < len(j.ids) {
		j.advance()
		id := j.ids[j.pos]
		var err error
		ent, live := j.entry(e, j.pos)
		if live {
			err = e.addStored(ent, now)
		} else if t, ok := e.tombs[id]; ok {
			err = e.b.AddDelete(wire.Delete{ID: id, Version: t.ver})
		} else {
			j.pos++ // gone since the snapshot, tombstone expired
			continue
		}
		if err == wire.ErrFull {
			break
		}
		j.pos++
		if err != nil {
			e.stats.BadValue++
			continue
		}
		j.cur.Add(id, 0)
		e.stats.BulkRecordsSent++
		if live && ent.flags&fAnnounced == 0 {
			// The snapshot's flags may be stale: set the flag on the
			// store's entry.
			ent = e.store[id]
			ent.flags |= fAnnounced
			e.store[id] = ent
		}
	}
	f.ids = j.ids[from:j.pos]
	// Raising the limit back cannot fail: the frame is within the lowered
	// one, and e.mtu is the limit the builder was Reset with.
	_ = e.b.SetMTU(e.mtu)
	j.advance()
	if last := j.bucket - 1; last >= j.marked {
		m := wire.BulkMark{Generation: j.gen, Since: j.since, First: uint16(j.marked), Last: uint16(last), Digest: j.rng}
		if e.b.AddBulkMark(m) == nil {
			f.mark, f.hasMark = m, true
			j.dig.Combine(j.rng)
			j.rng, j.marked, j.since = record.Digest{}, last+1, seq
		}
	}
	done := false
	if j.marked == wire.Buckets {
		if e.b.AddBulkEnd(wire.BulkEnd{Generation: j.gen, Digest: j.dig}) == nil {
			f.end, f.endDig, done = true, j.dig, true
			e.b.SetFlags(wire.FlagAckRequested)
		}
	}
	e.sendFrame(Broadcast, e.b.Frame(), now)
	e.sequenced(f)
	e.trimRing()
	return done
}

// changed notes that the encoding of id changed or that it was removed,
// while bulk transfers read their snapshots (bulkJob.entry).
func (e *Engine) changed(id record.ID) {
	if e.bulkDirty != nil {
		e.bulkDirty[id] = struct{}{}
	}
}

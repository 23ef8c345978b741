package pfsync

import (
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// Bulk sync, verified range by range (pfsync sends a joining node its
// whole table between a start and an end marker, and trusts it).
//
// The requester opens a session for a set of buckets (wire.Buckets of them,
// by record ID: every bucket when it joins, the mismatching ones for an
// anti-entropy repair) and sends a BulkRequest with a fresh generation,
// addressed to one peer (bulkOut.nextGen), in its reliable stream. The peer
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

// attempt starts an attempt of generation gen for the buckets not settled.
func (b *bulkRecv) attempt(gen uint64, deadline time.Time) {
	b.state, b.gen = bulkRequested, gen
	b.want = b.session.Without(b.done)
	b.progress, b.expected, b.haveEnd = false, 0, false
	b.deadline = deadline
	*b.got = [wire.Buckets]record.Digest{}
	b.marks = b.marks[:0]
}

// start handles the BulkStart of a frame of generation gen, expected
// records in all: it reports whether the frame belongs to the attempt
// (its deadline moves on to next) and whether it is the first one.
func (b *bulkRecv) start(s wire.BulkStart, next time.Time) (ours, first bool) {
	if b.gen != s.Generation || !b.active() {
		return false, false
	}
	if b.state == bulkRequested {
		b.state, b.expected, first = bulkReceiving, s.Expected, true
	}
	b.deadline = next
	return true, first
}

// ended notes the BulkEnd of the attempt, in the frame seq.
func (b *bulkRecv) ended(be wire.BulkEnd, seq uint64) {
	if b.gen == be.Generation && b.state == bulkReceiving {
		b.haveEnd, b.endSeq, b.end = true, seq, be.Digest
	}
}

// mark notes a mark of the attempt in frame seq, to be checked once the
// frames before it arrived. It reports false for a mark beyond the
// possible: a mark covers a bucket at least, so an attempt has no more
// marks than buckets.
func (b *bulkRecv) mark(seq uint64, m wire.BulkMark) bool {
	if b.state != bulkReceiving || b.gen != m.Generation {
		return true
	}
	if len(b.marks) >= wire.Buckets {
		return false
	}
	b.marks = append(b.marks, pendingMark{seq: seq, m: m})
	return true
}

// settleArrived settles the marks whose frames all arrived (the peer's
// stream is complete below next) and returns how many failed their check.
func (b *bulkRecv) settleArrived(next uint64) (failed int) {
	kept := b.marks[:0]
	for _, pm := range b.marks {
		if next <= pm.seq {
			kept = append(kept, pm)
			continue
		}
		if !b.settle(pm.m) {
			failed++
		}
	}
	b.marks = kept
	return failed
}

// settle checks mark m against the bulk elements received and settles its
// buckets if they match; it reports whether they did.
func (b *bulkRecv) settle(m wire.BulkMark) bool {
	var d record.Digest
	for k := m.First; k <= m.Last; k++ {
		d.Combine(b.got[k])
	}
	if d != m.Digest {
		return false
	}
	for k := int(m.First); k <= int(m.Last); k++ {
		if b.want.Has(k) && !b.done.Has(k) {
			b.done.Add(k)
			b.progress = true
		}
	}
	return true
}

// left is the set of the session's buckets not settled.
func (b *bulkRecv) left() wire.BucketSet { return b.session.Without(b.done) }

// endArrived reports whether every frame up to the BulkEnd arrived.
func (b *bulkRecv) endArrived(next uint64) bool { return b.haveEnd && next > b.endSeq }

// failedAttempt counts an attempt that ends with buckets left and reports
// whether the session must be given up: retries attempts in a row settled
// nothing.
func (b *bulkRecv) failedAttempt(retries int) bool {
	if b.progress {
		b.attempts = 0
	} else {
		b.attempts++
	}
	return b.attempts >= retries
}

// bulkJob is a bulk transfer this node sends.
type bulkJob struct {
	peer    NodeID
	gen     uint64
	creator uint32
	buckets wire.BucketSet
	started bool
	ids     []record.ID       // snapshot taken when the job starts, ordered by bucket
	ents    []entry           // ents[i]: ids[i]'s entry then (n == 0: a tombstone)
	compact uint64            // records.compactions then
	ends    [wire.Buckets]int // ends[k]: index in ids past bucket k's IDs
	pos     int
	bucket  int           // bucket of ids[pos] (wire.Buckets once every ID is sent)
	cur     record.Digest // IDs sent from the current bucket
	rng     record.Digest // IDs sent from the finished buckets no mark covered yet
	marked  int           // first bucket no mark covered yet
	since   uint64        // first frame that may carry IDs of the next mark
	dig     record.Digest // IDs of every mark sent
}

// bulkOut is the sending side of bulk sync: the transfers this node runs
// for its peers, served round robin, and the records whose encoding
// changed since the oldest running transfer took its snapshot. It also
// counts the generations of this node's own requests. Used under
// Engine.mu.
type bulkOut struct {
	jobs  []*bulkJob
	dirty map[record.ID]struct{} // nil while no transfer runs
	gen   uint64                 // last bulk generation this node requested
}

// changed notes that the encoding of id changed or that it was removed,
// while transfers read their snapshots (bulkJob.entry).
func (o *bulkOut) changed(id record.ID) {
	if o.dirty != nil {
		o.dirty[id] = struct{}{}
	}
}

// running reports whether a transfer is queued or running.
func (o *bulkOut) running() bool { return len(o.jobs) > 0 }

// add queues job, the answer to a BulkRequest, and reports whether it is
// new: the same request again (a retransmission) changes nothing; a new
// one from the same peer restarts its transfer.
func (o *bulkOut) add(job bulkJob) bool {
	for _, j := range o.jobs {
		if j.peer == job.peer && j.gen == job.gen {
			return false
		}
		if j.peer == job.peer {
			*j = job
			return true
		}
	}
	o.jobs = append(o.jobs, &job)
	return true
}

// current returns the transfer to serve next.
func (o *bulkOut) current() *bulkJob { return o.jobs[0] }

// finished drops the current transfer.
func (o *bulkOut) finished() {
	o.jobs = o.jobs[1:]
	if len(o.jobs) == 0 {
		o.jobs, o.dirty = nil, nil
	}
}

// rotate moves the current transfer behind the others: round robin
// between the transfers lets every requester see progress within its
// BulkTimeout. Served one after the other, a second joiner of a big table
// waited for the whole first transfer, timed out and retried until it
// gave up.
func (o *bulkOut) rotate() {
	if len(o.jobs) > 1 {
		o.jobs = append(o.jobs[1:], o.jobs[0])
	}
}

// nextGen returns a fresh bulk generation addressed to peer to. A
// BulkRequest travels in the sender's reliable stream, a broadcast, and the
// element names no receiver: the generation does, in its high 32 bits
// (0 would mean every receiver). Its low 32 bits start from the epoch and
// count the requests of this life, so a late answer to a request of an
// earlier life or attempt does not match. Without the address, every peer
// would answer (and restart its transfer for) every request: with three or
// more nodes the bulks cancelled each other until they timed out.
func (o *bulkOut) nextGen(to NodeID, epoch uint64) uint64 {
	o.gen++
	return uint64(to)<<32 | uint64(uint32(epoch)+uint32(o.gen))
}

// bulkForUs reports whether a BulkRequest's generation addresses node.
func bulkForUs(gen uint64, node NodeID) bool {
	to := NodeID(gen >> 32)
	return to == 0 || to == node
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

// sendBulkRequest starts an attempt of p's session: it asks for the
// buckets not settled yet.
func (e *Engine) sendBulkRequest(p *peer, now time.Time) {
	b := &p.bulk
	b.attempt(e.bulk.nextGen(p.id, e.epoch), now.Add(e.cfg.BulkTimeout))
	e.ctlq = append(e.ctlq, ctl{kind: wire.KindBulkRequest, gen: b.gen, creator: b.creator, buckets: b.want})
	e.scheduleFlush(now)
}

// bulkFrame handles the BulkStart that opens a bulk frame and reports
// whether the frame belongs to the bulk this node expects from p.
func (e *Engine) bulkFrame(p *peer, s wire.BulkStart, now time.Time) bool {
	ours, first := p.bulk.start(s, now.Add(e.cfg.BulkTimeout))
	if first {
		e.stats.BulkStarted++
		if len(e.store) == 0 && s.Expected > 1024 {
			// A joining node: size the store once instead of growing it
			// step by step through the whole transfer — up to a million
			// records (~50 MB): the count is the peer's word, and a
			// bigger table grows the ordinary way from there.
			e.store = make(map[record.ID]entry, min(s.Expected, maxPresize))
		}
	}
	return ours
}

// maxPresize bounds the store a joining node allocates ahead of a bulk.
const maxPresize = 1 << 20

// checkBulk settles the marks of p's bulk whose frames all arrived, and
// ends the attempt once every frame up to its BulkEnd arrived: the session
// is complete, or it asks again for what is not settled.
func (e *Engine) checkBulk(p *peer, now time.Time) {
	b := &p.bulk
	if b.state != bulkReceiving {
		return
	}
	e.stats.BulkRangesFailed += uint64(b.settleArrived(p.next))
	if !b.endArrived(p.next) {
		return
	}
	got := b.received()
	if left := b.left(); !left.Empty() {
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
	if b.failedAttempt(e.cfg.BulkRetries) {
		e.stats.BulkGaveUp++
		if b.creator == 0 && !p.synced {
			p.bulkFailed = true
		}
		e.log.Error("pfsync: bulk sync failed, giving up", "peer", uint32(p.id), "attempts", b.attempts,
			"buckets_left", b.session.Without(b.done).Len())
		p.bulk = bulkRecv{state: bulkIdle}
		return
	}
	left := b.left()
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
	p.stats.GapsGivenUp++
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
	if !bulkForUs(r.Generation, e.cfg.Node) {
		return // addressed to another peer of the requester
	}
	buckets := r.Buckets
	if buckets.Empty() {
		buckets = wire.AllBuckets()
	}
	if e.bulk.add(bulkJob{peer: p.id, gen: r.Generation, creator: r.Creator, buckets: buckets}) {
		e.wakeBy(now)
	}
}

// snapshot takes the IDs j sends — records and tombstones of its creator
// and buckets — ordered by bucket with a counting sort, with their entries.
// Reading the store in bucket order would be reading a million-entry map
// at random, a cache miss per record that made a large bulk a third
// slower; the entries taken here are read in order instead, and only a
// record whose encoding changed since (bulkOut.changed) is looked up again.
func (j *bulkJob) snapshot(s *records, o *bulkOut) {
	type item struct {
		id  record.ID
		ent entry
	}
	items := make([]item, 0, len(s.store)+len(s.tombs))
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
	for id, ent := range s.store {
		add(id, ent)
	}
	for id := range s.tombs {
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
	j.compact, j.started = s.compactions, true
	if o.dirty == nil {
		o.dirty = make(map[record.ID]struct{})
	}
}

// entry returns the current entry of the i-th ID of j's snapshot, and
// whether the record is live.
func (j *bulkJob) entry(s *records, o *bulkOut, i int) (entry, bool) {
	id := j.ids[i]
	if _, changed := o.dirty[id]; !changed && j.compact == s.compactions {
		return j.ents[i], j.ents[i].n != 0
	}
	ent, live := s.store[id]
	return ent, live
}

// sendBulks sends bulk frames as the token bucket allows and returns when
// the next token is due (zero when no bulk is left).
func (e *Engine) sendBulks(now time.Time) time.Time {
	rate := float64(e.cfg.BulkRate)
	e.refill(now, rate, e.cfg.BulkBurst)
	for e.bulk.running() && e.tokens >= 1 {
		j := e.bulk.current()
		if p := e.peers[j.peer]; p == nil || !p.up {
			e.bulk.finished()
			continue
		}
		if !j.started {
			j.snapshot(&e.records, &e.bulk)
		}
		if e.sendBulkFrame(j, now) {
			e.bulk.finished()
			e.stats.BulkSent++
		} else {
			e.bulk.rotate()
		}
		e.tokens--
	}
	if !e.bulk.running() {
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
		ent, live := j.entry(&e.records, &e.bulk, j.pos)
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

// changed notes that the encoding of id changed or that it was removed.
func (e *Engine) changed(id record.ID) { e.bulk.changed(id) }

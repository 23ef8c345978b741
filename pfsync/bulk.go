package pfsync

import (
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// Bulk sync (pfsync §2.5, reference §7.8). The requester sends a
// BulkRequest with a fresh generation addressed to one peer (bulkGen) in
// its reliable stream, to every peer it hears; that peer
// snapshots the IDs it holds and sends them, paced by a token bucket, as full
// UPDATE (or DELETE) elements in frames that each begin with a BulkStart
// naming the generation — so the requester recognises bulk frames even when
// they arrive out of order or are retransmitted — and ends with a BulkEnd
// carrying the record.Digest of the IDs sent (version 0: a record that
// changed during the transfer is still "sent"). The requester accumulates
// the same digest over the bulk elements it receives and compares once every
// frame of the peer's stream up to the BulkEnd arrived. A mismatch or a
// timeout is retried up to BulkRetries times, then reported (Stats.BulkGaveUp,
// DemoteDegraded), never taken for success.

type bulkState uint8

const (
	bulkIdle bulkState = iota
	bulkRequested
	bulkReceiving
	bulkComplete
)

// bulkRecv is the bulk sync this node requested from one peer.
type bulkRecv struct {
	state    bulkState
	gen      uint64
	creator  uint32 // 0: every record; else an anti-entropy repair of that creator's records
	attempts int
	deadline time.Time
	expected uint64
	got      record.Digest
	haveEnd  bool
	endSeq   uint64
	end      record.Digest
	seen     map[record.ID]struct{} // repairs: the IDs the owner holds
}

func (b *bulkRecv) add(id record.ID) {
	b.got.Add(id, 0)
	if b.seen != nil {
		b.seen[id] = struct{}{}
	}
}

func (b *bulkRecv) active() bool { return b.state == bulkRequested || b.state == bulkReceiving }

// bulkJob is a bulk transfer this node sends.
type bulkJob struct {
	peer    NodeID
	gen     uint64
	creator uint32
	started bool
	ids     []record.ID // snapshot taken when the job starts
	pos     int
	dig     record.Digest
}

// requestBulk asks p for every record it holds.
func (e *Engine) requestBulk(p *peer, now time.Time) {
	p.bulk.attempts = 0
	e.sendBulkRequest(p, 0, now)
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

func (e *Engine) sendBulkRequest(p *peer, creator uint32, now time.Time) {
	b := bulkRecv{
		state:    bulkRequested,
		gen:      e.bulkGen(p.id),
		creator:  creator,
		attempts: p.bulk.attempts,
		deadline: now.Add(e.cfg.BulkTimeout),
	}
	if creator != 0 {
		b.seen = make(map[record.ID]struct{})
	}
	p.bulk = b
	e.ctlq = append(e.ctlq, ctl{kind: wire.KindBulkRequest, gen: b.gen, creator: creator})
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
			// step by step through the whole transfer.
			e.store = make(map[record.ID]entry, min(s.Expected, 1<<26))
		}
	}
	p.bulk.deadline = now.Add(e.cfg.BulkTimeout)
	return true
}

// checkBulkEnd completes the bulk from p once every frame up to its end
// arrived.
func (e *Engine) checkBulkEnd(p *peer, now time.Time) {
	b := &p.bulk
	if b.state != bulkReceiving || !b.haveEnd || p.next <= b.endSeq {
		return
	}
	if b.got != b.end {
		e.stats.BulkFailed++
		e.log.Warn("pfsync: bulk sync digest mismatch", "peer", uint32(p.id),
			"expected", b.end.Count, "received", b.got.Count, "attempt", b.attempts+1)
		e.retryBulk(p, now)
		return
	}
	e.stats.BulkCompleted++
	if b.creator == 0 {
		if !p.synced {
			e.log.Info("pfsync: bulk sync complete", "peer", uint32(p.id), "records", b.got.Count)
		}
		p.synced, p.bulkFailed = true, false
	} else {
		// An anti-entropy repair: the owner holds at least what it sent.
		// Records of that creator held here but not sent are either newer
		// than the owner's snapshot or ghosts whose delete was lost: ask
		// the owner, which answers with the record or its delete.
		for id := range e.store {
			if id.Creator == b.creator {
				if _, ok := b.seen[id]; !ok {
					e.stats.RequestsSent++
					e.ctlq = append(e.ctlq, ctl{kind: wire.KindRequest, id: id})
				}
			}
		}
		e.scheduleFlush(now)
	}
	p.bulk = bulkRecv{state: bulkComplete}
}

func (e *Engine) retryBulk(p *peer, now time.Time) {
	p.bulk.attempts++
	if p.bulk.attempts >= e.cfg.BulkRetries {
		e.stats.BulkGaveUp++
		if p.bulk.creator == 0 && !p.synced {
			p.bulkFailed = true
		}
		e.log.Error("pfsync: bulk sync failed, giving up", "peer", uint32(p.id), "attempts", p.bulk.attempts)
		p.bulk = bulkRecv{state: bulkIdle}
		return
	}
	e.sendBulkRequest(p, p.bulk.creator, now)
}

// bulkRequested queues (or restarts) the bulk transfer to p.
func (e *Engine) bulkRequested(p *peer, r wire.BulkRequest, now time.Time) {
	if !e.bulkForUs(r.Generation) {
		return // addressed to another peer of the requester
	}
	for _, j := range e.bulks {
		if j.peer == p.id {
			*j = bulkJob{peer: p.id, gen: r.Generation, creator: r.Creator}
			e.wakeBy(now)
			return
		}
	}
	e.bulks = append(e.bulks, &bulkJob{peer: p.id, gen: r.Generation, creator: r.Creator})
	e.wakeBy(now)
}

// sendBulks sends bulk frames as the token bucket allows and returns when
// the next token is due (zero when no bulk is left).
func (e *Engine) sendBulks(now time.Time) time.Time {
	rate := float64(e.cfg.BulkRate)
	e.tokens = min(float64(e.cfg.BulkBurst), e.tokens+now.Sub(e.tokenAt).Seconds()*rate)
	e.tokenAt = now
	for len(e.bulks) > 0 && e.tokens >= 1 {
		j := e.bulks[0]
		if p := e.peers[j.peer]; p == nil || !p.up {
			e.bulks = e.bulks[1:]
			continue
		}
		if !j.started {
			j.started = true
			j.ids = make([]record.ID, 0, len(e.store)+len(e.tombs))
			for id := range e.store {
				if j.creator == 0 || id.Creator == j.creator {
					j.ids = append(j.ids, id)
				}
			}
			for id := range e.tombs {
				if j.creator == 0 || id.Creator == j.creator {
					j.ids = append(j.ids, id)
				}
			}
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
		e.bulks = nil
		return time.Time{}
	}
	wait := time.Duration((1 - e.tokens) / rate * float64(time.Second))
	return now.Add(max(wait, time.Microsecond))
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
	e.addAcks(now, false)
	from := j.pos
	for j.pos < len(j.ids) {
		id := j.ids[j.pos]
		var err error
		ent, live := e.store[id]
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
		j.dig.Add(id, 0)
		if live && ent.flags&fAnnounced == 0 {
			ent.flags |= fAnnounced
			e.store[id] = ent
		}
	}
	f.ids = j.ids[from:j.pos]
	done := false
	if j.pos == len(j.ids) {
		if e.b.AddBulkEnd(wire.BulkEnd{Generation: j.gen, Digest: j.dig}) == nil {
			f.end, f.endDig, done = true, j.dig, true
			e.b.SetFlags(wire.FlagAckRequested)
		}
	}
	e.nextSeq++
	e.sendFrame(Broadcast, e.b.Frame(), now)
	e.ring.push(f)
	e.trimRing()
	return done
}

// antiEntropyBuckets is how many buckets a digest splits a creator's
// records into.
const antiEntropyBuckets = 64

// sendDigest broadcasts the digest of this node's own records, after
// flushing, so that a peer that received our whole stream up to the
// digest's sequence number must hold exactly these versions.
func (e *Engine) sendDigest(now time.Time) {
	e.flushLocked(now)
	sums := make([]uint64, antiEntropyBuckets)
	self := uint32(e.cfg.Node)
	for id, ent := range e.store {
		if id.Creator == self {
			sums[record.Bucket(id, antiEntropyBuckets)] += record.Hash(id, ent.ver)
		}
	}
	for first := 0; first < len(sums); {
		if err := e.b.Reset(e.frame[:0], e.mtu, e.header(e.nextSeq-1)); err != nil {
			return
		}
		e.b.SetFlags(wire.FlagUnsequenced)
		n := min(len(sums)-first, (e.b.Room()-wire.SectionHeaderLen-2-11)/8)
		if n <= 0 {
			return
		}
		e.dig = wire.Digest{Creator: self, Buckets: antiEntropyBuckets, First: uint16(first), Sums: sums[first : first+n]}
		if err := e.b.AddDigest(&e.dig); err != nil {
			e.log.Error("pfsync: digest", "err", err)
			return
		}
		e.sendFrame(Broadcast, e.b.Frame(), now)
		first += n
	}
	e.dig.Sums = nil
	e.stats.DigestsSent++
}

// remoteDigest compares an owner's digest of its records with ours, once
// we hold its whole stream up to the digest, and repairs a mismatch with a
// bulk sync of that owner's records.
func (e *Engine) remoteDigest(p *peer, h wire.Header, d *wire.Digest, now time.Time) {
	if d.Creator != uint32(p.id) || p.next == 0 || p.next <= h.Seq || p.bulk.active() || p.hasGap() {
		return
	}
	var sums [antiEntropyBuckets]uint64
	if d.Buckets != antiEntropyBuckets {
		return
	}
	for id, ent := range e.store {
		if id.Creator == d.Creator {
			sums[record.Bucket(id, antiEntropyBuckets)] += record.Hash(id, ent.ver)
		}
	}
	for i, s := range d.Sums {
		if sums[int(d.First)+i] != s {
			e.stats.DigestMismatches++
			e.log.Info("pfsync: anti-entropy mismatch, repairing", "peer", uint32(p.id), "bucket", int(d.First)+i)
			p.bulk.attempts = 0
			e.sendBulkRequest(p, d.Creator, now)
			return
		}
	}
}

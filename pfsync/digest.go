package pfsync

import (
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// Digests compare what two nodes hold without sending it: the sum of
// record.Hash(id, version) per bucket of record IDs. Two uses:
//
//   - anti-entropy: every Config.AntiEntropy a node broadcasts the digest of
//     its own records in antiEntropyBuckets buckets; a peer that holds a
//     different set fetches the mismatching buckets of that creator;
//   - resynchronisation: when frames of a peer's stream are lost for good
//     (a gap its resend queue could not fill, the peer back after a silence)
//     a node that was in sync with it asks for the digest of everything the
//     peer holds, in wire.Buckets buckets, and fetches only the buckets that
//     differ instead of the whole table (pfsync and conntrackd both send the
//     whole table again).

// antiEntropyBuckets is how many buckets a digest splits a creator's
// records into.
const antiEntropyBuckets = 64

// minDigestSums is the fewest bucket sums a digest part carries unless it
// is the last one: what sendSums puts in a frame of the smallest MTU. Each
// part costs the receiver a pass over its whole table, so a peer must not
// split a digest into more parts than that (up to one per bucket).
const minDigestSums = (wire.MinMTU - wire.HeaderLen - wire.SectionHeaderLen - 2 - 11) / 8

// digestPart reports whether d is a part a peer may send: not empty, and
// no smaller than minDigestSums unless it ends at the last bucket. It
// counts the parts refused.
func (e *Engine) digestPart(d *wire.Digest) bool {
	if len(d.Sums) == 0 || len(d.Sums) < min(minDigestSums, int(d.Buckets)-int(d.First)) {
		e.stats.DigestsRefused++
		return false
	}
	return true
}

// digestBuckets returns the set of the buckets d carries sums of (its
// digest has at most wire.Buckets).
func digestBuckets(d *wire.Digest) wire.BucketSet {
	var set wire.BucketSet
	for i := range d.Sums {
		set.Add(int(d.First) + i)
	}
	return set
}

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
	if e.sendSums(Broadcast, self, 0, sums, now) {
		e.stats.DigestsSent++
	}
}

// sendSums sends the bucket sums of creator's records (0: every record) to
// to, in as many unsequenced frames as they need, and reports whether all
// of them left.
func (e *Engine) sendSums(to NodeID, creator uint32, flags wire.DigestFlags, sums []uint64, now time.Time) bool {
	defer func() { e.dig.Sums = nil }()
	for first := 0; first < len(sums); {
		if err := e.b.Reset(e.frame[:0], e.mtu, e.header(e.nextSeq-1)); err != nil {
			return false
		}
		e.b.SetFlags(wire.FlagUnsequenced)
		n := min(len(sums)-first, (e.b.Room()-wire.SectionHeaderLen-2-11)/8)
		if n <= 0 {
			return false
		}
		e.dig = wire.Digest{Creator: creator, Flags: flags, Buckets: uint16(len(sums)), First: uint16(first), Sums: sums[first : first+n]}
		if err := e.b.AddDigest(&e.dig); err != nil {
			e.log.Error("pfsync: digest", "err", err)
			return false
		}
		e.sendFrame(to, e.b.Frame(), now)
		first += n
	}
	return true
}

// remoteDigest handles a digest p sent: a creator's anti-entropy digest,
// or p's whole-table digest (creator 0) asked for or sent in answer.
func (e *Engine) remoteDigest(p *peer, h wire.Header, d *wire.Digest, now time.Time) {
	if d.Creator == 0 {
		e.wholeDigest(p, h, d, now)
		return
	}
	if d.Creator != uint32(p.id) || !e.comparable(p, h) || p.bulk.active() {
		return
	}
	var sums [antiEntropyBuckets]uint64
	if d.Buckets != antiEntropyBuckets {
		e.stats.BadValue++
		return
	}
	if !e.digestPart(d) {
		return
	}
	// One round of anti-entropy per peer per heartbeat: each part costs a
	// pass over the table, and a part naming buckets already compared in
	// this round is a repeat (a peer configured with a shorter interval
	// than our heartbeat loses some rounds, which only delays a repair).
	if now.Sub(p.aeRound) >= e.cfg.Heartbeat {
		p.aeRound, p.aeSeen = now, wire.BucketSet{}
	}
	part := digestBuckets(d)
	if part.Without(p.aeSeen) != part {
		e.stats.DigestsRefused++
		return
	}
	p.aeSeen = p.aeSeen.Union(part)
	for id, ent := range e.store {
		if id.Creator == d.Creator {
			sums[record.Bucket(id, antiEntropyBuckets)] += record.Hash(id, ent.ver)
		}
	}
	var repair wire.BucketSet
	for i, s := range d.Sums {
		if b := int(d.First) + i; sums[b] != s {
			e.stats.DigestMismatches++
			repair.AddCoarse(b, antiEntropyBuckets)
		}
	}
	if !repair.Empty() {
		e.log.Info("pfsync: anti-entropy mismatch, repairing", "peer", uint32(p.id), "buckets", repair.Len())
		e.startBulk(p, d.Creator, repair, now)
	}
}

// comparable reports whether we hold p's whole stream up to the frame with
// header h, so that our copy of what p sent can be compared with a digest
// p made when it sent that frame.
func (e *Engine) comparable(p *peer, h wire.Header) bool {
	return p.next != 0 && p.next > h.Seq && !p.hasGap()
}

// resync resynchronises with p after frames of its stream were lost for
// good. If a bulk sync from p once completed, it asks p for the digest of
// everything p holds and fetches only the buckets that differ
// (wholeDigest); if p does not answer within Config.BulkTimeout, or we
// never held p's table, it fetches the whole table.
func (e *Engine) resync(p *peer, now time.Time) {
	if !p.synced {
		e.requestBulk(p, now)
		return
	}
	e.stats.Resyncs++
	e.log.Info("pfsync: resynchronising by digest", "peer", uint32(p.id))
	p.resyncAt, p.resyncGot, p.resyncRepair, p.resyncSeen = now.Add(e.cfg.BulkTimeout), 0, wire.BucketSet{}, wire.BucketSet{}
	// Our own digest asks for p's: p may compare it with its view too.
	e.sendSums(p.id, 0, 0, e.tableSums(), now)
}

// resyncTimedOut falls back to a whole-table bulk when p has not answered
// a resync's digest request in time.
func (e *Engine) resyncTimedOut(p *peer, now time.Time) {
	e.stats.ResyncTimeouts++
	e.log.Warn("pfsync: no digest from the peer, fetching its whole table", "peer", uint32(p.id),
		"buckets_compared", p.resyncGot)
	p.resyncAt = time.Time{}
	e.requestBulk(p, now)
}

// tableSums returns the sums of every record held, in wire.Buckets
// buckets.
func (e *Engine) tableSums() []uint64 {
	sums := make([]uint64, wire.Buckets)
	for id, ent := range e.store {
		sums[wire.BucketOf(id)] += record.Hash(id, ent.ver)
	}
	return sums
}

// wholeDigest handles a part of p's whole-table digest. A request (no
// DigestReply flag) is answered with ours, once, on its first part; the
// parts of an answer to our resync are compared with what we hold, and
// once all are in, the buckets that differ are fetched from p. Parts are
// compared as they come (each against our table then): a part of p's
// stream in between changes both sides alike.
func (e *Engine) wholeDigest(p *peer, h wire.Header, d *wire.Digest, now time.Time) {
	if d.Buckets != wire.Buckets {
		e.stats.BadValue++
		return
	}
	if !e.digestPart(d) {
		return
	}
	if d.Flags&wire.DigestReply == 0 {
		if d.First != 0 {
			return // answered on the first part
		}
		// Answering costs a pass over the table and a few frames: at
		// most once per heartbeat for each peer (a resync asks once; a
		// request left unanswered falls back to a bulk).
		if !p.digestAnswered.IsZero() && now.Sub(p.digestAnswered) < e.cfg.Heartbeat {
			e.stats.DigestsRefused++
			return
		}
		p.digestAnswered = now
		e.sendSums(p.id, 0, wire.DigestReply, e.tableSums(), now)
		return
	}
	if p.resyncAt.IsZero() || !e.comparable(p, h) {
		// Not asked for, or our copy is incomplete: the deadline falls
		// back to a whole-table bulk.
		return
	}
	part := digestBuckets(d)
	if part.Without(p.resyncSeen) != part {
		// Buckets of this resync compared already: a repeat.
		e.stats.DigestsRefused++
		return
	}
	p.resyncSeen = p.resyncSeen.Union(part)
	sums := e.tableSums()
	for i, s := range d.Sums {
		if b := int(d.First) + i; sums[b] != s {
			p.resyncRepair.Add(b)
		}
	}
	if p.resyncGot += len(d.Sums); p.resyncGot < wire.Buckets {
		return // more parts to come
	}
	repair := p.resyncRepair
	p.resyncAt, p.resyncRepair = time.Time{}, wire.BucketSet{}
	if repair.Empty() {
		return
	}
	e.stats.ResyncBuckets += uint64(repair.Len())
	e.log.Info("pfsync: resync digest differs, fetching those buckets", "peer", uint32(p.id), "buckets", repair.Len())
	e.startBulk(p, 0, repair, now)
}

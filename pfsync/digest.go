package pfsync

import (
	"time"

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

// antiEntropy is the node's schedule of anti-entropy digests and of the
// tombstone scan. Used under Engine.mu.
type antiEntropy struct {
	interval     time.Duration // Config.AntiEntropy; 0: no digests
	tombScan     time.Duration // between two scans of the tombstones
	nextDigest   time.Time
	nextTombScan time.Time
}

// start schedules the first digest and scan from now.
func (a *antiEntropy) start(now time.Time) {
	if a.interval > 0 {
		a.nextDigest = now.Add(a.interval)
	}
	a.nextTombScan = now.Add(a.tombScan)
}

// due reports whether a digest and a tombstone scan are due at now,
// schedules the next ones, and adds them to w.
func (a *antiEntropy) due(now time.Time, w *wakeup) (digest, tombs bool) {
	if a.interval > 0 {
		if !now.Before(a.nextDigest) {
			a.nextDigest, digest = now.Add(a.interval), true
		}
		w.at(a.nextDigest)
	}
	if !now.Before(a.nextTombScan) {
		a.nextTombScan, tombs = now.Add(a.tombScan), true
	}
	w.at(a.nextTombScan)
	return digest, tombs
}

// digests is what a node compares of one peer's digests: a resync by
// digest in progress (Engine.resync), and the anti-entropy and whole-table
// digests the peer sent, whose parts each cost a pass over the table and
// are therefore bounded.
type digests struct {
	// A resynchronisation by digest: the deadline for p's whole-table
	// digest (zero: none awaited), the bucket sums of it compared so far
	// and the buckets found different.
	resyncAt     time.Time
	resyncGot    int
	resyncRepair wire.BucketSet
	resyncSeen   wire.BucketSet // the buckets of p's digest compared so far

	// Digests p sent: the anti-entropy buckets compared in the current
	// round (one round per Heartbeat), and when we last answered p's
	// request for our whole-table digest.
	aeRound        time.Time
	aeSeen         wire.BucketSet
	digestAnswered time.Time
}

// startResync starts waiting for the peer's whole-table digest until
// deadline.
func (d *digests) startResync(deadline time.Time) {
	d.resyncAt, d.resyncGot, d.resyncRepair, d.resyncSeen = deadline, 0, wire.BucketSet{}, wire.BucketSet{}
}

// aePart reports whether an anti-entropy part covering part may be
// compared at now: one round per round interval, and a part naming buckets
// already compared in this round is a repeat.
func (d *digests) aePart(part wire.BucketSet, now time.Time, round time.Duration) bool {
	if now.Sub(d.aeRound) >= round {
		d.aeRound, d.aeSeen = now, wire.BucketSet{}
	}
	if part.Without(d.aeSeen) != part {
		return false
	}
	d.aeSeen = d.aeSeen.Union(part)
	return true
}

// mayAnswer reports whether a request for our whole-table digest may be
// answered at now: at most once per interval.
func (d *digests) mayAnswer(now time.Time, interval time.Duration) bool {
	if !d.digestAnswered.IsZero() && now.Sub(d.digestAnswered) < interval {
		return false
	}
	d.digestAnswered = now
	return true
}

// resyncPart reports whether a part of the peer's whole-table digest
// covering part is new to this resync (not a repeat), and notes it.
func (d *digests) resyncPart(part wire.BucketSet) bool {
	if part.Without(d.resyncSeen) != part {
		return false
	}
	d.resyncSeen = d.resyncSeen.Union(part)
	return true
}

// resyncCompare compares the sums of a part of the peer's whole-table
// digest, from bucket first, with ours; once every bucket was compared it
// ends the resync and reports done with the buckets that differ.
func (d *digests) resyncCompare(first int, theirs, ours []uint64) (done bool, repair wire.BucketSet) {
	for i, s := range theirs {
		if b := first + i; ours[b] != s {
			d.resyncRepair.Add(b)
		}
	}
	if d.resyncGot += len(theirs); d.resyncGot < wire.Buckets {
		return false, repair
	}
	repair = d.resyncRepair
	d.resyncAt, d.resyncRepair = time.Time{}, wire.BucketSet{}
	return true, repair
}

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
	e.creatorSums(self, sums)
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
		e.wholeDigest(p, d, now)
		return
	}
	if d.Creator != uint32(p.id) || !p.comparable(h) || p.bulk.active() {
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
	if !p.aePart(digestBuckets(d), now, e.cfg.Heartbeat) {
		e.stats.DigestsRefused++
		return
	}
	e.creatorSums(d.Creator, sums[:])
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
	p.startResync(now.Add(e.cfg.BulkTimeout))
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

// wholeDigest handles a part of p's whole-table digest. A request (no
// DigestReply flag) is answered with ours, once, on its first part; the
// parts of an answer to our resync are compared with what we hold, and
// once all are in, the buckets that differ are fetched from p. Parts are
// compared as they come (each against our table then): a part of p's
// stream in between changes both sides alike.
func (e *Engine) wholeDigest(p *peer, d *wire.Digest, now time.Time) {
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
		if !p.mayAnswer(now, e.cfg.Heartbeat) {
			e.stats.DigestsRefused++
			return
		}
		e.sendSums(p.id, 0, wire.DigestReply, e.tableSums(), now)
		return
	}
	if p.resyncAt.IsZero() {
		return // not asked for
	}
	// Compared even while frames of p's stream sent before this answer
	// are missing: the answer leaves p right after p's latest frames (the
	// bulk request p sends on confirming us after a silence, say) and may
	// overtake them. A bucket those frames change differs and is
	// fetched; a frame lost for good starts a new resync. Waiting for a
	// stream without a gap instead dropped the answer and left the resync
	// to its deadline (Config.BulkTimeout) and a whole bulk.
	if !p.resyncPart(digestBuckets(d)) {
		// Buckets of this resync compared already: a repeat.
		e.stats.DigestsRefused++
		return
	}
	done, repair := p.resyncCompare(int(d.First), d.Sums, e.tableSums())
	if !done || repair.Empty() {
		return // more parts to come, or nothing differs
	}
	e.stats.ResyncBuckets += uint64(repair.Len())
	e.log.Info("pfsync: resync digest differs, fetching those buckets", "peer", uint32(p.id), "buckets", repair.Len())
	e.startBulk(p, 0, repair, now)
}

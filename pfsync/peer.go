package pfsync

import (
	"time"

	"github.com/gocarp/gocarp/pfsync/wire"
)

// winSize is the receive window: sequence numbers up to winSize above the
// lowest missing one are remembered individually (docs/interop.md,
// "Gaps and acknowledgements");
// a frame further ahead makes the receiver give up on the gap and ask for a
// bulk sync.
const winSize = 1024

// peer is what the engine knows about one other node: its epoch, the state
// of its reliable stream as received here, how far it acknowledged ours,
// and the bulk sync requested from it.
type peer struct {
	id        NodeID
	epoch     uint64
	boot      uint64
	retired   [4]uint64 // epochs the peer left behind: their late frames are dropped
	up        bool
	lastHeard time.Time
	// confirmed: this epoch of the peer echoed our epoch in a Hello. Until
	// then its frames may be a recording replayed to us after our restart:
	// only its Hellos and requests are read (elementHandlers), and its
	// stream and our bulk request wait.
	confirmed bool
	helloAt   time.Time // next Hello asking an unconfirmed peer for the echo
	helloSent time.Time // when askEcho last sent one (a Hello of p then needs no answer)

	// Receiving the peer's stream.
	next     uint64 // lowest sequence number not received; 0 = stream not started
	highest  uint64 // highest sequence number received or announced
	win      [winSize / 64]uint64
	ackDue   bool
	ackAt    time.Time
	nackAt   time.Time // earliest time to repeat the nack of a persisting gap
	gapSince time.Time // zero when there is no gap
	gapHigh  uint64    // highest sequence number received or announced at gapSince

	// Our stream as the peer acknowledged it.
	acked uint64

	digests // comparisons of p's digests with our table

	bulk       bulkRecv
	synced     bool // a full bulk sync from this epoch of the peer completed
	bulkFailed bool // a full bulk sync from this epoch failed every retry
	stats      PeerStats
}

// peerTimers are the intervals a peer's tick works with.
type peerTimers struct {
	dead time.Duration // silence after which the peer is down
	gap  time.Duration // how long a gap may wait for retransmissions
}

// peerEvents are what a peer's tick asks the engine to do: the peer keeps
// its own state, the engine owns the frames, the store and the logs.
type peerEvents interface {
	// peerDown: p just went silent for too long (p.up is false).
	peerDown(p *peer, now time.Time)
	// askEcho: p is not confirmed and its Hello is due.
	askEcho(p *peer, now time.Time)
	// gapGivenUp: p could not fill the gap in its stream in time.
	gapGivenUp(p *peer, now time.Time)
	// resyncTimedOut: p did not answer a resync's digest request in time.
	resyncTimedOut(p *peer, now time.Time)
	// completeBulk: every range of the bulk from p settled; only the end
	// marker is missing, and there is nothing left to ask for.
	completeBulk(p *peer, now time.Time)
	// bulkTimedOut: the bulk from p made no progress in time.
	bulkTimedOut(p *peer, now time.Time)
}

// tick runs p's timers at now: it tells ev what is due, adds to w when p
// must be looked at next, and reports whether an ack of p's stream is due
// and whether p must be forgotten.
func (p *peer) tick(now time.Time, t peerTimers, ev peerEvents, w *wakeup) (ackDue, forget bool) {
	if p.up && now.Sub(p.lastHeard) >= t.dead {
		p.up = false
		if p.bulk.active() {
			p.bulk = bulkRecv{}
		}
		p.resyncAt = time.Time{}
		ev.peerDown(p, now)
	}
	if !p.up {
		// A peer that never proved it is live (a recording, or forged in
		// Insecure mode) is forgotten: it holds no state of ours, and a
		// real node says hello again.
		return false, !p.confirmed
	}
	w.at(p.lastHeard.Add(t.dead))
	if !p.confirmed {
		if !now.Before(p.helloAt) {
			ev.askEcho(p, now)
		}
		w.at(p.helloAt)
		return false, false
	}
	if p.hasGap() && !p.gapSince.IsZero() && now.Sub(p.gapSince) >= t.gap {
		ev.gapGivenUp(p, now)
	}
	if p.hasGap() {
		if !now.Before(p.nackAt) {
			p.ackDue, p.ackAt = true, now
		} else {
			w.at(p.nackAt)
		}
		w.at(p.gapSince.Add(t.gap))
	}
	if p.ackDue {
		if !now.Before(p.ackAt) {
			ackDue = true
		} else {
			w.at(p.ackAt)
		}
	}
	if !p.resyncAt.IsZero() {
		if !now.Before(p.resyncAt) {
			ev.resyncTimedOut(p, now)
		} else {
			w.at(p.resyncAt)
		}
	}
	if p.bulk.active() {
		if !now.Before(p.bulk.deadline) {
			switch {
			case p.bulk.left().Empty():
				ev.completeBulk(p, now)
			case p.hasGap() && !p.gapSince.IsZero() && len(p.bulk.marks) > 0:
				// Marks wait behind frames being recovered: the gap is
				// filled or given up within t.gap, and they settle then.
				p.bulk.deadline = p.gapSince.Add(t.gap)
			default:
				ev.bulkTimedOut(p, now)
			}
		}
		if p.bulk.active() {
			w.at(p.bulk.deadline)
		}
	}
	return ackDue, false
}

// wakeup collects the earliest of the times something is due.
type wakeup struct{ next time.Time }

// at makes the wakeup no later than t (zero: nothing due).
func (w *wakeup) at(t time.Time) {
	if !t.IsZero() && t.Before(w.next) {
		w.next = t
	}
}

func (p *peer) bit(seq uint64) (int, uint64) {
	i := seq % winSize
	return int(i / 64), 1 << (i % 64)
}

// resetStream forgets the peer's stream (new epoch, or too big a gap).
func (p *peer) resetStream() {
	p.next, p.highest = 0, 0
	p.win = [winSize / 64]uint64{}
	p.gapSince = time.Time{}
}

// accept registers sequenced frame seq and reports whether it is new.
func (p *peer) accept(seq uint64) (isNew, jumped bool) {
	if p.next == 0 {
		p.next = seq
	}
	if seq < p.next {
		return false, false
	}
	if seq-p.next >= winSize {
		// Too far ahead: the frames in between are given up on.
		p.resetStream()
		p.next = seq
		jumped = true
	}
	w, b := p.bit(seq)
	if p.win[w]&b != 0 {
		return false, jumped
	}
	p.win[w] |= b
	p.highest = max(p.highest, seq)
	for {
		w, b := p.bit(p.next)
		if p.win[w]&b == 0 {
			break
		}
		p.win[w] &^= b
		p.next++
	}
	return true, jumped
}

// announce notes that the peer has sent frames up to seq (the header of
// its unsequenced frames), which reveals a loss at the tail of its stream.
// It reports whether the gap is too big to recover.
func (p *peer) announce(seq uint64) bool {
	if p.next == 0 {
		// Joined mid-stream: earlier frames are covered by the bulk sync.
		p.next = seq + 1
		return false
	}
	if seq < p.next {
		return false
	}
	if seq-p.next >= winSize {
		p.resetStream()
		p.next = seq + 1
		return true
	}
	p.highest = max(p.highest, seq)
	return false
}

func (p *peer) hasGap() bool { return p.next != 0 && p.highest >= p.next }

// gaps appends the missing ranges between next and highest, at most max.
func (p *peer) gaps(dst []wire.SeqRange, maxRanges int) []wire.SeqRange {
	if !p.hasGap() {
		return dst
	}
	inGap := false
	for s := p.next; s <= p.highest && s < p.next+winSize; s++ {
		w, b := p.bit(s)
		missing := p.win[w]&b == 0
		switch {
		case missing && !inGap:
			if len(dst) == maxRanges {
				return dst
			}
			dst = append(dst, wire.SeqRange{First: s, Last: s})
			inGap = true
		case missing:
			dst[len(dst)-1].Last = s
		default:
			inGap = false
		}
	}
	return dst
}

// skipGap gives up on the frames missing up to seq — every frame missing
// since the gap was noticed, which the peer could not resend in time — and
// moves on: the receiver repairs with a bulk sync. A gap noticed later
// starts its own timeout.
func (p *peer) skipGap(seq uint64, now time.Time) {
	for p.next <= seq || p.next <= p.highest {
		w, b := p.bit(p.next)
		if p.win[w]&b == 0 && p.next > seq {
			break
		}
		p.win[w] &^= b
		p.next++
	}
	if p.next > p.highest {
		p.gapSince = time.Time{}
	} else {
		p.gapSince, p.gapHigh = now, p.highest
	}
}

func (p *peer) isRetired(epoch uint64) bool {
	for _, r := range p.retired {
		if r == epoch {
			return true
		}
	}
	return false
}

// peerSet is the peers this node knows, by node ID.
type peerSet map[NodeID]*peer

// up returns how many peers are up.
func (ps peerSet) up() int {
	n := 0
	for _, p := range ps {
		if p.up {
			n++
		}
	}
	return n
}

// unconfirmed returns how many peers did not echo our epoch yet.
func (ps peerSet) unconfirmed() int {
	n := 0
	for _, p := range ps {
		if !p.confirmed {
			n++
		}
	}
	return n
}

// unacked returns how many confirmed peers that are up have not
// acknowledged our stream up to seq.
func (ps peerSet) unacked(seq uint64) int {
	n := 0
	for _, p := range ps {
		if p.up && p.confirmed && p.acked < seq {
			n++
		}
	}
	return n
}

// minAcked returns the lowest sequence number every peer that is up
// acknowledged, at most last.
func (ps peerSet) minAcked(last uint64) uint64 {
	for _, p := range ps {
		if p.up && p.acked < last {
			last = p.acked
		}
	}
	return last
}

// comparable reports whether we hold p's whole stream up to the frame with
// header h, so that our copy of what p sent can be compared with a digest
// p made when it sent that frame.
func (p *peer) comparable(h wire.Header) bool {
	return p.next != 0 && p.next > h.Seq && !p.hasGap()
}

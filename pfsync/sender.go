package pfsync

import (
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// sender is this node's outgoing stream: the records and control elements
// queued for the next frame, when that frame is due, the sequence numbers,
// the frames kept for retransmission until every peer acknowledged them,
// the token bucket that paces bulk frames, and the buffers a frame is built
// and sealed in. The engine builds the frames (it knows the records and the
// peers); the sender keeps the state between them. Used under Engine.mu.
type sender struct {
	q            queue
	ctlq         []ctl
	requested    map[record.ID]struct{} // IDs of the Requests in ctlq
	flushAt      time.Time              // zero: nothing queued
	nextSeq      uint64
	ring         ring
	nackSteps    uint64 // resend-queue slots visited for nacks: the work an Ack cost (tests bound it)
	lastSent     time.Time
	tokens       float64
	tokenAt      time.Time
	ackRequested bool          // the frames being flushed ask for an acknowledgement at once (UpsertSync)
	ackSignal    chan struct{} // closed when acknowledgements progress, if an UpsertSync waits

	b      wire.Builder
	frame  []byte
	sealed []byte
}

func newSender(mtu int) sender {
	return sender{q: newQueue(), nextSeq: 1, frame: make([]byte, 0, mtu)}
}

// ctl is a queued control element sent in the reliable stream.
type ctl struct {
	kind    wire.Kind
	id      record.ID
	gen     uint64
	creator uint32
	buckets wire.BucketSet
}

// enqueue applies op to id's slot; size is the encoded size estimate of
// its element. It reports false when the change was dropped: maxPending
// records are queued already and id is not one of them.
func (s *sender) enqueue(id record.ID, o op, announced bool, size, maxPending int) bool {
	sl := coalesce(s.q.pend[id], o, announced)
	if sl != slotNone && s.q.len() >= maxPending {
		if _, queued := s.q.pend[id]; !queued {
			return false
		}
	}
	s.q.set(id, sl, size)
	return true
}

// unqueueUpsert drops a live copy of id queued for sending (a peer deleted
// the record: its copy must not leave after the delete).
func (s *sender) unqueueUpsert(id record.ID) {
	if s.q.pend[id] == slotUpsert {
		s.q.set(id, slotNone, 0)
	}
}

// request queues a Request for id unless one is queued and not sent yet.
// It reports whether it was queued and whether it was dropped because
// maxPending requests are.
func (s *sender) request(id record.ID, maxPending int) (queued, dropped bool) {
	if _, ok := s.requested[id]; ok {
		return false, false
	}
	if len(s.requested) >= maxPending {
		return false, true
	}
	if s.requested == nil {
		s.requested = make(map[record.ID]struct{})
	}
	s.requested[id] = struct{}{}
	s.ctlq = append(s.ctlq, ctl{kind: wire.KindRequest, id: id})
	return true, false
}

// nextCtl returns the first queued control element, if any.
func (s *sender) nextCtl() (ctl, bool) {
	if len(s.ctlq) == 0 {
		return ctl{}, false
	}
	return s.ctlq[0], true
}

// ctlTaken removes the first queued control element: it was added to a
// frame or cannot be.
func (s *sender) ctlTaken() {
	c := s.ctlq[0]
	s.ctlq = s.ctlq[1:]
	if c.kind == wire.KindRequest {
		delete(s.requested, c.id) // a new miss may ask again
	}
	if len(s.ctlq) == 0 {
		s.ctlq = nil
	}
}

// pending reports whether anything waits for a sequenced frame.
func (s *sender) pending() bool { return s.q.len() > 0 || len(s.ctlq) > 0 }

// flushBy makes the next flush happen no later than at and returns when
// it is due.
func (s *sender) flushBy(at time.Time) time.Time {
	if s.flushAt.IsZero() || at.Before(s.flushAt) {
		s.flushAt = at
	}
	return s.flushAt
}

// flushDue reports whether the flush planned is due at now.
func (s *sender) flushDue(now time.Time) bool { return !s.flushAt.IsZero() && !now.Before(s.flushAt) }

// flushed resets the queue's bookkeeping once everything queued left.
func (s *sender) flushed() {
	if s.q.len() == 0 {
		s.q.order, s.q.pos, s.q.bytes = s.q.order[:0], 0, 0
	}
}

// seq takes the next sequence number for a frame about to be sent and
// keeps f for retransmission.
func (s *sender) sequenced(f sentFrame) {
	s.nextSeq++
	s.ring.push(f)
}

// last is the last sequence number used (unsequenced frames carry it).
func (s *sender) last() uint64 { return s.nextSeq - 1 }

// heartbeatDue reports whether nothing was sent for interval.
func (s *sender) heartbeatDue(now time.Time, interval time.Duration) bool {
	return now.Sub(s.lastSent) >= interval
}

// trim drops the frames up to minAck (every peer up acknowledged them) and
// the oldest ones beyond limit references, and returns how many
// references it dropped for the limit.
func (s *sender) trim(minAck uint64, limit int) (dropped uint64) {
	for s.ring.len() > 0 && s.ring.frames[s.ring.off].seq <= minAck {
		s.ring.pop()
	}
	for s.ring.refs > limit && s.ring.len() > 0 {
		dropped += uint64(s.ring.pop())
	}
	return dropped
}

// held returns the sequence numbers of the first and last frames held for
// resending; ok is false when none is held.
func (s *sender) held() (first, last uint64, ok bool) {
	n := s.ring.len()
	if n == 0 {
		return 0, 0, false
	}
	first = s.ring.frames[s.ring.off].seq
	return first, first + uint64(n) - 1, true
}

// startTokens fills the token bucket: burst frames may leave at once.
func (s *sender) startTokens(now time.Time, burst int) {
	s.tokens, s.tokenAt = float64(burst), now
}

// refill adds the tokens earned since the last refill at rate per second,
// up to burst.
func (s *sender) refill(now time.Time, rate float64, burst int) {
	s.tokens = min(float64(burst), s.tokens+now.Sub(s.tokenAt).Seconds()*rate)
	s.tokenAt = now
}

// tokenDue returns when the next whole token is earned at rate.
func (s *sender) tokenDue(now time.Time, rate float64) time.Time {
	wait := time.Duration((1 - s.tokens) / rate * float64(time.Second))
	return now.Add(max(wait, time.Microsecond))
}

// ackProgress wakes the UpsertSync calls waiting for acknowledgements: a
// peer acknowledged more of our stream, or went down.
func (s *sender) ackProgress() {
	if s.ackSignal != nil {
		close(s.ackSignal)
		s.ackSignal = nil
	}
}

// ackWait returns the channel ackProgress closes.
func (s *sender) ackWait() <-chan struct{} {
	if s.ackSignal == nil {
		s.ackSignal = make(chan struct{})
	}
	return s.ackSignal
}

// sentFrame is a sequenced frame kept until every peer acknowledged it. It
// holds references to the records it carried, not its bytes: a
// retransmission re-encodes their current state under the same sequence
// number (conntrackd FT-FW's resend queue holds cache objects for the same
// reason: a retransmission is never stale).
type sentFrame struct {
	seq      uint64
	ids      []record.ID
	ctl      []ctl
	pooled   bool // ids came from the pool (bulk frames alias the job's snapshot)
	bulk     bool // the frame is part of a bulk transfer: it starts with BulkStart
	bulkGen  uint64
	bulkExp  uint64
	hasMark  bool // it carries mark
	mark     wire.BulkMark
	end      bool // it carries the BulkEnd
	endDig   record.Digest
	resentAt time.Time
}

// ring is the resend queue: frames[i].seq == frames[0].seq + i.
type ring struct {
	frames []sentFrame
	off    int
	refs   int // record references and control elements held (ResendLimit bounds them)
	pool   [][]record.ID
}

func (r *ring) len() int { return len(r.frames) - r.off }

func (r *ring) at(seq uint64) *sentFrame {
	if r.len() == 0 {
		return nil
	}
	first := r.frames[r.off].seq
	if seq < first || seq-first >= uint64(r.len()) {
		return nil
	}
	return &r.frames[r.off+int(seq-first)]
}

func (r *ring) push(f sentFrame) {
	r.frames = append(r.frames, f)
	r.refs += len(f.ids) + len(f.ctl)
}

// pop drops the oldest frame and returns how many references it held.
// Control elements count: frames of requests alone, which a peer's input
// can make us send, must not pile up without bound while a peer that is
// up does not acknowledge them.
func (r *ring) pop() int {
	f := &r.frames[r.off]
	n := len(f.ids) + len(f.ctl)
	r.refs -= n
	if f.pooled && len(r.pool) < 256 {
		r.pool = append(r.pool, f.ids[:0])
	}
	*f = sentFrame{}
	r.off++
	if r.off == len(r.frames) {
		r.frames, r.off = r.frames[:0], 0
	} else if r.off > 1024 && r.off > len(r.frames)/2 {
		r.frames = append(r.frames[:0], r.frames[r.off:]...)
		r.off = 0
	}
	return n
}

func (r *ring) getIDs() []record.ID {
	if n := len(r.pool); n > 0 {
		ids := r.pool[n-1]
		r.pool = r.pool[:n-1]
		return ids
	}
	return make([]record.ID, 0, 64)
}

package pfsync

import (
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestSenderQueueLimit: at maxPending queued records a new record's change
// is refused, while a queued record's change still applies.
func TestSenderQueueLimit(t *testing.T) {
	s := newSender(1500)
	a, b, c := record.ID{Creator: 1, Num: 1}, record.ID{Creator: 1, Num: 2}, record.ID{Creator: 1, Num: 3}
	if !s.enqueue(a, opUpsert, false, 80, 2) || !s.enqueue(b, opUpsert, false, 80, 2) {
		t.Fatal("refused below the limit")
	}
	if s.enqueue(c, opUpsert, false, 80, 2) {
		t.Error("a third record queued with maxPending 2")
	}
	if !s.enqueue(a, opDelete, true, 16, 2) || s.q.pend[a] != slotDelete {
		t.Errorf("a queued record's delete: slot %d, want slotDelete", s.q.pend[a])
	}
	s.unqueueUpsert(a) // a delete stays
	s.unqueueUpsert(b)
	if s.q.pend[a] != slotDelete || s.q.len() != 1 {
		t.Errorf("unqueueUpsert: %d queued, a in slot %d; want 1, slotDelete", s.q.len(), s.q.pend[a])
	}
}

// TestSenderRequests: one Request per record until it is taken into a
// frame, at most maxPending, and a record may be asked for again after.
func TestSenderRequests(t *testing.T) {
	s := newSender(1500)
	id := record.ID{Creator: 2, Num: 1}
	if q, d := s.request(id, 2); !q || d {
		t.Fatalf("first request: queued %v dropped %v", q, d)
	}
	if q, d := s.request(id, 2); q || d {
		t.Errorf("repeated request: queued %v dropped %v, want neither", q, d)
	}
	s.request(record.ID{Creator: 2, Num: 2}, 2)
	if _, d := s.request(record.ID{Creator: 2, Num: 3}, 2); !d {
		t.Error("a third request was not dropped at maxPending 2")
	}
	c, ok := s.nextCtl()
	if !ok || c.kind != wire.KindRequest || c.id != id {
		t.Fatalf("nextCtl = %+v, %v", c, ok)
	}
	s.ctlTaken()
	if q, _ := s.request(id, 2); !q {
		t.Error("a record whose request left cannot be asked for again")
	}
}

// TestSenderFlushTiming: the earliest flush asked for wins until the
// flush, and it is due from then on.
func TestSenderFlushTiming(t *testing.T) {
	var s sender
	t0 := time.Unix(1_700_000_000, 0)
	if s.flushDue(t0) {
		t.Error("due with nothing planned")
	}
	s.flushBy(t0.Add(100 * time.Millisecond))
	if at := s.flushBy(t0.Add(time.Second)); !at.Equal(t0.Add(100 * time.Millisecond)) {
		t.Errorf("a later flush moved the plan to %v", at.Sub(t0))
	}
	if at := s.flushBy(t0.Add(time.Millisecond)); !at.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("an earlier flush did not: %v", at.Sub(t0))
	}
	if s.flushDue(t0) || !s.flushDue(t0.Add(time.Millisecond)) {
		t.Error("flushDue before and at the plan")
	}
}

// TestSenderRing: frames leave the resend queue once acknowledged, the
// oldest first beyond the limit.
func TestSenderRing(t *testing.T) {
	s := newSender(1500)
	for i := range 5 {
		s.sequenced(sentFrame{seq: s.nextSeq, ids: make([]record.ID, 2), ctl: make([]ctl, i%2)})
	}
	if s.last() != 5 || s.ring.len() != 5 || s.ring.refs != 12 {
		t.Fatalf("after 5 frames: last %d, held %d, refs %d", s.last(), s.ring.len(), s.ring.refs)
	}
	if first, last, ok := s.held(); !ok || first != 1 || last != 5 {
		t.Errorf("held: %d-%d %v, want 1-5", first, last, ok)
	}
	if d := s.trim(2, 100); d != 0 || s.ring.len() != 3 || s.ring.at(3) == nil || s.ring.at(2) != nil {
		t.Errorf("trim(2): dropped %d, held %d", d, s.ring.len())
	}
	if d := s.trim(0, 3); d != 5 || s.ring.len() != 1 || s.ring.at(5) == nil {
		t.Errorf("trim beyond 3 refs: dropped %d refs, held %d frames (want 5, 1)", d, s.ring.len())
	}
	s.trim(5, 3)
	if _, _, ok := s.held(); ok {
		t.Error("held with every frame acknowledged")
	}
}

// TestSenderTokens: the bucket starts full, refills at rate up to burst,
// and says when the next token is earned.
func TestSenderTokens(t *testing.T) {
	var s sender
	t0 := time.Unix(1_700_000_000, 0)
	s.startTokens(t0, 4)
	s.tokens -= 4
	s.refill(t0.Add(250*time.Millisecond), 10, 4)
	if s.tokens < 2.49 || s.tokens > 2.51 {
		t.Errorf("after 250 ms at 10/s: %.2f tokens, want 2.5", s.tokens)
	}
	s.refill(t0.Add(time.Hour), 10, 4)
	if s.tokens != 4 {
		t.Errorf("after an hour: %.2f tokens, want the burst, 4", s.tokens)
	}
	s.tokens = 0.5
	if d := s.tokenDue(t0, 10).Sub(t0); d != 50*time.Millisecond {
		t.Errorf("half a token short at 10/s: due in %v, want 50ms", d)
	}
}

// TestSenderAckSignal: waiters are woken once per progress, and a later
// wait gets a new channel.
func TestSenderAckSignal(t *testing.T) {
	var s sender
	s.ackProgress() // nobody waits: nothing to do
	w := s.ackWait()
	if s.ackWait() != w {
		t.Error("two waiters got different channels")
	}
	s.ackProgress()
	select {
	case <-w:
	default:
		t.Fatal("waiter not woken")
	}
	if s.ackWait() == w {
		t.Error("a new wait got the closed channel")
	}
}

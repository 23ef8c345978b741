package pfsync

import (
	"errors"
	"fmt"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// frameIn is what an element handler knows of the frame being read: the
// peer that sent it, its header, and whether a BulkStart made it a frame
// of the bulk this node expects from that peer.
type frameIn struct {
	p      *peer
	h      wire.Header
	inBulk bool
	now    time.Time
}

// sequenced reports whether the frame belongs to the peer's reliable
// stream.
func (f *frameIn) sequenced() bool { return f.h.Flags&wire.FlagUnsequenced == 0 }

// elementHandler is the engine's handling of one element kind.
type elementHandler struct {
	// unconfirmed: the element is read from a peer not confirmed yet. Only
	// elements that cannot change our state are: a Hello, and the
	// requests for our records (a Request or BulkRequest makes us send
	// what we hold, whoever asked; of the Digests, only a request for our
	// whole-table digest, which onDigest sorts out). A recording replayed
	// to us could otherwise bring back records deleted since; the bulk
	// sync that follows the confirmation brings everything the peer holds.
	unconfirmed bool
	// handle reads the element from e.rd and applies it. An error means a
	// malformed or forbidden element: it is counted (Stats.BadValue) and
	// logged, and the next element is read; errUnconfirmed means one the
	// peer may not send before it is confirmed (Stats.Unconfirmed).
	handle func(e *Engine, f *frameIn) error
}

// elementHandlers is the handling of every element kind this engine
// reads, keyed by wire kind; a kind without a handler is skipped. Adding
// a kind: see the checklist in the documentation of package pfsync/wire.
var elementHandlers = [...]elementHandler{
	wire.KindInsert:      {handle: onRecord},
	wire.KindUpdate:      {handle: onRecord},
	wire.KindUpdateC:     {handle: onDelta},
	wire.KindDelete:      {handle: onDelete},
	wire.KindClear:       {handle: onClear},
	wire.KindRequest:     {handle: onRequest, unconfirmed: true},
	wire.KindInsertAck:   {handle: ignoreElement},
	wire.KindBulkRequest: {handle: onBulkRequest, unconfirmed: true},
	wire.KindBulkStart:   {handle: onBulkStart},
	wire.KindBulkEnd:     {handle: onBulkEnd},
	wire.KindAck:         {handle: onAck},
	wire.KindHello:       {handle: onHello, unconfirmed: true},
	wire.KindHeartbeat:   {handle: ignoreElement},
	wire.KindDigest:      {handle: onDigest, unconfirmed: true},
	wire.KindBulkMark:    {handle: onBulkMark},
}

// elements processes the elements of the frame in e.rd, from p.
func (e *Engine) elements(p *peer, h wire.Header, now time.Time) {
	// The handlers are called through the table: a frameIn of their own
	// would escape to the heap, one allocation per frame.
	f := &e.fin
	*f = frameIn{p: p, h: h, now: now}
	dropped := false
	for e.rd.Next() {
		k := e.rd.Kind()
		var eh elementHandler
		if int(k) < len(elementHandlers) {
			eh = elementHandlers[k]
		}
		if !p.confirmed && !eh.unconfirmed {
			dropped = true
			continue
		}
		if eh.handle == nil {
			continue
		}
		if err := eh.handle(e, f); err != nil {
			if errors.Is(err, errUnconfirmed) {
				dropped = true
				continue
			}
			e.badValue(p, k, err)
		}
	}
	if dropped {
		e.stats.Unconfirmed++
	}
	*f = frameIn{} // hold no peer
}

// badValue counts an element that does not decode or may not be applied,
// and logs it at most once per ratelog.DefaultEvery and kind: a peer (or
// anyone, without a Sealer) sending garbage must not flood the log.
func (e *Engine) badValue(p *peer, k wire.Kind, err error) {
	e.stats.BadValue++
	if held, ok := e.inputLogs.Allow(k, time.Now()); ok {
		e.log.Warn("pfsync: bad element", "peer", uint32(p.id), "kind", k.String(), "err", err, "suppressed", held)
	}
}

// ignoreElement reads nothing: liveness is any frame, and deferral is
// acknowledged by frame (UpsertSync), not by InsertAck.
func ignoreElement(*Engine, *frameIn) error { return nil }

func onRecord(e *Engine, f *frameIn) error {
	if err := e.rd.Record(&e.in); err != nil {
		return err
	}
	if err := e.in.Validate(); err != nil {
		return err
	}
	if f.inBulk {
		f.p.bulk.add(e.in.ID)
	}
	e.remoteRecord(&e.in, e.rd.Raw(), f.now)
	return nil
}

func onDelta(e *Engine, f *frameIn) error {
	var d record.Delta
	if err := e.rd.Delta(&d); err != nil {
		return err
	}
	e.remoteDelta(f.p, &d, f.now)
	return nil
}

func onDelete(e *Engine, f *frameIn) error {
	d, err := e.rd.Delete()
	if err != nil {
		return err
	}
	if f.inBulk {
		f.p.bulk.add(d.ID)
	}
	e.remoteDelete(d, f.now)
	return nil
}

// errNotCreator refuses a Clear of records the sender did not create.
var errNotCreator = errors.New("pfsync: clear of another node's records")

func onClear(e *Engine, f *frameIn) error {
	c, err := e.rd.Clear()
	if err != nil {
		return err
	}
	if c.Creator != uint32(f.p.id) {
		// Only a record's creator may clear its records: a peer clearing
		// ours (or a third node's) would wipe live flows — from our own
		// dataplane's table too.
		return fmt.Errorf("%w: creator %d", errNotCreator, c.Creator)
	}
	e.remoteClear(c, f.now)
	return nil
}

func onRequest(e *Engine, f *frameIn) error {
	r, err := e.rd.Request()
	if err != nil {
		return err
	}
	e.answerRequest(r.ID, f.now)
	return nil
}

func onBulkRequest(e *Engine, f *frameIn) error {
	r, err := e.rd.BulkRequest()
	if err != nil {
		return err
	}
	e.bulkRequested(f.p, r, f.now)
	return nil
}

func onBulkStart(e *Engine, f *frameIn) error {
	s, err := e.rd.BulkStart()
	if err != nil {
		return err
	}
	f.inBulk = e.bulkFrame(f.p, s, f.now)
	return nil
}

func onBulkEnd(e *Engine, f *frameIn) error {
	be, err := e.rd.BulkEnd()
	if err != nil {
		return err
	}
	f.p.bulk.ended(be, f.h.Seq)
	return nil
}

// errTooManyMarks refuses a bulk mark beyond the possible: a mark covers a
// bucket at least, so an attempt has no more marks than buckets.
var errTooManyMarks = errors.New("pfsync: more bulk marks than buckets")

func onBulkMark(e *Engine, f *frameIn) error {
	m, err := e.rd.BulkMark()
	if err != nil {
		return err
	}
	if f.sequenced() && !f.p.bulk.mark(f.h.Seq, m) {
		return errTooManyMarks
	}
	return nil
}

func onAck(e *Engine, f *frameIn) error {
	if err := e.rd.Ack(&e.ack); err != nil {
		return err
	}
	if NodeID(e.ack.Peer) == e.cfg.Node && e.ack.Epoch == e.epoch {
		e.acked(f.p, &e.ack, f.now)
	}
	return nil
}

func onHello(e *Engine, f *frameIn) error {
	hl, err := e.rd.Hello()
	if err != nil {
		return err
	}
	e.hello(f.p, hl, f.h.Seq, f.now)
	return nil
}

// errUnconfirmed is what a handler reading a kind that a peer not yet
// confirmed may send only in some forms returns for the other forms: the
// element is ignored and counted like the kinds it may not send at all.
var errUnconfirmed = errors.New("pfsync: element from a peer not confirmed")

func onDigest(e *Engine, f *frameIn) error {
	if err := e.rd.Digest(&e.dig); err != nil {
		return err
	}
	if !f.p.confirmed && (e.dig.Creator != 0 || e.dig.Flags&wire.DigestReply != 0) {
		// Only a request for our whole-table digest is read from a peer
		// not confirmed: answering it sends what we hold, like a
		// BulkRequest. A node that sees us back after a silence sends
		// that request just before it answers our Hello, which confirms
		// it: after RemovePeer and AddPeer, or once we forgot the silent
		// node, the request arrives while it is not confirmed. Ignored,
		// the node would miss what changed until its resync timed out
		// (Config.BulkTimeout) and fell back to a whole bulk.
		return errUnconfirmed
	}
	e.remoteDigest(f.p, f.h, &e.dig, f.now)
	return nil
}

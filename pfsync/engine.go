package pfsync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/internal/ratelog"
	"github.com/gocarp/gocarp/internal/recvloop"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// ErrClosed is returned by the methods of an Engine after Close.
var ErrClosed = errors.New("pfsync: engine closed")

// errExpired is returned by commit for a record whose lifetime ran out.
var errExpired = errors.New("pfsync: record expired")

// Engine replicates records between the nodes of a cluster. The embedder
// reports its own changes with Upsert and Delete; the engine sends them to
// every peer, applies the peers' changes to the Table, keeps every peer's
// view reliable (sequence numbers, acks, nacks, retransmission of the
// current state), runs the bulk sync of joining nodes and the anti-entropy
// exchange, and exposes a CARP demotion until it is in sync.
//
// Its methods may be called concurrently.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	tr     Transport
	sealer Sealer
	ids    *record.IDAllocator
	epoch  uint64
	boot   uint64
	mtu    int // plaintext frame budget: Transport.MTU() minus the Sealer's overhead
	lifecycle

	// mu guards everything below (but syncState.demMu, taken before it),
	// and lifecycle's started, closed and wake. Each owner keeps its own
	// state and is tested on its own; the engine coordinates them (see
	// "Inside the engine" in the package documentation).
	mu sync.Mutex
	records
	sender
	peers peerSet
	// removed are the nodes RemovePeer forgot: their frames are dropped
	// until AddPeer.
	removed map[NodeID]struct{}
	bulk    bulkOut
	ae      antiEntropy
	syncState
	tableWriter
	stats Stats
	inputBufs
}

// lifecycle is the engine's goroutines and their signals.
type lifecycle struct {
	kick    chan struct{} // wakes the timer loop
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup
	stop    sync.Once
	wake    time.Time // when the timer loop plans to wake (under mu)
	started bool      // under mu
	closed  bool      // under mu
}

// tableWriter is what the engine keeps to write to the Table.
type tableWriter struct {
	batch     BatchTable              // Config.Table, if it takes batches
	commitq   []record.ID             // CommitDirect with a BatchTable: the changes of the frame being read
	batchRecs []record.Record         // commitBatch's buffers
	batchIDs  []record.ID             //
	batchErrs []error                 //
	tableLogs ratelog.Limiter[string] // "table refused" lines, by operation
}

// inputBufs is the scratch space of received frames, used under mu.
type inputBufs struct {
	rd        wire.Reader
	opened    []byte
	scratch   record.Record
	in        record.Record
	ack       wire.Ack
	dig       wire.Digest
	fin       frameIn                    // the frame whose elements are being read
	inputLogs ratelog.Limiter[wire.Kind] // "bad element" lines, by kind
}

// New validates cfg and returns an engine; Start starts it. The engine
// takes ownership of cfg.Transport (Close closes it).
func New(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	overhead := 0
	if c.Sealer != nil {
		overhead = c.Sealer.Overhead()
	}
	mtu := min(c.Transport.MTU()-overhead, wire.MaxFrameLen)
	if mtu < wire.MinMTU {
		return nil, fmt.Errorf("%w: Transport MTU %d minus Sealer overhead %d is below the minimum frame of %d bytes", errConfig, c.Transport.MTU(), overhead, wire.MinMTU)
	}
	now := time.Now()
	ids, err := record.NewIDAllocator(uint32(c.Node), now)
	if err != nil {
		return nil, fmt.Errorf("pfsync: %w", err)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("pfsync: drawing the epoch: %w", err)
	}
	log := c.Logger.With("node", uint32(c.Node))
	e := &Engine{
		cfg:       c,
		log:       log,
		tr:        c.Transport,
		sealer:    c.Sealer,
		ids:       ids,
		records:   newRecords(uint32(c.Node), now, c.TombstoneTTL, log),
		epoch:     binary.BigEndian.Uint64(rnd[:]) | 1,
		boot:      uint64(now.UnixNano()),
		mtu:       mtu,
		lifecycle: lifecycle{kick: make(chan struct{}, 1), done: make(chan struct{})},
		sender:    newSender(mtu),
		ae:        antiEntropy{interval: c.AntiEntropy, tombScan: c.TombstoneTTL / 2},
		peers:     make(map[NodeID]*peer),
	}
	if bt, ok := c.Table.(BatchTable); ok {
		e.batch = bt
	}
	if c.Sealer == nil {
		e.log.Warn("pfsync: running without a Sealer (Insecure): frames are neither authenticated nor encrypted; anyone on the sync link can inject state")
	}
	return e, nil
}

// NewID returns a new record ID created by this node, never used before, not
// even in a previous run (record.IDAllocator).
func (e *Engine) NewID() record.ID { return e.ids.Next() }

// Node returns this node's id.
func (e *Engine) Node() NodeID { return e.cfg.Node }

// Start starts the engine's goroutines, announces the node (HELLO) and asks
// the peers for a bulk sync as they are heard. Start after Start or Close
// returns an error.
func (e *Engine) Start() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.started {
		e.mu.Unlock()
		return errors.New("pfsync: engine already started")
	}
	e.started = true
	now := time.Now()
	e.startedAt = now
	e.startTokens(now, e.cfg.BulkBurst)
	e.ae.start(now)
	e.sendHello(Broadcast, false, now)
	if e.q.len() > 0 {
		e.flushBy(now)
	}
	e.wg.Add(2)
	go e.receiveLoop()
	go e.timerLoop()
	e.mu.Unlock()
	e.updateDemotion()
	return nil
}

// Close stops the engine: it flushes what is queued (best effort), closes
// the Transport, which unblocks the receiver, and waits for every goroutine
// of the engine. It is idempotent; it returns the Transport's Close error.
func (e *Engine) Close() error {
	var err error
	e.stop.Do(func() {
		e.mu.Lock()
		if e.started && !e.closed {
			e.flushLocked(time.Now())
		}
		e.closed = true
		e.mu.Unlock()
		close(e.done)
		err = e.tr.Close()
		e.wg.Wait()
		if err != nil {
			err = fmt.Errorf("pfsync: closing transport: %w", err)
		}
	})
	return err
}

func (e *Engine) receiveLoop() {
	defer e.wg.Done()
	recvloop.Loop[Datagram]{
		Done:    e.done,
		Receive: e.tr.Receive,
		Handle:  e.received,
		Retry:   10 * time.Millisecond, // do not spin on a transport that keeps failing
		Failed:  func(err error) { e.log.Warn("pfsync: receive failed", "err", err) },
		Closed:  func(err error) { e.log.Error("pfsync: transport closed under the engine", "err", err) },
	}.Run()
}

// received handles a datagram the receive loop read; false once the
// engine is closed.
func (e *Engine) received(d Datagram) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.input(d, time.Now())
	e.mu.Unlock()
	e.updateDemotion()
	return true
}

func (e *Engine) timerLoop() {
	defer e.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return
		}
		now := time.Now()
		next := e.tick(now)
		e.wake = next
		e.mu.Unlock()
		e.updateDemotion()
		t.Reset(next.Sub(now))
		select {
		case <-e.done:
			return
		case <-e.kick:
		case <-t.C:
		}
	}
}

// wakeBy makes the timer loop run no later than at.
func (e *Engine) wakeBy(at time.Time) {
	if !e.wake.IsZero() && !at.Before(e.wake) {
		return
	}
	e.wake = at
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Upsert reports a record the embedder's dataplane created or changed. The
// engine merges it with the copy it holds (a TCP direction never goes
// backwards), raises the Version of records this node created, and queues
// it: the record is encoded when its frame is flushed, so several changes
// before a flush leave as one element carrying the newest state.
//
// rec.ID must be set (NewID for new records); records of other nodes may
// be upserted too (active/active, or a new master updating taken-over
// flows). rec is not retained.
func (e *Engine) Upsert(rec record.Record) error {
	if err := rec.Validate(); err != nil {
		return fmt.Errorf("pfsync: upsert %v: %w", rec.ID, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	now := time.Now()
	own := rec.ID.Creator == uint32(e.cfg.Node)
	old, ok := e.store[rec.ID]
	var ent entry
	if ok {
		if err := wire.DecodeRecord(e.data(old), &e.scratch); err != nil {
			return fmt.Errorf("pfsync: upsert %v: stored copy: %w", rec.ID, err)
		}
		if own {
			rec.Version = max(rec.Version, old.ver+1)
		} else {
			rec.Version = max(rec.Version, old.ver)
		}
		merged, _ := record.Merge(&e.scratch, &rec)
		ent = old
		if !sameOwned(&e.scratch, &merged) {
			ent.flags |= fFull
		}
		if own {
			ent.at = e.clock(now) // the dataplane reports the lifetime now
		} else {
			e.lifeFrom(&ent, &e.scratch, &merged, now)
		}
		ent.ver = merged.Version
		e.setData(&ent, e.encode(&merged))
	} else {
		if t, dead := e.tombs[rec.ID]; dead {
			// Re-created after a delete: the new life must beat the tombstone.
			rec.Version = max(rec.Version, t.ver+1)
			delete(e.tombs, rec.ID)
			ent.flags |= fAnnounced | fFull
		}
		ent.ver, ent.at = rec.Version, e.clock(now)
		e.setData(&ent, e.encode(&rec))
		e.created(rec.ID)
	}
	if !ok || own {
		// The dataplane holds its own records: nothing to commit.
		ent.flags |= fCommitted
		ent.flags &^= fDirty
	}
	if own {
		ent.flags |= fLocal
	}
	e.dirtied(old.flags, ent.flags) // old is the zero entry if !ok
	e.store[rec.ID] = ent
	e.changed(rec.ID)
	e.enqueue(rec.ID, opUpsert, ent.flags&fAnnounced != 0, int(ent.n), now)
	if ok && e.started && e.peerRecently(ent, now) {
		e.stats.PeerFlushes++
		e.scheduleFlush(now)
	}
	e.maybeCompact()
	return nil
}

// Delete reports that the embedder's dataplane removed record id. The
// engine forgets it, remembers a tombstone for Config.TombstoneTTL and sends
// the delete — unless no peer ever heard of the record, in which case
// nothing is sent at all. Deleting an unknown record is not an error.
func (e *Engine) Delete(id record.ID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.deleteLocked(id, time.Now())
	return nil
}

// deleteLocked removes id from the store, remembers the delete if peers
// may know the record (a delete by this node, the creator, is a change:
// it raises the version) and queues it.
func (e *Engine) deleteLocked(id record.ID, now time.Time) {
	ent, ok := e.store[id]
	if !ok {
		return
	}
	e.forget(id, ent)
	announced := ent.flags&fAnnounced != 0
	if announced {
		v := ent.ver
		if id.Creator == uint32(e.cfg.Node) {
			v++
		}
		e.addTomb(id, v, now)
	}
	e.enqueue(id, opDelete, announced, wire.DeleteLen, now)
}

// forget removes ent, the entry of id, from the store, and notes the change
// for the bulk transfers reading a snapshot.
func (e *Engine) forget(id record.ID, ent entry) {
	e.records.remove(id, ent)
	e.changed(id)
}

// enqueue applies op to id's slot and arranges the flush: the full frames
// at once when a frame's worth is queued, the rest after FlushDelay.
func (e *Engine) enqueue(id record.ID, o op, announced bool, size int, now time.Time) {
	if !e.sender.enqueue(id, o, announced, size+2, e.cfg.MaxPending) {
		e.stats.QueueDrops++
		return
	}
	if e.q.len() == 0 || !e.started {
		return
	}
	if e.q.bytes >= e.frameWorth() {
		e.flushFull(now)
		if !e.pending() {
			return
		}
	}
	e.scheduleFlush(now.Add(e.cfg.FlushDelay))
}

// frameWorth is the size of the queued elements that fills a frame.
func (e *Engine) frameWorth() int { return e.mtu - wire.HeaderLen - wire.SectionHeaderLen }

// scheduleFlush makes the queued elements leave no later than at.
func (e *Engine) scheduleFlush(at time.Time) { e.wakeBy(e.flushBy(at)) }

// Get returns the engine's copy of record id. Its Expire is the lifetime as
// last reported or received, not aged by the time since.
func (e *Engine) Get(id record.ID) (record.Record, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.store[id]
	if !ok {
		return record.Record{}, false
	}
	var r record.Record
	if err := wire.DecodeRecord(e.data(ent), &r); err != nil {
		return record.Record{}, false
	}
	return r.Clone(), true
}

// Len returns the number of live records the engine holds.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.store)
}

// Records returns a copy of every live record the engine holds, ordered by
// ID.
func (e *Engine) Records() []record.Record {
	e.mu.Lock()
	recs := make([]record.Record, 0, len(e.store))
	for _, ent := range e.store {
		var r record.Record
		if wire.DecodeRecord(e.data(ent), &r) == nil {
			recs = append(recs, r.Clone())
		}
	}
	e.mu.Unlock()
	slices.SortFunc(recs, func(a, b record.Record) int { return compareID(a.ID, b.ID) })
	return recs
}

// PrepareTakeover hands every record received from peers that the Table
// does not hold in its latest state to the Table, and returns how many it
// committed. Call it when this node is about to become master, before the
// CARP layer announces the addresses: the dataplane must know the flows
// before their packets arrive (the ordering conntrackd plus keepalived get
// wrong, docs/interop.md, "Takeover ordering").
//
// Each record's Expire is reduced by the time it waited in the engine since
// its lifetime was received (whole seconds, like conntrackd's commit); a
// record whose lifetime ran out is not committed but counted in
// Stats.Expired.
//
// With CommitOnTakeover this commits the external cache; with CommitDirect
// it only retries records whose Table call failed. It honours ctx: when the
// deadline passes it stops and returns the count so far and an error
// wrapping ctx.Err(); records not committed stay queued for the next call.
func (e *Engine) PrepareTakeover(ctx context.Context) (int, error) {
	if e.cfg.Table == nil {
		return 0, errors.New("pfsync: PrepareTakeover without a Table")
	}
	e.mu.Lock()
	var todo []record.ID
	for id, ent := range e.store {
		if ent.flags&fDirty != 0 {
			todo = append(todo, id)
		}
	}
	e.mu.Unlock()
	n := 0
	bt, batched := e.cfg.Table.(BatchTable)
	batch := 64 // records committed between two looks at ctx
	if batched {
		batch = takeoverBatch
	}
	for i := 0; i < len(todo); i += batch {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("pfsync: takeover commit incomplete, %d of %d records committed: %w", n, len(todo), err)
		}
		e.mu.Lock()
		if batched {
			n += e.commitBatch(ctx, bt, todo[i:min(i+batch, len(todo))])
			e.mu.Unlock()
			continue
		}
		for _, id := range todo[i:min(i+batch, len(todo))] {
			ent, ok := e.store[id]
			if !ok || ent.flags&fDirty == 0 {
				continue
			}
			was := ent.flags
			if e.commit(id, &ent, nil, time.Now()) == nil {
				n++
			}
			e.dirtied(was, ent.flags)
			e.store[id] = ent
		}
		e.mu.Unlock()
	}
	if err := ctx.Err(); err != nil && n < len(todo) {
		return n, fmt.Errorf("pfsync: takeover commit incomplete, %d of %d records committed: %w", n, len(todo), err)
	}
	e.log.Info("pfsync: takeover commit", "records", n)
	return n, nil
}

// tableRefused counts a write the Table refused and logs it, at most once
// per ratelog.DefaultEvery and operation: a full kernel table refuses every
// record of a takeover commit, and a line per record would bury the log.
func (e *Engine) tableRefused(op string, id record.ID, err error) {
	e.stats.TableErrors++
	if held, ok := e.tableLogs.Allow(op, time.Now()); ok {
		e.log.Warn("pfsync: table refused a "+op, "id", id.String(), "err", err, "suppressed", held)
	}
}

// commit hands ent to the Table (Insert or Update) and updates its flags.
// dec is ent's record already decoded, or nil.
func (e *Engine) commit(id record.ID, ent *entry, dec *record.Record, now time.Time) error {
	r, err := e.tableRecord(ent, dec, now)
	if err != nil {
		return err
	}
	if ent.flags&fCommitted != 0 {
		err = e.cfg.Table.Update(&r)
	} else {
		err = e.cfg.Table.Insert(&r)
	}
	if err != nil {
		e.tableRefused("record", id, err)
		ent.flags |= fDirty
		return err
	}
	ent.flags |= fCommitted
	ent.flags &^= fDirty
	return nil
}

// tableRecord returns the record of ent as the Table gets it: decoded (or
// dec, ent's record already decoded), owning its extension data, with the
// time it waited in the engine taken off its lifetime. A record whose life
// ran out is counted, no longer dirty, and errExpired.
func (e *Engine) tableRecord(ent *entry, dec *record.Record, now time.Time) (record.Record, error) {
	var r record.Record
	switch {
	case dec != nil && len(dec.Ext) == 0:
		r = *dec // nothing aliases a buffer
	default:
		if err := wire.DecodeRecord(e.data(*ent), &r); err != nil {
			return r, err
		}
		if len(r.Ext) > 0 {
			r = r.Clone() // the Table may keep it; do not pin an arena chunk
		}
	}
	if el := e.elapsed(*ent, now); el > 0 && r.Expire > 0 {
		if el >= r.Expire {
			// Its life ran out while it waited here: the dataplane
			// would have expired it already.
			e.stats.Expired++
			ent.flags &^= fDirty
			return r, errExpired
		}
		r.Expire -= el
	}
	return r, nil
}

// takeoverBatch is how many records PrepareTakeover hands a BatchTable per
// call.
const takeoverBatch = 1024

// commitBatch commits the dirty records among ids to bt in one call and
// returns how many it wrote.
func (e *Engine) commitBatch(ctx context.Context, bt BatchTable, ids []record.ID) int {
	now := time.Now()
	recs, sent := e.batchRecs[:0], e.batchIDs[:0]
	defer func() {
		clear(recs) // drop the references to extension data
		e.batchRecs, e.batchIDs = recs[:0], sent[:0]
	}()
	for _, id := range ids {
		ent, ok := e.store[id]
		if !ok || ent.flags&fDirty == 0 {
			continue
		}
		r, err := e.tableRecord(&ent, nil, now)
		if err != nil {
			e.dirtied(fDirty, ent.flags)
			e.store[id] = ent
			continue
		}
		recs, sent = append(recs, r), append(sent, id)
	}
	if len(recs) == 0 {
		return 0
	}
	errs := slices.Grow(e.batchErrs[:0], len(recs))[:len(recs)]
	clear(errs)
	e.batchErrs = errs
	bt.CommitBatch(ctx, recs, errs)
	n := 0
	for i, id := range sent {
		ent := e.store[id] // the lock was held: it is still there
		was := ent.flags
		switch err := errs[i]; {
		case err == nil:
			ent.flags |= fCommitted
			ent.flags &^= fDirty
			n++
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			// Not attempted: it waits for the next takeover.
		default:
			e.tableRefused("record", id, err)
		}
		e.dirtied(was, ent.flags)
		e.store[id] = ent
	}
	return n
}

// Demotion returns the CARP demotion the engine currently asks for, the
// value of DemoteSourceBulk: Config.DemoteInit until the node is in sync,
// Config.DemoteDegraded if it got there only because a bulk sync failed
// every retry, else 0. Silent peers never demote: a silent sync link is
// silent for both ends, and a demotion both raised would move the groups
// whenever the master noticed first (docs/sync-demotion.md).
func (e *Engine) Demotion() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.demotionLocked()
}

func (e *Engine) demotionLocked() int {
	return e.demotion(e.cfg.DemoteInit, e.cfg.DemoteDegraded)
}

// updateDemotion reports changed demotion values to the Demoter. The value
// is computed and applied under demMu, so concurrent updates are applied in
// the order they were computed and the Demoter is always left with the
// newest value; the engine's lock is released before the Demoter is called,
// so a Demoter may call back into the engine (Demotion, Stats).
func (e *Engine) updateDemotion() {
	if e.cfg.Demoter == nil {
		return
	}
	e.demMu.Lock()
	defer e.demMu.Unlock()
	e.mu.Lock()
	b := e.demotionLocked()
	e.mu.Unlock()
	if b != e.demBulk {
		e.demBulk = b
		e.cfg.Demoter.SetDemotion(DemoteSourceBulk, b)
	}
}

// Stats returns a snapshot of the counters and gauges.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Pending = e.q.len()
	s.ResendQueue = e.ring.refs
	s.PeersUp = e.peers.up()
	s.Records = len(e.store)
	s.LocalRecords = e.local
	s.Tombstones = len(e.tombs)
	s.External = e.external
	for _, p := range e.peers {
		if p.bulk.state == bulkReceiving {
			s.BulkExpected += int(p.bulk.expected)
			s.BulkReceived += int(p.bulk.received().Count)
		}
	}
	s.BulkDone = e.inSync
	s.Degraded = e.bulkGaveUp
	s.Demotion = e.demotionLocked()
	s.Peers = make(map[NodeID]PeerStats, len(e.peers))
	for id, p := range e.peers {
		ps := p.stats
		ps.Up, ps.Confirmed, ps.Epoch, ps.LastHeard, ps.Acked = p.up, p.confirmed, p.epoch, p.lastHeard, p.acked
		if p.next > 0 {
			ps.Received = p.next - 1
		}
		if b := &p.bulk; b.active() {
			ps.BulkRanges, ps.BulkRangesDone = b.session.Len(), b.done.Len()
			if b.state == bulkReceiving {
				ps.BulkExpected, ps.BulkReceived = int(b.expected), int(b.received().Count)
			}
		}
		s.Peers[id] = ps
	}
	return s
}

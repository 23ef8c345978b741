package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// canonical returns the record the kernel will report for a flow injected
// as f: what an event of the injected entry is compared with to recognise
// the echo of the injection.
func canonical(f *ct.Flow, id record.ID, version uint64) (record.Record, error) {
	fi := *f
	fi.Status = ct.Status(InjectStatus(uint32(f.Status)))
	if f.ProtoInfo.TCP != nil {
		tcp := *f.ProtoInfo.TCP
		of, rf := injectFlags(&tcp)
		tcp.OriginalFlags, tcp.ReplyFlags = of&0xff00, rf&0xff00
		fi.ProtoInfo.TCP = &tcp
	}
	return flowToRecord(&fi, id, version, time.Time{})
}

// Insert writes a peer's record into the kernel table (pfsync.Table). An
// entry that exists already is updated (EEXIST), keeping its status when
// the kernel refuses to clear a bit of it, or deleted and created again when
// the kernel refuses the update otherwise. A RELATED flow whose master is
// not in the kernel yet is kept aside and written as soon as its master is.
// A record of this node itself that a peer changed (after a takeover the
// new master advances the old master's records) updates the local entry
// without the change being reported back. A record whose tuple belongs to
// another flow this node created (counted in Stats.Conflicts) updates that
// flow's entry with whatever the peer knows better — state, lifetime,
// SEEN_REPLY/ASSURED — and BE_LIBERAL, as conntrackd does on EEXIST, but
// the local record stays authoritative and the change is not reported
// back (see tracker.conflicting).
func (b *Backend) Insert(rec *record.Record) error { return b.apply(rec) }

// Update writes a newer state of a peer's record into the kernel table; see
// Insert.
func (b *Backend) Update(rec *record.Record) error { return b.apply(rec) }

// Delete removes a record from the kernel table: a peer's, or one of this
// node's own that a peer deleted (pfsync applies a delete from any node).
// Records the backend does not hold, and entries already gone from the
// kernel, are not errors. The removal is not reported back to the Sink.
func (b *Backend) Delete(id record.ID) error {
	b.injMu.Lock()
	defer b.injMu.Unlock()
	b.unpark(id)
	b.t.mu.Lock()
	e := b.t.byID[id]
	if e == nil {
		b.t.mu.Unlock()
		return nil
	}
	b.t.forget(e)
	key := e.rec.Key
	b.t.mu.Unlock()
	f := ct.Flow{TupleOrig: tupleToFlow(key.Orig, key.Proto), Zone: key.Zone}
	return b.inj.delete(&f)
}

func (b *Backend) unpark(id record.ID) {
	for k, recs := range b.parked {
		for i := range recs {
			if recs[i].ID == id {
				b.parked[k] = append(recs[:i], recs[i+1:]...)
				b.nPark--
				if len(b.parked[k]) == 0 {
					delete(b.parked, k)
				}
				return
			}
		}
	}
}

func (b *Backend) apply(rec *record.Record) error {
	b.injMu.Lock()
	defer b.injMu.Unlock()
	_, err := b.inject(rec)
	return err
}

// inject writes rec with injMu held and returns how.
func (b *Backend) inject(rec *record.Record) (writeOutcome, error) {
	p, ok, err := b.prepare(rec)
	if err != nil || !ok {
		return 0, err
	}
	switch {
	case p.refused:
		return wroteRefused, nil
	case p.current:
		return wroteNothing, nil
	}
	how, err := b.inj.write(&p.f, p.known, regHooks{b.t, p.reg})
	return b.finish(&p, how, err)
}

// pendingWrite is a record registered with the tracker and about to be
// written.
type pendingWrite struct {
	rec     *record.Record
	f       ct.Flow
	key     flowKey
	reg     registration
	known   bool // the kernel should hold the entry already: update it
	current bool // the kernel holds the record in this state: nothing to write
	refused bool // this node's Filter ignores the record: nothing to write
}

// prepare converts rec and registers it with the tracker before the write,
// so the kernel's event finds the entry and is recognised as the echo of
// the injection. A record the Filter ignores is refused (p.refused). A
// record of a local flow under another identity becomes an update of the
// local record (tracker.conflicting). The lifetime is capped at the
// kernel's timeout for the flow's state. ok is false when nothing is to be
// written: the local flow appeared in between.
func (b *Backend) prepare(rec *record.Record) (pendingWrite, bool, error) {
	if !b.t.filter.passRecord(rec) {
		b.t.count(func(s *Stats) { s.Refused++ })
		b.logs.log(b.log, logRefused, slog.LevelWarn, "conntrack: a peer's record refused: this node's Filter ignores its flow",
			"id", rec.ID.String(), "proto", rec.Key.Proto, "zone", rec.Key.Zone,
			"orig", rec.Key.Orig.Src.String()+" -> "+rec.Key.Orig.Dst.String())
		return pendingWrite{refused: true}, true, nil
	}
	now := time.Now()
	if j, ok := b.t.conflicting(rec, now); ok {
		joined := j // on the heap only when there is a conflict
		rec = &joined
	}
	f, err := recordToFlow(rec)
	if err != nil {
		b.t.count(func(s *Stats) { s.InjectErrors++ })
		return pendingWrite{}, false, err
	}
	if lim := b.tmo.limit(&f); f.Timeout > lim {
		// What a packet of the flow would refresh it to here: a peer
		// cannot keep a flow in this kernel longer than its traffic could.
		f.Timeout = lim
		b.t.count(func(s *Stats) { s.Capped++ })
	}
	canon, err := canonical(&f, rec.ID, rec.Version)
	if err != nil {
		b.t.count(func(s *Stats) { s.InjectErrors++ })
		return pendingWrite{}, false, err
	}
	key := keyOf(&rec.Key)
	if b.t.current(key, &canon) {
		return pendingWrite{current: true}, true, nil
	}
	reg, ok := b.t.register(key, canon, now)
	if !ok {
		return pendingWrite{}, false, nil
	}
	return pendingWrite{rec: rec, f: f, key: key, reg: reg, known: reg.old != nil || reg.own}, true, nil
}

// finish accounts for the write of p that ended with how and err: it parks
// a RELATED record whose master is missing, reverts the registration of a
// failed write, and writes the RELATED records that waited for a master
// just created.
func (b *Backend) finish(p *pendingWrite, how writeOutcome, err error) (writeOutcome, error) {
	t := b.t
	if err != nil && errors.Is(err, unix.ENOENT) && p.f.TupleMaster.IP.SourceAddress.IsValid() && !p.known {
		t.undo(p.reg, false)
		return 0, b.park(p.rec, &p.f, err)
	}
	if err != nil {
		// The write left the previous entry in place unless it got as far
		// as deleting it.
		t.undo(p.reg, !errors.Is(err, errDeleted))
		if errors.Is(err, unix.ENOMEM) {
			// The kernel allocates a conntrack entry only to create one,
			// and refuses with ENOMEM when nf_conntrack_max is reached
			// and no unassured entry can be evicted. Every record of a
			// bulk or a commit fails alike until flows expire: counted
			// each, logged once in a while.
			err = fmt.Errorf("%w: %w", ErrTableFull, err)
			var n uint64
			t.count(func(s *Stats) { s.InjectErrors++; s.TableFull++; n = s.TableFull })
			b.logs.log(b.log, logTableFull, slog.LevelWarn, "conntrack: kernel table full (nf_conntrack_max), peers' flows not written",
				"err", err, "table_full", n)
			return 0, err
		}
		t.count(func(s *Stats) { s.InjectErrors++ })
		return 0, err
	}
	t.written(p.reg)
	if b.pause.left && (how == wroteCreated || how == wroteRecreated) {
		t.noEcho(p.reg)
	}
	t.count(func(s *Stats) {
		switch how {
		case wroteCreated:
			s.Injected++
		case wroteUpdated:
			s.InjectUpdates++
		case wroteRecreated:
			s.Recreated++
		}
	})
	if how == wroteCreated || how == wroteRecreated {
		b.releaseParked(p.key)
	}
	return how, nil
}

// preparedBatch is a batch of records converted and registered with the
// tracker, waiting for its write. A batch is written in two halves, which
// commit runs for two batches at once: prepareBatch, then writeBatch.
type preparedBatch struct {
	ps   []pendingWrite
	at   []int // ps[i] is the record at[i] of the batch
	how  []writeOutcome
	errs []error
}

// prepareBatch is a batch's first half: it converts and registers recs
// (prepare), noting in how and errs the records that need no write. It
// needs no injMu: it reads and writes only the tracker (under its lock) and
// what the Backend never changes. pb's slices are reused.
func (b *Backend) prepareBatch(pb *preparedBatch, recs []*record.Record, how []writeOutcome, errs []error) {
	pb.ps = slices.Grow(pb.ps[:0], len(recs))
	pb.at, pb.how, pb.errs = pb.at[:0], how, errs
	for i, r := range recs {
		p, ok, err := b.prepare(r)
		how[i], errs[i] = 0, err
		switch {
		case ok && p.refused:
			how[i] = wroteRefused
		case ok && p.current:
			how[i] = wroteNothing
		case ok:
			pb.ps, pb.at = append(pb.ps, p), append(pb.at, i)
		}
	}
}

// writeBatch is a batch's second half, with injMu held: it writes the
// prepared records, the creates of flows new to the kernel pipelined
// (createBatch: one sendmsg, then the answers), then the updates of entries
// the kernel should hold already (updateBatch), and stores each record's
// outcome and error. A create answered by EEXIST, or whose answer was lost,
// continues as write does (update, or delete and create again), as does an
// update the kernel refused.
func (b *Backend) writeBatch(pb *preparedBatch) {
	ps := pb.ps
	var creates []*ct.Flow
	var ci []int // creates[j] is ps[ci[j]]
	for i := range ps {
		if !ps[i].known {
			creates, ci = append(creates, &ps[i].f), append(ci, i)
		}
	}
	res := make([]error, len(ps)) // nil for known entries: update
	cres := make([]error, len(creates))
	if len(creates) > 0 {
		// A failed send leaves every create's result set to the send
		// error; each is then retried one by one below.
		if err := b.inj.createBatch(creates, cres); err != nil {
			b.log.Debug("conntrack: pipelined create failed, writing one by one", "err", err)
			for j := range cres {
				cres[j] = errNoAck
			}
		}
		for j, i := range ci {
			res[i] = cres[j]
		}
	}
	// The updates of entries the kernel should hold are pipelined too,
	// after the creates (the order write would send them in). One the
	// kernel refuses, or whose answer was lost, goes through write: the
	// refused update is sent again and handled as write handles it
	// (without the status bits, or delete and create again), at the cost
	// of one round trip more.
	ures := b.inj.updateBatch(ps)
	for i := range ps {
		p := &ps[i]
		var h writeOutcome
		var err error
		switch {
		case p.known && ures[i] == nil:
			h = wroteUpdated
		case p.known:
			h, err = b.inj.write(&p.f, true, regHooks{b.t, p.reg})
		case res[i] == errCreated:
			h = wroteCreated // what resolve says, without building its hooks
		case res[i] == errNoAck:
			h, err = b.inj.write(&p.f, false, regHooks{b.t, p.reg})
		default:
			h, err = b.inj.resolve(&p.f, res[i], regHooks{b.t, p.reg})
		}
		pb.how[pb.at[i]], pb.errs[pb.at[i]] = b.finish(p, h, err)
	}
}

// park keeps a RELATED record until its master is written.
func (b *Backend) park(rec *record.Record, f *ct.Flow, cause error) error {
	if b.nPark >= maxParked {
		b.t.count(func(s *Stats) { s.InjectErrors++ })
		return fmt.Errorf("conntrack: %d RELATED flows wait for their master already, dropping %v: %w", b.nPark, f.TupleOrig, cause)
	}
	m := flowKey{proto: f.TupleMaster.Proto.Protocol, zone: f.Zone, orig: tupleToRecord(&f.TupleMaster)}
	b.unpark(rec.ID)
	b.parked[m] = append(b.parked[m], parkable(rec))
	b.nPark++
	b.t.count(func(s *Stats) { s.Parked++ })
	return nil
}

// parkable returns a copy of rec to keep while it waits for its master,
// with only the extensions a write uses: a peer's record may carry
// kilobytes of others, and maxParked of them must stay small.
func parkable(rec *record.Record) record.Record {
	r := *rec
	r.Ext = nil
	for _, e := range rec.Ext {
		switch e.Type {
		case record.ExtMark, record.ExtLabels, record.ExtHelper, ExtMaster:
			r.Ext = append(r.Ext, record.Ext{Type: e.Type, Data: slices.Clone(e.Data)})
		}
	}
	return r
}

// releaseParked writes the RELATED records that waited for master.
func (b *Backend) releaseParked(master flowKey) {
	recs := b.parked[master]
	if len(recs) == 0 {
		return
	}
	delete(b.parked, master)
	b.nPark -= len(recs)
	for i := range recs {
		if _, err := b.inject(&recs[i]); err != nil {
			b.log.Warn("conntrack: RELATED flow not written after its master", "err", err)
		}
	}
}

// Commit writes a batch of peers' records into the kernel — conntrackd's
// "commit external cache" (-c) for a backup that keeps replicated state
// outside the kernel until it becomes master: masters first, then RELATED
// flows, so every RELATED flow finds its master. It stops when ctx ends (a
// takeover must not wait forever: the VIPs go up after it) and returns what
// it did with the errors of failed records joined, plus ctx's error if it
// stopped early.
//
// The records are written as Insert would; the backend keeps tracking them
// as the peers' records. The writes are pipelined, commitBatch per sendmsg
// with the answers read afterwards and matched by sequence number
// (conntrackd batches its commit the same way; only the last request of a
// batch asks for an ack, the kernel reports the others only when they
// fail), and the next batch is converted while the kernel writes the
// current one, so a commit costs a few system calls per hundred flows
// instead of two per flow and overlaps this process's work with the
// kernel's; every flow still gets its own result, and an entry that exists
// already (EEXIST) is updated as by Insert. While a large commit runs, the
// watcher receives no NEW events (see the package documentation): the
// kernel builds none for the creates, and the flows traffic creates
// meanwhile are reported afterwards.
func (b *Backend) Commit(ctx context.Context, recs []record.Record) (CommitResult, error) {
	return b.commit(ctx, recs, nil)
}

// CommitBatch is Commit with each record's outcome in errs[i] (nil:
// written; ctx's error: not attempted), for pfsync.Engine.PrepareTakeover
// (pfsync.BatchTable): an engine with CommitOnTakeover hands the backend
// its external cache a thousand records at a time, not one Insert each.
func (b *Backend) CommitBatch(ctx context.Context, recs []record.Record, errs []error) {
	b.commit(ctx, recs, errs)
}

// commitSlot is one of the two batches a commit has in hand (see commit).
type commitSlot struct {
	batch []*record.Record
	at    []int // batch[k] is recs[at[k]]
	how   []writeOutcome
	berr  []error
	pb    preparedBatch
}

// reset drops what sl refers to of the commit that used it.
func (sl *commitSlot) reset() {
	clear(sl.batch[:cap(sl.batch)])
	clear(sl.berr)
	clear(sl.pb.ps)
	sl.batch, sl.at = sl.batch[:0], sl.at[:0]
	sl.pb.ps, sl.pb.at, sl.pb.how, sl.pb.errs = sl.pb.ps[:0], sl.pb.at[:0], nil, nil
}

// commitSlotPool keeps the slots between commits: a takeover commit is a
// hundred CommitBatch calls, and a slot's pendingWrites alone take 128 KB.
var commitSlotPool = sync.Pool{New: func() any {
	var slots [2]commitSlot
	for i := range slots {
		slots[i] = commitSlot{
			batch: make([]*record.Record, 0, commitBatch), at: make([]int, 0, commitBatch),
			how: make([]writeOutcome, commitBatch), berr: make([]error, commitBatch),
		}
	}
	return &slots
}}

// commit is Commit; outcome, if not nil, receives each record's error.
func (b *Backend) commit(ctx context.Context, recs []record.Record, outcome []error) (CommitResult, error) {
	start := time.Now()
	if b.pauseNew(len(recs)) {
		defer b.resumeNew()
	}
	var res CommitResult
	var errs []error
	isRelated := func(r *record.Record) bool {
		_, ok := r.Extension(ExtMaster)
		return ok || r.Flags&statusExpected != 0
	}
	// Two batches are in hand at a time: while one is written (the
	// kernel's work, in the sendmsg), the next is converted and registered
	// (this process's work, which needs no injMu), so on a machine with two
	// cores the two overlap. The writes themselves stay one at a time and
	// in order.
	slots := commitSlotPool.Get().(*[2]commitSlot)
	defer func() {
		for i := range slots {
			slots[i].reset()
		}
		commitSlotPool.Put(slots)
	}()
	cur := 0                          // the slot being filled
	var writing chan struct{}         // closed when the other slot's write is done; nil if none
	account := func(sl *commitSlot) { // with the slot's write done
		for i := range sl.batch {
			if outcome != nil {
				outcome[sl.at[i]] = sl.berr[i]
			}
			switch {
			case sl.berr[i] != nil:
				res.Failed++
				errs = append(errs, sl.berr[i])
			case sl.how[i] == wroteCreated || sl.how[i] == wroteRecreated:
				res.Created++
			case sl.how[i] == wroteUpdated:
				res.Updated++
			case sl.how[i] == wroteNothing:
				res.Current++
			case sl.how[i] == wroteRefused:
				res.Refused++
			}
		}
		sl.batch, sl.at = sl.batch[:0], sl.at[:0]
	}
	wait := func() {
		if writing != nil {
			<-writing
			writing = nil
			account(&slots[1-cur])
		}
	}
	// flush prepares the slot being filled and writes it: on a goroutine of
	// its own while the next batch is filled, or here when last is set (the
	// end of a pass: every master is in the kernel before the first RELATED
	// flow is written).
	flush := func(last bool) {
		sl := &slots[cur]
		if len(sl.batch) > 0 {
			b.prepareBatch(&sl.pb, sl.batch, sl.how[:len(sl.batch)], sl.berr[:len(sl.batch)])
		}
		wait()
		if len(sl.batch) == 0 {
			return
		}
		if last {
			b.injMu.Lock()
			b.writeBatch(&sl.pb)
			b.injMu.Unlock()
			account(sl)
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.injMu.Lock()
			defer b.injMu.Unlock()
			b.writeBatch(&sl.pb)
		}()
		writing, cur = done, 1-cur
	}
	for pass := range 2 {
		for i := range recs {
			r := &recs[i]
			if isRelated(r) != (pass == 1) {
				continue
			}
			if pass == 0 {
				res.Masters++
			} else {
				res.Related++
			}
			if err := ctx.Err(); err != nil {
				res.Skipped++
				if outcome != nil {
					outcome[i] = err
				}
				continue
			}
			sl := &slots[cur]
			sl.at = append(sl.at, i)
			if sl.batch = append(sl.batch, r); len(sl.batch) == commitBatch {
				flush(false)
			}
		}
		flush(true)
	}
	res.Duration = time.Since(start)
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("conntrack: commit stopped with %d records left: %w", res.Skipped, err))
	}
	return res, errors.Join(errs...)
}

// commitBatch is how many creates Commit sends in one sendmsg. Each answer
// (an error, or the last request's ack) takes about 1 KiB of the socket's
// receive buffer until read (skb truesize), so even 128 errors stay far
// below injectReadBuffer; larger batches gain little (the kernel's
// per-entry work dominates).
const commitBatch = 128

// Takeover readies this node's own TCP flows for forwarding again and
// returns how many it changed. Call it when the node is about to become
// master, before the addresses move — after the engine's PrepareTakeover
// (or Commit), in the same BeforeInstall hook.
//
// Why: a node that takes the groups back (preemption after a link came
// back, a hand-over) still holds the kernel entries of the flows it created
// and forwarded before, with the sequence windows it tracked then. The peer
// forwarded them meanwhile, and pfsync would hand the windows back with the
// peer's updates, but ctnetlink can neither report nor restore them, and
// traffic that only moves the windows causes no conntrack event, so the
// peer has nothing to report. With nf_conntrack_tcp_be_liberal=0 the first
// packets — acknowledging data this node never saw — would be INVALID and
// every such flow would stall. Takeover therefore sets BE_LIBERAL (and
// SACK_PERM) on both directions of every TCP flow this node created and
// tracks, as replicated flows get when they are injected (conntrackd does
// the same), and changes nothing else. Flows already liberal — the watcher
// makes them so once they carry data unless Config.StrictLocal — or whose
// entry a peer's update already wrote, are skipped; the writes are
// pipelined like Commit's. A flow that ended meanwhile is not an error. The
// kernel events of these writes change no replicated field and are not
// reported.
//
// It stops when ctx ends and returns the count so far with ctx's error.
func (b *Backend) Takeover(ctx context.Context) (int, error) {
	b.t.mu.Lock()
	var keys []flowKey
	for k, e := range b.t.byKey {
		if !e.remote && !e.liberal && k.proto == record.ProtoTCP {
			keys = append(keys, k)
		}
	}
	b.t.mu.Unlock()
	n, err := b.setLiberal(ctx, keys)
	if err != nil {
		return n, fmt.Errorf("conntrack: takeover: %w", err)
	}
	return n, nil
}

// setLiberal sets BE_LIBERAL and SACK_PERM on both directions of the local
// TCP flows keys, the writes pipelined commitBatch at a time, marks them
// liberal in the tracker and returns how many it changed. A flow that ended
// meanwhile is not an error. It stops when ctx ends and returns the count so
// far with ctx's error.
func (b *Backend) setLiberal(ctx context.Context, keys []flowKey) (int, error) {
	n := 0
	var errs []error
	size := min(len(keys), commitBatch)
	msgs := make([]netlink.Message, 0, size)
	res := make([]error, size)
	for i := 0; i < len(keys); i += commitBatch {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("stopped with %d of %d flows left: %w", len(keys)-i, len(keys), err))
			break
		}
		batch := keys[i:min(i+commitBatch, len(keys))]
		msgs = msgs[:0]
		for _, k := range batch {
			msgs = append(msgs, liberalMessage(k))
		}
		b.injMu.Lock()
		err := b.inj.execBatch(msgs, res[:len(batch)])
		for j := range batch {
			if res[j] == errNoAck {
				res[j] = b.inj.execOne(msgs[j])
			}
		}
		b.injMu.Unlock()
		if err != nil {
			b.log.Debug("conntrack: pipelined BE_LIBERAL update failed", "err", err)
		}
		done := 0
		b.t.mu.Lock()
		for j, k := range batch {
			switch {
			case res[j] == nil:
				done++
				if e := b.t.byKey[k]; e != nil && !e.remote {
					e.liberal = true
				}
			case errors.Is(res[j], unix.ENOENT):
				// Ended meanwhile.
			default:
				errs = append(errs, fmt.Errorf("set BE_LIBERAL on %v: %w", k, res[j]))
			}
		}
		b.t.stats.Liberalized += uint64(done)
		b.t.mu.Unlock()
		n += done
	}
	return n, errors.Join(errs...)
}

// Purge deletes from the kernel every flow the Filter selects, local or
// injected, without reporting the deletes to the Sink, and returns how many
// it deleted. It is conntrackd's "-t": a node that went from MASTER to
// BACKUP calls it (after a grace period, conntrackd's PurgeTimeout, 60 s by
// default) so that stale copies of flows the new master now owns cannot
// clash with them on the next takeover. The records stay in the engine.
// A flow the new master changes afterwards comes back into this kernel
// with its current state, because the engine applies peers' changes of
// this node's records to the Table (as pfsync keeps every state on every
// node).
//
// Do not call it on a node that forwards traffic (active/active, or
// direct-inject mode where the backup's kernel is meant to hold the
// peers' flows).
func (b *Backend) Purge(ctx context.Context) (int, error) {
	c, err := ct.Dial(netlinkConfig(b.cfg.NetNS))
	if err != nil {
		return 0, fmt.Errorf("conntrack: purge: %w", err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: purge: dump: %w", err)
	}
	b.injMu.Lock()
	defer b.injMu.Unlock()
	n := 0
	var errs []error
	for i := range flows {
		f := &flows[i]
		if !b.cfg.Filter.pass(f) {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("conntrack: purge stopped after %d flows: %w", n, err))
			break
		}
		// Forget first, so the DESTROY event is not reported.
		b.t.mu.Lock()
		if e := b.t.byKey[flowKeyOf(f)]; e != nil {
			b.t.forget(e)
		}
		b.t.mu.Unlock()
		if err := b.inj.delete(f); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

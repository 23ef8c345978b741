package conntrack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
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
// entry that exists already is updated (EEXIST), or deleted and created
// again when the kernel refuses the update. A RELATED flow whose master is
// not in the kernel yet is kept aside and written as soon as its master is.
// A record of this node itself that a peer changed (after a takeover the
// new master advances the old master's records) updates the local entry
// without the change being reported back. A record whose tuple belongs to
// another flow this node created is not written (counted in
// Stats.Conflicts): the local flow is authoritative here.
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
	f, err := recordToFlow(rec)
	if err != nil {
		b.t.count(func(s *Stats) { s.InjectErrors++ })
		return 0, err
	}
	canon, err := canonical(&f, rec.ID, rec.Version)
	if err != nil {
		b.t.count(func(s *Stats) { s.InjectErrors++ })
		return 0, err
	}
	key := keyOf(&rec.Key)

	// Register before writing so the kernel's NEW event finds the entry
	// and is recognised as the echo of this injection.
	t := b.t
	reg, ok := t.register(key, canon, time.Now())
	if !ok {
		return 0, nil
	}
	known := reg.old != nil || reg.own
	how, err := b.inj.write(&f, known, func() { t.recreating(reg) })
	if err != nil && errors.Is(err, unix.ENOENT) && f.TupleMaster.IP.SourceAddress.IsValid() && !known {
		t.undo(reg, false)
		return 0, b.park(rec, &f, err)
	}
	if err != nil {
		// The write left the previous entry in place unless it got as far
		// as deleting it.
		t.undo(reg, !errors.Is(err, errDeleted))
		t.count(func(s *Stats) { s.InjectErrors++ })
		return 0, err
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
		b.releaseParked(key)
	}
	return how, nil
}

// park keeps a RELATED record until its master is written.
func (b *Backend) park(rec *record.Record, f *ct.Flow, cause error) error {
	if b.nPark >= maxParked {
		b.t.count(func(s *Stats) { s.InjectErrors++ })
		return fmt.Errorf("conntrack: %d RELATED flows wait for their master already, dropping %v: %w", b.nPark, f.TupleOrig, cause)
	}
	m := flowKey{proto: f.TupleMaster.Proto.Protocol, zone: f.Zone, orig: tupleToRecord(&f.TupleMaster)}
	b.unpark(rec.ID)
	b.parked[m] = append(b.parked[m], rec.Clone())
	b.nPark++
	b.t.count(func(s *Stats) { s.Parked++ })
	return nil
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
// as the peers' records.
func (b *Backend) Commit(ctx context.Context, recs []record.Record) (CommitResult, error) {
	start := time.Now()
	var res CommitResult
	var errs []error
	isRelated := func(r *record.Record) bool {
		_, ok := r.Extension(ExtMaster)
		return ok || r.Flags&statusExpected != 0
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
			if ctx.Err() != nil {
				res.Skipped++
				continue
			}
			b.injMu.Lock()
			how, err := b.inject(r)
			b.injMu.Unlock()
			switch {
			case err != nil:
				res.Failed++
				errs = append(errs, err)
			case how == wroteCreated || how == wroteRecreated:
				res.Created++
			case how == wroteUpdated:
				res.Updated++
			}
		}
	}
	res.Duration = time.Since(start)
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("conntrack: commit stopped with %d records left: %w", res.Skipped, err))
	}
	return res, errors.Join(errs...)
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

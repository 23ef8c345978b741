package pfsync

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// input handles one received datagram.
func (e *Engine) input(d Datagram, now time.Time) {
	payload := d.Payload
	var from NodeID
	if e.sealer != nil {
		f, pt, err := e.sealer.Open(e.opened[:0], payload)
		if err != nil {
			e.countOpenError(err)
			return
		}
		from, payload, e.opened = f, pt, pt
	}
	if err := e.rd.Reset(payload); err != nil {
		switch {
		case errors.Is(err, wire.ErrVersion):
			e.stats.BadVersion++
		case errors.Is(err, wire.ErrTruncated):
			e.stats.BadLength++
		default:
			e.stats.BadValue++
		}
		return
	}
	h := e.rd.Header()
	sender := NodeID(h.Sender)
	if e.sealer != nil && from != sender || e.sealer == nil && d.From != 0 && d.From != sender {
		// The header must name the authenticated (or transport-level) sender.
		e.stats.BadValue++
		return
	}
	if sender == e.cfg.Node {
		e.stats.NotForUs++
		return
	}
	e.stats.FramesIn++
	e.stats.BytesIn += uint64(len(d.Payload))
	if us, _ := e.rd.Skipped(); us > 0 {
		e.stats.UnknownKind += uint64(us)
	}
	if e.peers[sender] == nil && !e.admit(sender) {
		e.stats.PeersRefused++
		return
	}
	p := e.peerFor(sender, h.Epoch, now)
	if p == nil {
		e.stats.StaleEpoch++
		return
	}
	p.stats.FramesIn++
	p.stats.BytesIn += uint64(len(d.Payload))
	if !p.confirmed {
		// Until p echoes our epoch, its frames may be a recording
		// replayed to us after our restart (the Sealer's replay window
		// did not survive it): elements reads only what cannot change
		// our state, and p's stream starts once it is confirmed.
		e.elements(p, h, now)
		e.syncCheck(now)
		return
	}

	sequenced := h.Flags&wire.FlagUnsequenced == 0
	if sequenced {
		isNew, jumped := p.accept(h.Seq)
		if jumped {
			e.streamLost(p, h.Seq-1, now)
		}
		if !p.ackDue {
			p.ackDue = true
			p.ackAt = now.Add(e.cfg.AckDelay)
		}
		if h.Flags&wire.FlagAckRequested != 0 {
			p.ackAt = now
		}
		if !isNew {
			e.wakeBy(p.ackAt)
			return
		}
	} else if p.announce(h.Seq) {
		e.streamLost(p, h.Seq, now)
	}
	if p.hasGap() {
		if p.gapSince.IsZero() {
			p.gapSince, p.gapHigh = now, p.highest
			p.stats.Gaps++
		}
		if now.After(p.nackAt) || p.nackAt.IsZero() {
			p.ackDue, p.ackAt = true, now
		}
	} else {
		p.gapSince = time.Time{}
	}
	e.elements(p, h, now)
	e.flushCommits()
	if sequenced {
		e.checkBulk(p, now)
	}
	if p.ackDue {
		e.wakeBy(p.ackAt)
	}
	e.syncCheck(now)
}

func (e *Engine) countOpenError(err error) {
	e.stats.AuthFailures++
	switch {
	case errors.Is(err, ErrBadAuth):
		e.stats.BadAuth++
	case errors.Is(err, ErrReplay):
		e.stats.Replay++
	case errors.Is(err, ErrStaleEpoch):
		e.stats.StaleEpoch++
	case errors.Is(err, ErrUnknownKey):
		e.stats.UnknownKey++
	case errors.Is(err, ErrTruncated):
		e.stats.Truncated++
	}
}

// Bounds on the per-sender state a frame can create. A cluster has a few
// nodes; without a Sealer (Config.Insecure) anyone on the link can name any
// sender, and each new one cost a peer's state for the engine's life.
const (
	maxPeers       = 256 // peers remembered at once
	maxUnconfirmed = 16  // of which not (yet) confirmed: forgotten once silent
)

// admit reports whether a frame from sender, a node not heard before, may
// create its peer state. It logs the first refusal of a run of them.
func (e *Engine) admit(sender NodeID) bool {
	if _, gone := e.removed[sender]; gone {
		return false
	}
	unconfirmed := e.peers.unconfirmed()
	if len(e.peers) < maxPeers && unconfirmed < maxUnconfirmed {
		return true
	}
	if e.stats.PeersRefused == 0 {
		e.log.Warn("pfsync: too many peers, ignoring new senders", "peer", uint32(sender), "peers", len(e.peers), "unconfirmed", unconfirmed)
	}
	return false
}

// peerFor returns the peer sender in epoch, creating it or switching it to a
// new epoch (the node restarted). It returns nil for a frame of an epoch the
// peer left behind.
func (e *Engine) peerFor(sender NodeID, epoch uint64, now time.Time) *peer {
	p := e.peers[sender]
	fresh := false
	switch {
	case p == nil:
		p = &peer{id: sender, epoch: epoch, acked: e.nextSeq - 1}
		e.peers[sender] = p
		fresh = true
		e.log.Info("pfsync: new peer", "peer", uint32(sender))
	case p.epoch != epoch:
		if p.isRetired(epoch) {
			return nil
		}
		copy(p.retired[1:], p.retired[:])
		p.retired[0] = p.epoch
		p.epoch = epoch
		p.resetStream()
		p.acked = e.nextSeq - 1
		p.bulk = bulkRecv{}
		p.resyncAt = time.Time{}
		p.synced, p.bulkFailed = false, false
		p.stats.Restarts++
		fresh = true
		e.log.Info("pfsync: peer restarted (new epoch)", "peer", uint32(sender))
	}
	p.lastHeard = now
	wasUp := p.up
	p.up = true
	switch {
	case fresh:
		// Tell the new epoch who we are, and ask it to echo our epoch
		// before anything it sends counts (elementHandlers, Engine.hello).
		p.confirmed = false
		e.askEcho(p, now)
	case !wasUp && !p.confirmed:
		// Still waiting for the echo: ask again at once.
		e.askEcho(p, now)
	case !wasUp:
		// Back after silence: what it sent meanwhile is lost for us, and
		// our frames to it were released. Start both streams afresh and
		// resynchronise.
		e.log.Info("pfsync: peer is back", "peer", uint32(sender))
		p.resetStream()
		p.acked = e.nextSeq - 1
		e.resync(p, now)
	}
	return p
}

// hello handles a Hello of p, whose frame names seq as p's last sequenced
// frame: it confirms p if it echoes our epoch, and answers a Hello that is
// not itself an answer.
func (e *Engine) hello(p *peer, hl wire.Hello, seq uint64, now time.Time) {
	p.boot = hl.Boot
	if !p.confirmed && hl.Echo == e.epoch {
		// p is live: its stream starts after the frames it sent before
		// the Hello (the bulk sync covers what they carried), and frames
		// sent after it count even if they arrived first: starting at
		// the first frame to arrive, an earlier one delayed behind it
		// would count as a duplicate.
		p.confirmed, p.helloAt = true, time.Time{}
		p.resetStream()
		p.next, p.highest = seq+1, seq
		e.log.Debug("pfsync: peer confirmed", "peer", uint32(p.id), "from_seq", seq+1)
		e.requestBulk(p, now)
	}
	if hl.Flags&wire.HelloReply == 0 && p.helloSent != now {
		e.sendHello(p.id, true, now)
	}
}

// askEcho sends p a Hello that carries p's epoch and asks for ours back
// (Engine.hello answers it), and schedules the next one while p has not
// answered.
func (e *Engine) askEcho(p *peer, now time.Time) {
	e.sendHello(p.id, false, now)
	p.helloSent = now
	p.helloAt = now.Add(e.cfg.Heartbeat)
}

// remoteRecord merges a full record received from a peer. raw is its
// encoding, stored as is when the record is new.
func (e *Engine) remoteRecord(r *record.Record, raw []byte, now time.Time) {
	id := r.ID
	own := id.Creator == uint32(e.cfg.Node)
	if t, dead := e.tombs[id]; dead {
		if r.Version <= t.ver {
			// Deleted here: a late copy, or the sender missed the delete.
			e.stats.Suppressed++
			e.enqueue(id, opDelete, true, wire.DeleteLen, now)
			return
		}
		delete(e.tombs, id)
	}
	ent, ok := e.store[id]
	if !ok {
		if e.ids.Issued(id) {
			// Created by this node in this life, no longer held and its
			// tombstone expired: it was deleted. Tell the others.
			e.stats.Suppressed++
			e.addTomb(id, r.Version, now)
			e.enqueue(id, opDelete, true, wire.DeleteLen, now)
			return
		}
		// New to us (or ours from a previous life, which the dataplane
		// lost: adopt it back, as pfsync's bulk does after a reboot).
		ent = entry{ver: r.Version, at: e.clock(now), flags: fAnnounced}
		e.peerChanged(&ent, now)
		e.setData(&ent, raw)
		e.created(id)
		e.applyTable(id, &ent, r, own, now)
		e.dirtied(0, ent.flags)
		e.store[id] = ent
		e.changed(id)
		return
	}
	if err := wire.DecodeRecord(e.data(ent), &e.scratch); err != nil {
		return
	}
	merged, out := record.Merge(&e.scratch, r)
	if own && ent.flags&fLocal != 0 && r.Version >= ent.ver && !sameOwned(&e.scratch, &merged) {
		// Our own record, re-announced by the dataplane after a restart,
		// while the peers kept another copy of the previous life (the
		// creator alone changes these fields): the dataplane's content
		// wins, under a version above theirs.
		e.scratch.Version = r.Version + 1
		merged, _ = record.Merge(&e.scratch, r)
		out = record.Changed | record.StaleOrig
	}
	e.merged(id, ent, &e.scratch, &merged, out, own, now)
}

// sameOwned reports whether a and b agree on the fields only the creator
// changes.
func sameOwned(a, b *record.Record) bool {
	return a.Key == b.Key && a.Flags == b.Flags && a.Expire == b.Expire && a.Timeout == b.Timeout &&
		slices.EqualFunc(a.Ext, b.Ext, func(x, y record.Ext) bool { return x.Type == y.Type && bytes.Equal(x.Data, y.Data) })
}

// merged stores the result of merging a received copy into old, the
// stored record.
func (e *Engine) merged(id record.ID, ent entry, old, merged *record.Record, out record.Outcome, own bool, now time.Time) {
	if out.Stale() {
		// Our copy is ahead in some direction: send it back so the
		// sender converges (pfsync's stale update echo).
		e.stats.Stale++
		e.enqueue(id, opUpsert, true, int(ent.n), now)
	}
	if !out.Has(record.Changed) {
		return
	}
	was := ent.flags
	e.lifeFrom(&ent, old, merged, now)
	e.peerChanged(&ent, now)
	ent.ver = merged.Version
	ent.flags |= fFull
	e.setData(&ent, e.encode(merged))
	ent.flags |= fAnnounced
	e.applyTable(id, &ent, merged, own, now)
	e.dirtied(was, ent.flags)
	e.store[id] = ent
	e.changed(id)
}

func (e *Engine) remoteDelta(p *peer, d *record.Delta, now time.Time) {
	if t, dead := e.tombs[d.ID]; dead && d.Version <= t.ver {
		e.stats.Suppressed++
		return
	}
	ent, ok := e.store[d.ID]
	if !ok {
		// A compressed update of a record we do not hold: ask for it
		// (pfsync UPD_REQ).
		e.request(d.ID, now)
		return
	}
	if err := wire.DecodeRecord(e.data(ent), &e.scratch); err != nil {
		return
	}
	merged, out := record.MergeDelta(&e.scratch, d)
	own := d.ID.Creator == uint32(e.cfg.Node)
	if own && ent.flags&fLocal != 0 && d.Version >= ent.ver &&
		(merged.Expire != e.scratch.Expire || merged.Timeout != e.scratch.Timeout) {
		// As in remoteRecord: our own record, re-announced by the
		// dataplane after a restart, against a peer's copy of the
		// previous life (whose lifetime aged on the way): the
		// dataplane's lifetime wins, under a version above theirs.
		merged.Expire, merged.Timeout = e.scratch.Expire, e.scratch.Timeout
		merged.Version = d.Version + 1
		out |= record.Changed | record.StaleOrig
	}
	e.merged(d.ID, ent, &e.scratch, &merged, out, own, now)
}

func (e *Engine) remoteDelete(d wire.Delete, now time.Time) {
	if ent, ok := e.store[d.ID]; ok {
		if ent.ver > d.Version {
			// Our copy is newer than the delete: it lives on.
			e.stats.Stale++
			ent.flags |= fFull
			e.store[d.ID] = ent
			e.enqueue(d.ID, opUpsert, true, int(ent.n), now)
			return
		}
		e.dropRecord(d.ID, ent)
	}
	e.addTomb(d.ID, d.Version, now)
	e.unqueueUpsert(d.ID)
}

// dropRecord removes a record a peer deleted from the store and the Table
// (if the Table holds it).
func (e *Engine) dropRecord(id record.ID, ent entry) {
	e.forget(id, ent)
	if e.cfg.Table != nil && ent.flags&fCommitted != 0 {
		if err := e.cfg.Table.Delete(id); err != nil {
			e.tableRefused("delete", id, err)
		}
	}
}

func (e *Engine) remoteClear(c wire.Clear, now time.Time) {
	for id, ent := range e.store {
		if id.Creator != c.Creator {
			continue
		}
		if c.HasZone {
			if wire.DecodeRecord(e.data(ent), &e.scratch) != nil || e.scratch.Key.Zone != c.Zone {
				continue
			}
		}
		e.dropRecord(id, ent)
		e.addTomb(id, ent.ver, now)
	}
}

func (e *Engine) answerRequest(id record.ID, now time.Time) {
	if ent, ok := e.store[id]; ok {
		ent.flags |= fFull // the asker does not hold it: a full record
		e.store[id] = ent
		e.enqueue(id, opUpsert, true, int(ent.n), now)
	} else if _, ok := e.tombs[id]; ok {
		e.enqueue(id, opDelete, true, wire.DeleteLen, now)
	} else if e.ids.Issued(id) {
		// Created in this life, and we do not hold it: it was deleted
		// long ago (ids are never reused), so no version of it may live
		// on.
		e.addTomb(id, math.MaxUint64, now)
		e.enqueue(id, opDelete, true, wire.DeleteLen, now)
	} else {
		// Another node's record, or ours from a previous life (or one
		// never handed out): not held does not mean deleted. After a
		// restart this node holds its previous life's records only once
		// the peers' bulk syncs brought them back, so a request for one
		// — replayed, or a genuine third node asking during the restart
		// window — must not make us delete it everywhere.
		e.stats.RequestsIgnored++
		return
	}
	e.stats.RequestsAnswered++
	e.scheduleFlush(now)
}

// request queues a request for record id, unless one is queued and not
// sent yet (several compressed updates of a record we miss, in one frame
// or a few: FreeBSD's pfsync dedups the same way), or MaxPending requests
// are (counted in QueueDrops; anti-entropy repairs what they would have).
func (e *Engine) request(id record.ID, now time.Time) {
	queued, dropped := e.sender.request(id, e.cfg.MaxPending)
	if dropped {
		e.stats.QueueDrops++
	}
	if !queued {
		return
	}
	e.stats.RequestsSent++
	e.scheduleFlush(now)
}

// flushCommits writes the changes of the frame just read to the BatchTable
// in one call (CommitDirect). A record changed twice in the frame is
// written once; one deleted since is skipped.
func (e *Engine) flushCommits() {
	if len(e.commitq) == 0 {
		return
	}
	e.commitBatch(context.Background(), e.batch, e.commitq)
	e.commitq = e.commitq[:0]
}

// applyTable hands a changed remote record to the Table, or marks it for
// PrepareTakeover (CommitOnTakeover; records of this node always go to the
// Table, which is their home).
func (e *Engine) applyTable(id record.ID, ent *entry, dec *record.Record, own bool, now time.Time) {
	if e.cfg.Table == nil {
		return
	}
	if e.cfg.Commit == CommitOnTakeover && !own {
		ent.flags |= fDirty
		return
	}
	if e.batch != nil {
		// Written with the other changes of the frame, in one call
		// (flushCommits).
		ent.flags |= fDirty
		e.commitq = append(e.commitq, id)
		return
	}
	if err := e.commit(id, ent, dec, now); err != nil {
		// Counted and logged by commit; the entry stays dirty and
		// PrepareTakeover retries it.
		return
	}
}

// acked processes an Ack of our stream from p.
func (e *Engine) acked(p *peer, a *wire.Ack, now time.Time) {
	cum := min(a.Cum, e.nextSeq-1)
	if cum > p.acked {
		p.acked = cum
		e.ackProgress()
	}
	if len(a.Nacks) > 0 {
		e.stats.NacksReceived++
		p.stats.NacksReceived++
	}
	// Only the frames held for resending can be sent again: each range is
	// cut to them before it is walked. The ranges come from the network
	// and may span 2^62 numbers; the decoder checked that they ascend
	// without overlapping, so the walk visits each held frame at most
	// once, whatever the ack claims.
	if first, last, ok := e.held(); ok {
		for _, r := range a.Nacks {
			for seq := max(r.First, first); seq <= min(r.Last, last); seq++ {
				e.nackSteps++
				if f := e.ring.at(seq); f != nil {
					e.retransmit(p, f, now)
				}
			}
		}
	}
	e.trimRing()
}

package pfsync

import (
	"errors"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// errSkip means an element was not added and should not be retried.
var errSkip = errors.New("skip")

func (e *Engine) header(seq uint64) wire.Header {
	return wire.Header{Sender: uint32(e.cfg.Node), Epoch: e.epoch, Seq: seq}
}

// flushLocked sends everything queued, in as many frames as needed.
func (e *Engine) flushLocked(now time.Time) {
	e.flushAt = time.Time{}
	for e.pending() {
		if !e.sendSequenced(now) {
			break
		}
	}
	e.flushed()
}

// flushFull sends the frames the queue fills and leaves the rest queued
// for the planned flush. The change that brings the queue to a frame's
// worth seldom fits the frame the others fill: sent at once, it would
// leave alone in a frame of its own, one such frame for every full one in
// a storm of new records.
func (e *Engine) flushFull(now time.Time) {
	for e.pending() && e.q.bytes >= e.frameWorth() {
		if !e.sendSequenced(now) {
			break
		}
	}
	e.flushed()
}

// sendSequenced builds and sends one frame of queued elements. It reports
// whether it made progress.
func (e *Engine) sendSequenced(now time.Time) bool {
	seq := e.nextSeq
	if err := e.b.Reset(e.frame[:0], e.mtu, e.header(seq)); err != nil {
		e.log.Error("pfsync: frame builder", "err", err)
		return false
	}
	e.addAcks(now, false)
	f := sentFrame{seq: seq, pooled: true, ids: e.ring.getIDs()}
	for c, ok := e.nextCtl(); ok; c, ok = e.nextCtl() {
		err := e.addCtl(c)
		if err == wire.ErrFull {
			break
		}
		e.ctlTaken()
		if err != nil {
			e.log.Error("pfsync: control element dropped", "kind", c.kind.String(), "err", err)
			continue
		}
		f.ctl = append(f.ctl, c)
	}
	for e.q.pos < len(e.q.order) {
		id := e.q.order[e.q.pos]
		s, ok := e.q.pend[id]
		if !ok {
			e.q.pos++
			continue
		}
		n := e.b.Len()
		err := e.addElem(id, s, now)
		if err == wire.ErrFull {
			break
		}
		e.q.pos++
		delete(e.q.pend, id)
		if err != nil {
			continue
		}
		e.q.bytes = max(0, e.q.bytes-(e.b.Len()-n))
		f.ids = append(f.ids, id)
	}
	if len(f.ids) == 0 && len(f.ctl) == 0 {
		e.ring.pool = append(e.ring.pool, f.ids)
		if !e.b.Empty() {
			// Only acks: send them outside the reliable stream.
			e.b.SetSeq(e.nextSeq - 1)
			e.b.SetFlags(wire.FlagUnsequenced)
			e.sendFrame(Broadcast, e.b.Frame(), now)
			return true
		}
		return false
	}
	if e.ackRequested {
		e.b.SetFlags(wire.FlagAckRequested)
	}
	e.sendFrame(Broadcast, e.b.Frame(), now)
	e.sequenced(f)
	e.trimRing()
	return true
}

// addElem adds the element of one queued record: its live copy, encoded now
// from the store, or its delete.
func (e *Engine) addElem(id record.ID, s slot, now time.Time) error {
	var err error
	switch s {
	case slotUpsert:
		ent, ok := e.store[id]
		if !ok {
			return errSkip
		}
		if err := wire.DecodeRecord(e.data(ent), &e.scratch); err != nil {
			e.log.Error("pfsync: stored record does not decode", "id", id.String(), "err", err)
			return errSkip
		}
		e.scratch.Expire = aged(e.scratch.Expire, e.elapsed(ent, now))
		switch {
		case ent.flags&fAnnounced == 0:
			err = e.b.AddInsert(&e.scratch)
		case ent.flags&fFull == 0:
			// Only dynamic fields changed: a compressed update (pfsync
			// UPD_C). A peer that misses the record asks for it.
			d := e.scratch.Delta(record.FieldsAll)
			err = e.b.AddDelta(&d)
		default:
			err = e.b.AddUpdate(&e.scratch)
		}
		if err == nil && ent.flags&(fAnnounced|fFull) != fAnnounced {
			ent.flags = ent.flags&^fFull | fAnnounced
			e.store[id] = ent
		}
	case slotDelete:
		t, ok := e.tombs[id]
		if !ok {
			return errSkip
		}
		err = e.b.AddDelete(wire.Delete{ID: id, Version: t.ver})
	default:
		return errSkip
	}
	if err != nil && err != wire.ErrFull {
		e.stats.BadValue++
		e.log.Error("pfsync: record cannot be sent", "id", id.String(), "err", err)
		return errSkip
	}
	return err
}

// addStored adds ent as a full UPDATE from its stored encoding, which is
// the element body: no decode and re-encode, which was half of a large
// bulk's cost. Only the lifetime changes, aged by the time since it was
// current (wire.AppendAgedRecord patches that one varint).
func (e *Engine) addStored(ent entry, now time.Time) error {
	body := e.data(ent)
	if el := e.elapsed(ent, now); el > 0 {
		b, err := wire.AppendAgedRecord(e.records.enc[:0], body, el)
		if err != nil {
			return err
		}
		e.records.enc, body = b, b
	}
	return e.b.AddRecordBody(wire.KindUpdate, body)
}

func (e *Engine) addCtl(c ctl) error {
	switch c.kind {
	case wire.KindRequest:
		return e.b.AddRequest(wire.Request{ID: c.id})
	case wire.KindBulkRequest:
		return e.b.AddBulkRequest(wire.BulkRequest{Generation: c.gen, Creator: c.creator, Buckets: c.buckets})
	}
	return errSkip
}

// addAcks adds an Ack for every peer whose ack is due (or every peer with a
// started stream when all is set).
func (e *Engine) addAcks(now time.Time, all bool) {
	for _, p := range e.peers {
		if p.next == 0 || !(all || p.ackDue) {
			continue
		}
		e.ack = wire.Ack{Peer: uint32(p.id), Epoch: p.epoch, Cum: p.next - 1, Nacks: p.gaps(e.ack.Nacks[:0], 32)}
		if e.b.AddAck(&e.ack) != nil {
			return
		}
		p.ackDue = false
		if len(e.ack.Nacks) > 0 {
			e.stats.NacksSent++
			p.stats.NacksSent++
			p.nackAt = now.Add(2 * e.cfg.AckDelay)
		}
	}
}

// sendUnsequenced sends a frame outside the reliable stream: a heartbeat
// with every peer's ack, or only the due acks. Its header carries the last
// sequence number used, so receivers detect a lost frame at the tail of the
// stream.
func (e *Engine) sendUnsequenced(to NodeID, heartbeat bool, now time.Time) {
	if err := e.b.Reset(e.frame[:0], e.mtu, e.header(e.nextSeq-1)); err != nil {
		e.log.Error("pfsync: frame builder", "err", err)
		return
	}
	e.b.SetFlags(wire.FlagUnsequenced)
	if heartbeat {
		if err := e.b.AddHeartbeat(wire.Heartbeat{Interval: e.cfg.Heartbeat, Records: uint64(e.local)}); err != nil {
			e.log.Error("pfsync: heartbeat", "err", err)
		}
	}
	e.addAcks(now, heartbeat)
	if !e.b.Empty() {
		e.sendFrame(to, e.b.Frame(), now)
	}
}

func (e *Engine) sendHello(to NodeID, reply bool, now time.Time) {
	if err := e.b.Reset(e.frame[:0], e.mtu, e.header(e.nextSeq-1)); err != nil {
		e.log.Error("pfsync: frame builder", "err", err)
		return
	}
	e.b.SetFlags(wire.FlagUnsequenced)
	h := wire.Hello{
		Node: uint32(e.cfg.Node), Epoch: e.epoch, Boot: e.boot,
		MinVersion: wire.Version, MaxVersion: wire.Version, Caps: wire.CapAntiEntropy,
	}
	if reply {
		h.Flags = wire.HelloReply
	}
	if p := e.peers[to]; p != nil {
		h.Echo = p.epoch
	}
	if err := e.b.AddHello(h); err != nil {
		e.log.Error("pfsync: hello", "err", err)
		return
	}
	e.sendFrame(to, e.b.Frame(), now)
}

// sendFrame seals frame if a Sealer is configured and sends it.
func (e *Engine) sendFrame(to NodeID, frame []byte, now time.Time) {
	out := frame
	if e.sealer != nil {
		s, err := e.sealer.Seal(e.sealed[:0], frame)
		if err != nil {
			e.stats.SendErrors++
			e.log.Error("pfsync: sealing a frame", "err", err)
			return
		}
		e.sealed, out = s, s
	}
	e.lastSent = now
	if err := e.tr.Send(to, out); err != nil {
		e.stats.SendErrors++
		e.log.Debug("pfsync: send failed", "to", uint32(to), "err", err)
		return
	}
	e.stats.FramesOut++
	e.stats.BytesOut += uint64(len(out))
	if to != Broadcast {
		if p := e.peers[to]; p != nil {
			p.stats.FramesOut++
			p.stats.BytesOut += uint64(len(out))
		}
		return
	}
	for _, p := range e.peers {
		p.stats.FramesOut++
		p.stats.BytesOut += uint64(len(out))
	}
}

// retransmit sends frame f again to peer p, under its original sequence
// number, with the current state of the records it referenced.
func (e *Engine) retransmit(p *peer, f *sentFrame, now time.Time) {
	if !f.resentAt.IsZero() && now.Sub(f.resentAt) < e.cfg.AckDelay {
		return
	}
	f.resentAt = now
	if err := e.b.Reset(e.frame[:0], e.mtu, e.header(f.seq)); err != nil {
		return
	}
	if f.bulk {
		if e.b.AddBulkStart(wire.BulkStart{Generation: f.bulkGen, Expected: f.bulkExp}) != nil {
			return
		}
		if f.hasMark && e.b.AddBulkMark(f.mark) != nil {
			return
		}
		if f.end && e.b.AddBulkEnd(wire.BulkEnd{Generation: f.bulkGen, Digest: f.endDig}) != nil {
			return
		}
	}
	for _, c := range f.ctl {
		if e.addCtl(c) != nil {
			return
		}
	}
	for i, id := range f.ids {
		var err error
		if ent, ok := e.store[id]; ok {
			err = e.addStored(ent, now)
		} else if t, ok := e.tombs[id]; ok {
			err = e.b.AddDelete(wire.Delete{ID: id, Version: t.ver})
		} else {
			continue
		}
		if err == wire.ErrFull {
			// The records grew since: what does not fit goes out in new frames.
			for _, id := range f.ids[i:] {
				_, live := e.store[id]
				op, ann := opDelete, true
				if live {
					op = opUpsert
				}
				e.enqueue(id, op, ann, 64, now)
			}
			break
		}
		e.stats.Retransmits++
		p.stats.Retransmits++
	}
	e.sendFrame(p.id, e.b.Frame(), now)
}

// trimRing drops frames every up peer acknowledged, and the oldest ones
// beyond ResendLimit (their loss is repaired by the peers' gap handling:
// they fall back to a bulk sync).
func (e *Engine) trimRing() {
	e.stats.ResendDrops += e.trim(e.peers.minAcked(e.last()), e.cfg.ResendLimit)
}

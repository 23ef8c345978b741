package pfsync

import "time"

// tick runs everything that is due at now and returns when it must run
// again. It is called by the timer goroutine with e.mu held. Each owner
// keeps its own timers: the sender its flush and heartbeat, every peer its
// liveness, acks, gap, resync and bulk deadlines (peer.tick), the bulk
// transfers their token bucket, anti-entropy its digest and tombstone
// scan.
func (e *Engine) tick(now time.Time) time.Time {
	w := wakeup{next: now.Add(e.cfg.Heartbeat)}
	if e.flushDue(now) {
		e.flushLocked(now)
	}
	acksDue := e.tickPeers(now, &w)
	e.syncCheck(now)
	if d := e.startedAt.Add(e.cfg.Discovery); !e.inSync && d.After(now) {
		// Once past, the window must not be scheduled again: it would wake
		// the loop at once, every time, until the node is in sync.
		w.at(d)
	}
	if acksDue || len(e.ctlq) > 0 {
		e.flushLocked(now) // acks ride along, or leave in an ack-only frame
		e.sendUnsequenced(Broadcast, false, now)
	}
	if e.bulk.running() {
		w.at(e.sendBulks(now))
	}
	digest, tombs := e.ae.due(now, &w)
	if digest && e.antiEntropyReady() {
		e.sendDigest(now)
	}
	if tombs {
		e.expireTombs(now)
	}
	if e.heartbeatDue(now, e.cfg.Heartbeat) {
		e.sendUnsequenced(Broadcast, true, now)
	}
	w.at(e.lastSent.Add(e.cfg.Heartbeat))
	w.at(e.flushAt)
	e.trimRing()
	if !w.next.After(now) {
		return now.Add(time.Microsecond)
	}
	return w.next
}

// tickPeers runs every peer's timers and reports whether an ack is due.
func (e *Engine) tickPeers(now time.Time, w *wakeup) (acksDue bool) {
	t := peerTimers{dead: e.cfg.Heartbeat * time.Duration(e.cfg.DeadAfter), gap: 2 * e.cfg.Heartbeat}
	for _, p := range e.peers {
		due, forget := p.tick(now, t, e, w)
		if forget {
			delete(e.peers, p.id)
		}
		acksDue = acksDue || due
	}
	return acksDue
}

// The engine's side of peer.tick (peerEvents).
var _ peerEvents = (*Engine)(nil)

func (e *Engine) peerDown(p *peer, now time.Time) {
	e.log.Warn("pfsync: peer down", "peer", uint32(p.id), "silent", now.Sub(p.lastHeard))
	e.ackProgress() // UpsertSync no longer waits for it
}

func (e *Engine) gapGivenUp(p *peer, now time.Time) {
	// The peer could not fill the gap (its resend queue dropped the
	// frames): move on and resynchronise.
	e.log.Info("pfsync: giving up on lost frames, resynchronising", "peer", uint32(p.id), "from", p.next)
	p.skipGap(p.gapHigh, now)
	e.streamLost(p, p.next-1, now)
	// Bulk marks that waited for the lost frames can settle now.
	e.checkBulk(p, now)
}

func (e *Engine) bulkTimedOut(p *peer, now time.Time) {
	e.stats.BulkFailed++
	e.log.Warn("pfsync: bulk sync timed out", "peer", uint32(p.id), "attempt", p.bulk.attempts+1)
	e.retryBulk(p, now)
}

// antiEntropyReady reports whether this node's view of its own records is
// complete enough to be the reference: a restarted node first collects its
// previous life's records from the peers' bulk syncs.
func (e *Engine) antiEntropyReady() bool {
	if !e.inSync || e.peers.up() == 0 {
		return false
	}
	for _, p := range e.peers {
		if p.up && p.bulk.active() {
			return false
		}
	}
	return true
}

package pfsync

import "time"

// tick runs everything that is due at now and returns when it must run
// again. It is called by the timer goroutine with e.mu held.
func (e *Engine) tick(now time.Time) time.Time {
	next := now.Add(e.cfg.Heartbeat)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	if !e.flushAt.IsZero() && !now.Before(e.flushAt) {
		e.flushLocked(now)
	}

	dead := e.cfg.Heartbeat * time.Duration(e.cfg.DeadAfter)
	gapTimeout := 2 * e.cfg.Heartbeat
	acksDue := false
	for _, p := range e.peers {
		if p.up && now.Sub(p.lastHeard) >= dead {
			p.up = false
			e.log.Warn("pfsync: peer down", "peer", uint32(p.id), "silent", now.Sub(p.lastHeard))
			if p.bulk.active() {
				p.bulk = bulkRecv{}
			}
			p.resyncAt = time.Time{}
			e.ackProgress() // UpsertSync no longer waits for it
		}
		if !p.up {
			if !p.confirmed {
				// It never proved it is live (a recording, or forged
				// in Insecure mode): forget it, it holds no state
				// of ours. A real node says hello again.
				delete(e.peers, p.id)
			}
			continue
		}
		earlier(p.lastHeard.Add(dead))
		if !p.confirmed {
			if !now.Before(p.helloAt) {
				e.askEcho(p, now)
			}
			earlier(p.helloAt)
			continue
		}
		if p.hasGap() && !p.gapSince.IsZero() && now.Sub(p.gapSince) >= gapTimeout {
			// The peer could not fill the gap (its resend queue dropped
			// the frames): move on and resynchronise.
			e.log.Info("pfsync: giving up on lost frames, resynchronising", "peer", uint32(p.id), "from", p.next)
			p.skipGap(p.gapHigh, now)
			e.streamLost(p, p.next-1, now)
			// Bulk marks that waited for the lost frames can settle now.
			e.checkBulk(p, now)
		}
		if p.hasGap() {
			if !now.Before(p.nackAt) {
				p.ackDue, p.ackAt = true, now
			} else {
				earlier(p.nackAt)
			}
			earlier(p.gapSince.Add(gapTimeout))
		}
		if p.ackDue {
			if !now.Before(p.ackAt) {
				acksDue = true
			} else {
				earlier(p.ackAt)
			}
		}
		if !p.resyncAt.IsZero() {
			if !now.Before(p.resyncAt) {
				e.resyncTimedOut(p, now)
			} else {
				earlier(p.resyncAt)
			}
		}
		if p.bulk.active() {
			if !now.Before(p.bulk.deadline) {
				switch {
				case p.bulk.session.Without(p.bulk.done).Empty():
					// Every range settled; only the end marker is
					// missing, and there is nothing left to ask for.
					e.completeBulk(p, now)
				case p.hasGap() && !p.gapSince.IsZero() && len(p.bulk.marks) > 0:
					// Marks wait behind frames being recovered: the
					// gap is filled or given up within gapTimeout,
					// and they settle then.
					p.bulk.deadline = p.gapSince.Add(gapTimeout)
				default:
					e.stats.BulkFailed++
					e.log.Warn("pfsync: bulk sync timed out", "peer", uint32(p.id), "attempt", p.bulk.attempts+1)
					e.retryBulk(p, now)
				}
			}
			if p.bulk.active() {
				earlier(p.bulk.deadline)
			}
		}
	}
	e.syncCheck(now)
	if d := e.startedAt.Add(e.cfg.Discovery); !e.inSync && d.After(now) {
		// Once past, the window must not be scheduled again: it would wake
		// the loop at once, every time, until the node is in sync.
		earlier(d)
	}
	if acksDue || len(e.ctlq) > 0 {
		e.flushLocked(now) // acks ride along, or leave in an ack-only frame
		e.sendUnsequenced(Broadcast, false, now)
	}
	if len(e.bulks) > 0 {
		earlier(e.sendBulks(now))
	}
	if e.cfg.AntiEntropy > 0 {
		if !now.Before(e.nextDigest) {
			e.nextDigest = now.Add(e.cfg.AntiEntropy)
			if e.antiEntropyReady() {
				e.sendDigest(now)
			}
		}
		earlier(e.nextDigest)
	}
	if !now.Before(e.nextTombScan) {
		e.expireTombs(now)
		e.nextTombScan = now.Add(e.cfg.TombstoneTTL / 2)
	}
	earlier(e.nextTombScan)
	if now.Sub(e.lastSent) >= e.cfg.Heartbeat {
		e.sendUnsequenced(Broadcast, true, now)
	}
	earlier(e.lastSent.Add(e.cfg.Heartbeat))
	earlier(e.flushAt)
	e.trimRing()
	if !next.After(now) {
		next = now.Add(time.Microsecond)
	}
	return next
}

// antiEntropyReady reports whether this node's view of its own records is
// complete enough to be the reference: a restarted node first collects its
// previous life's records from the peers' bulk syncs.
func (e *Engine) antiEntropyReady() bool {
	if !e.inSync || e.peersUp() == 0 {
		return false
	}
	for _, p := range e.peers {
		if p.up && p.bulk.active() {
			return false
		}
	}
	return true
}

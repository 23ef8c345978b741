package pfsync

import (
	"sync"
	"time"
)

// syncState is whether this node is in sync with its peers, and the CARP
// demotion that follows from it.
type syncState struct {
	startedAt  time.Time // Start: origin of the discovery window
	inSync     bool      // see check; once set it stays set
	bulkGaveUp bool      // in sync only because some peer's bulk failed every retry

	// demMu orders the demotion: it is held while the value is computed
	// (under Engine.mu) and handed to the Demoter, so a value computed
	// later is always applied later. Lock order: demMu, then Engine.mu;
	// never demMu under Engine.mu.
	demMu   sync.Mutex
	demBulk int // last value given to the Demoter
}

// syncVerdict is how a node came to be in sync.
type syncVerdict uint8

const (
	notYet   syncVerdict = iota // not in sync (or in sync before)
	founder                     // nobody heard within the discovery window
	degraded                    // some peer's bulk failed every retry
	synced                      // bulk syncs from every peer up completed
)

// check decides whether this node is in sync, the condition that clears
// DemoteSourceBulk, and returns the verdict when it just became so. It is in sync once, for every peer it currently knows to
// be up, a full bulk sync from that peer completed and passed its digest
// check (or failed every retry: then in sync but degraded, with
// DemoteDegraded). A peer that goes down stops being required. With no peer
// up, the node must also have waited Config.Discovery since Start: a node
// that heard nobody in that window is the founder of the cluster, with
// nothing to fetch (OpenBSD's pfsync likewise gives up waiting and
// undemotes); but a node that heard a live peer and got no table from any
// keeps waiting (midBulk). A bulk from one peer is never enough while
// another up peer — possibly the one holding the records — has not sent its
// own: a node that booted with an empty table must not look ready to CARP
// because a peer as empty as itself answered first.
//
// Once in sync the node stays in sync: a newcomer must not demote a running
// master (check then returns notYet: nothing new).
func (s *syncState) check(peers peerSet, now time.Time, discovery time.Duration) syncVerdict {
	if s.inSync {
		return notYet
	}
	anyUp, failed := false, false
	for _, p := range peers {
		if !p.up {
			continue
		}
		anyUp = true
		switch {
		case p.synced:
		case p.bulkFailed:
			failed = true
		default:
			return notYet
		}
	}
	if !anyUp && now.Sub(s.startedAt) < discovery {
		return notYet
	}
	if !anyUp && midBulk(peers) {
		// Every peer went silent before one sent us its table: the sync
		// link failed during our bulk, or the peers died. A dead peer
		// leaves us master anyway, demoted or not; a live one behind a
		// failed link is still master, and must stay so (a preempting
		// backup with half a table would drop the other half of the
		// flows). The bulk resumes when the link does.
		return notYet
	}
	s.inSync, s.bulkGaveUp = true, failed
	switch {
	case !anyUp && len(peers) == 0:
		return founder
	case failed:
		return degraded
	}
	return synced
}

// midBulk reports whether this node heard a live peer (one that echoed our
// epoch) in this life but holds no peer's table: no full bulk sync
// completed or was given up.
func midBulk(peers peerSet) bool {
	confirmed := false
	for _, p := range peers {
		if p.synced || p.bulkFailed {
			return false
		}
		confirmed = confirmed || p.confirmed
	}
	return confirmed
}

// demotion returns the demotion the state asks for: init until in sync,
// degraded if in sync only because a bulk failed every retry, else 0.
func (s *syncState) demotion(init, degraded int) int {
	switch {
	case !s.inSync:
		return init
	case s.bulkGaveUp:
		return degraded
	}
	return 0
}

// syncCheck decides whether this node is in sync now (syncState.check)
// and says so once it is.
func (e *Engine) syncCheck(now time.Time) {
	switch e.check(e.peers, now, e.cfg.Discovery) {
	case founder:
		e.log.Info("pfsync: no peer heard within the discovery window: founder, in sync", "window", e.cfg.Discovery, "records", len(e.store))
	case degraded:
		e.log.Warn("pfsync: in sync but degraded: the bulk sync from some peer failed every retry", "records", len(e.store))
	case synced:
		e.log.Info("pfsync: in sync: bulk syncs from every peer up complete", "peers", e.peers.up(), "records", len(e.store))
	}
}

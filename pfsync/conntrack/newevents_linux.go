package conntrack

import (
	"time"

	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// A commit writes tens of thousands of flows, and while the watcher's
// socket is in the group of NEW events the kernel builds an event for
// every one of them, during the write (ctnetlink builds an event only for
// a group that has a listener): about half of the kernel's work per create,
// which stretches the serial part of a takeover commit, and then the
// watcher reads each event only to recognise it as the echo of the
// write. So the event socket leaves the NEW group when a large commit
// starts and joins it again once no commit has run for newRejoinDelay (a
// takeover commit is a series of CommitBatch calls); the writes need no
// echo (tracker.noEcho does what the echo of a create would have done).
//
// What is not lost: a flow that traffic creates meanwhile sends an UPDATE
// event (still received) at its first change after its creation — the
// first reply (SEEN_REPLY), ASSURED, a TCP state change — so the only
// flows the watcher has not heard of when it joins again are those that
// have had no reply yet. catchUpNew dumps exactly those (a dump the kernel
// filters on SEEN_REPLY: the injected flows, replied already, are not even
// sent) and reports the ones the tracker does not know. Flows that another
// program created through ctnetlink with SEEN_REPLY set in that window are
// the exception: the next resync reports them.

// newPause is the state of the NEW-group pause, under the Backend's injMu.
type newPause struct {
	commits int           // commits in progress (pauseNew to resumeNew)
	left    bool          // the event socket is out of the NEW group
	end     time.Time     // when the last commit ended
	done    chan struct{} // tells the watcher that the last commit ended
}

// newRejoinDelay is how long the event socket stays out of the NEW group
// after the last commit ended: far longer than the gap between two
// batches of one takeover commit, also on a loaded machine (a commit that
// starts after the socket joined again finds the tracker holding the
// earlier batches' flows and may not qualify, and its creates then come
// back as events), and short enough that the unreplied flows created
// meanwhile reach the peers soon after (the replied ones are reported by
// their events at once).
const newRejoinDelay = 250 * time.Millisecond

// A commit leaves the NEW group only when it is large, both in itself and
// next to the flows the tracker holds (about the kernel table's size): the
// dump that follows walks the whole kernel table (about 0.5 µs per entry
// the filter skips, in the kernel), where each create written without an
// event saves about 7 µs of CPU (the kernel's event and the watcher's
// handling of it). So a direct-mode backup, which commits every received
// frame of a few records, keeps its events; a takeover commit of its
// external cache, a thousand records per call, does not.
const (
	pauseNewMin   = 256 // records in one commit at least
	pauseNewRatio = 8   // records in one commit at least a pauseNewRatio-th of the tracked flows
)

// pauseNew counts a commit of n records and reports whether it did (the
// watcher runs): then resumeNew must follow. A large commit takes the
// event socket out of the NEW group; one that starts while it is out
// keeps it out.
func (b *Backend) pauseNew(n int) bool {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if !b.started || b.closed || b.events == nil {
		return false
	}
	b.injMu.Lock()
	defer b.injMu.Unlock()
	b.pause.commits++
	if b.pause.left || n < pauseNewMin {
		return true
	}
	b.t.mu.Lock()
	tracked := len(b.t.byKey)
	b.t.mu.Unlock()
	if n*pauseNewRatio < tracked {
		return true
	}
	if err := b.events.LeaveGroup(uint32(netfilter.GroupCTNew)); err != nil {
		// The commit's echoes then arrive as before.
		b.log.Debug("conntrack: leaving the NEW event group for a commit failed", "err", err)
		return true
	}
	b.pause.left = true
	return true
}

// resumeNew ends a commit pauseNew counted. The last one to end tells the
// watcher, which joins the NEW group again newRejoinDelay later unless
// another commit started meanwhile (rejoinNew).
func (b *Backend) resumeNew() {
	b.injMu.Lock()
	defer b.injMu.Unlock()
	b.pause.commits--
	if b.pause.commits > 0 || !b.pause.left {
		return
	}
	b.pause.end = time.Now()
	select {
	case b.pause.done <- struct{}{}:
	default: // the watcher has been told already
	}
}

// rejoinNew joins the NEW group again, on the watcher's goroutine, if no
// commit has run for newRejoinDelay, and then catches up (catchUpNew). It
// returns how long to wait before trying again, or 0 when done.
func (b *Backend) rejoinNew() time.Duration {
	b.injMu.Lock()
	if b.pause.commits > 0 || !b.pause.left {
		b.injMu.Unlock()
		return 0 // the running commit's end tells the watcher again
	}
	if wait := newRejoinDelay - time.Since(b.pause.end); wait > 0 {
		b.injMu.Unlock()
		return wait
	}
	err := b.events.JoinGroup(uint32(netfilter.GroupCTNew))
	if err == nil {
		b.pause.left = false
	}
	b.injMu.Unlock()
	if err != nil {
		select {
		case <-b.done:
			return 0 // closed
		default:
		}
		// The next commit's end tries again; until then only the
		// resyncs report new flows.
		b.t.count(func(s *Stats) { s.Errors++ })
		b.log.Error("conntrack: joining the NEW event group after a commit failed: new flows are reported by resyncs only", "err", err)
		return 0
	}
	b.catchUpNew()
	return 0
}

// catchUpNew reports the flows created while the event socket was out of
// the NEW group that the watcher has not heard of since (see pauseNew):
// every flow without a reply yet that the tracker does not know. It runs on
// the watcher's goroutine after rejoinNew joined the group, so a flow
// created later sends its NEW event. A failed dump costs a full resync.
func (b *Backend) catchUpNew() {
	if b.onCatchUp != nil {
		defer b.onCatchUp()
	}
	// The kernel sends only the flows without SEEN_REPLY (Linux 5.15 and
	// later filter dumps on status; older kernels ignore the filter and
	// send every flow, which comes to the same here).
	flows, err := b.dump.DumpFilter(ct.NewFilter().Status(0).StatusMask(uint32(ct.StatusSeenReply)), nil)
	if err != nil {
		b.t.count(func(s *Stats) { s.Errors++ })
		b.log.Warn("conntrack: dumping the flows created during a commit failed, resyncing", "err", err)
		if err := b.resync("after a commit"); err != nil {
			b.log.Warn("conntrack: resync failed", "err", err)
		}
		return
	}
	now := time.Now()
	var errs int
	var strict []flowKey
	for i := range flows {
		f := &flows[i]
		if b.t.knows(f) {
			continue // injected, or its events arrived
		}
		a, ok, err := b.t.observe(f, now, b.sink.NewID)
		if err != nil {
			errs++
			continue
		}
		if !b.cfg.StrictLocal {
			if k, ok := b.t.toLiberalize(f); ok {
				strict = append(strict, k)
			}
		}
		if ok {
			b.act(a)
		}
	}
	b.liberalizeOwn(strict)
	if errs > 0 {
		b.t.count(func(s *Stats) { s.Errors += uint64(errs) })
		b.log.Warn("conntrack: flows created during a commit not replicated", "flows", errs)
	}
}

// knows reports whether the tracker has an entry for f's flow.
func (t *tracker) knows(f *ct.Flow) bool {
	key := flowKeyOf(f)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[key] != nil
}

// noEcho does for reg's entry what the kernel's NEW event of its create
// would have done (tracker.observe), for a create written while the event
// socket was out of the NEW group: the echo of a peer's flow carries
// exactly the status bits the create wrote, so they are the ones to
// compare from now on, even after an update that kept the kernel's bits
// had failed. This node's own flow, created again by a peer's change,
// keeps what was written as injected: its next event is compared with it,
// as an event that came before the echo would be, and if it matches it is
// taken for the echo.
func (t *tracker) noEcho(reg registration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := reg.e; e.remote && t.byKey[e.key] == e {
		e.statusKept = false
	}
}

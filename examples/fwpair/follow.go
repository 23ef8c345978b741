package main

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// Demotion sources raised by the follow rule. The pfsync engine adds its own
// ("pfsync-bulk") and each group its own ("link",
// "senderr").
const (
	demoteLink   = "fwpair-link"
	demoteFollow = "fwpair-follow"
)

// demoter is the part of a carp.Group the follow rule drives.
type demoter interface {
	SetDemotion(source string, n int)
}

// follow keeps the groups of one node together, so that one firewall
// forwards both directions of every flow (pfSense's behaviour: a LAN
// failover takes the WAN with it). It works only through demotion, which
// it always raises on every group of the node at once:
//
//	condition on this node                         demotion on every group   cleared when
//	---------------------------------------------  ------------------------  -------------------------------------------
//	a group's link is down (that group is INIT)     fwpair-link +1            every group's link is up again
//	a group went MASTER -> BACKUP while another    fwpair-follow +1          no group has been MASTER for the hold
//	group of this node is still MASTER                                       time, or every group is MASTER
//	anything else (all MASTER, all BACKUP,          none                      -
//	a group became MASTER)
//
// A MASTER that raises its demotion advertises it at once, and a BACKUP
// peer takes over from a more demoted master at once, even without
// preemption (carp(4)): so the groups the node still holds move to the peer
// within one advertisement. Becoming MASTER never demotes anything: the
// peer's groups that lost mastership are the ones that follow.
//
// Why it cannot deadlock or flap:
//   - Every demotion is node-wide, so inside a node no group is ever
//     preferred over another, and the election between the nodes is decided
//     for all groups by the same quantities (demotion, then advskew).
//   - The link rule depends only on link state, an input: it moves the
//     groups once and stays put while the link stays down. Both nodes with
//     a link down are equally demoted and CARP falls back to advskew.
//   - The follow rule is raised by a loss of mastership and is only cleared
//     after the node has held no group for the hold time (or holds them
//     all, when the peer is gone), so the node cannot win the groups back
//     in the same instant it gave them up. With preemption it takes them
//     back after the hold; if the cause persists it gives them up again,
//     and each repeat within max_hold doubles the hold (up to max_hold):
//     a persistent fault costs at most one round trip of the groups per
//     max_hold, never a loop at advertisement speed.
//   - Groups that come back one advertisement apart (preemption after a
//     restart) never trigger the rule on the returning node: it only goes
//     BACKUP -> MASTER. The node handing over goes MASTER -> BACKUP on its
//     first group and demotes the rest, which only speeds up the hand-over.
type follow struct {
	hold, maxHold time.Duration
	log           *slog.Logger

	mu        sync.Mutex
	groups    map[uint8]demoter
	state     map[uint8]carp.State
	linkDown  map[uint8]bool
	linkDemo  bool
	following bool
	curHold   time.Duration
	lastEnd   time.Time // when the follow demotion was last cleared
	timer     *time.Timer
	closed    bool
	events    uint64 // follow events (for the status)
}

func newFollow(hold, maxHold time.Duration, log *slog.Logger) *follow {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &follow{hold: hold, maxHold: maxHold, log: log,
		groups: map[uint8]demoter{}, state: map[uint8]carp.State{}, linkDown: map[uint8]bool{}}
}

// add registers a group (before it starts).
func (f *follow) add(vhid uint8, g demoter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[vhid] = g
	f.state[vhid] = carp.Init
}

// setAll sets one demotion source on every group. Called with mu held;
// SetDemotion never blocks.
func (f *follow) setAll(source string, n int) {
	for _, v := range f.sortedVHIDs() {
		f.groups[v].SetDemotion(source, n)
	}
}

func (f *follow) sortedVHIDs() []uint8 {
	vs := make([]uint8, 0, len(f.groups))
	for v := range f.groups {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// link reports the link state of a group's interface.
func (f *follow) link(vhid uint8, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.linkDown[vhid] = !up
	anyDown := false
	for _, d := range f.linkDown {
		anyDown = anyDown || d
	}
	if anyDown != f.linkDemo {
		f.linkDemo = anyDown
		n := 0
		if anyDown {
			n = 1
		}
		f.log.Info("follow: link rule", "vhid", vhid, "up", up, "demote_all", n)
		f.setAll(demoteLink, n)
	}
}

// transition applies one state change of a group (called from the groups'
// OnTransition hooks, possibly concurrently).
func (f *follow) transition(t carp.Transition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if _, ok := f.groups[t.VHID]; !ok {
		return
	}
	f.state[t.VHID] = t.To
	masters := 0
	for _, s := range f.state {
		if s == carp.Master {
			masters++
		}
	}
	if t.From == carp.Master && t.To == carp.Backup && masters > 0 {
		f.raise(t.VHID)
	}
	if !f.following {
		return
	}
	switch {
	case masters == len(f.state):
		f.clear("every group is MASTER")
	case masters == 0:
		if f.timer == nil {
			f.timer = time.AfterFunc(f.curHold, f.expire)
		}
	default:
		f.stopTimer()
	}
}

// raise starts (or renews) the follow demotion. Called with mu held.
func (f *follow) raise(vhid uint8) {
	f.events++
	if f.following {
		return
	}
	now := time.Now()
	if f.curHold == 0 || f.lastEnd.IsZero() || now.Sub(f.lastEnd) >= f.maxHold {
		f.curHold = f.hold
	} else {
		f.curHold = min(2*f.curHold, f.maxHold)
	}
	f.following = true
	f.log.Warn("follow: a group lost mastership while another is MASTER: handing every group over",
		"vhid", vhid, "hold", f.curHold)
	f.setAll(demoteFollow, 1)
}

func (f *follow) stopTimer() {
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
}

// clear ends the follow demotion. Called with mu held.
func (f *follow) clear(why string) {
	f.stopTimer()
	f.following = false
	f.lastEnd = time.Now()
	f.log.Info("follow: demotion cleared", "why", why)
	f.setAll(demoteFollow, 0)
}

// expire runs when no group has been MASTER for the hold time.
func (f *follow) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.following || f.timer == nil {
		return
	}
	f.timer = nil
	for _, s := range f.state {
		if s == carp.Master {
			return
		}
	}
	f.clear("hold time over")
}

// snapshot returns the rule's state for the status report.
func (f *follow) snapshot() FollowStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FollowStatus{LinkDemotion: f.linkDemo, Following: f.following, Hold: f.curHold.String(), Events: f.events}
}

// close stops the hold timer; later reports are ignored.
func (f *follow) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.stopTimer()
}

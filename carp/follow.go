package carp

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Demotion sources a FollowGroup sets on every one of its groups.
const (
	// DemoteFollowLink is raised (by 1) while the link of any group of the
	// FollowGroup is down.
	DemoteFollowLink = "follow-link"
	// DemoteFollow is raised (by 1) when a group of the FollowGroup lost
	// mastership while another was still MASTER, until the hold is over.
	DemoteFollow = "follow"
)

// Defaults of FollowConfig.
const (
	DefaultFollowHold    = 10 * time.Second
	DefaultFollowMaxHold = 5 * time.Minute
)

// FollowConfig configures a [FollowGroup]. A nil *FollowConfig, like the
// zero value, means every default.
type FollowConfig struct {
	// Hold is how long the follow demotion stays after the node gave up
	// its last group. Zero means DefaultFollowHold (10 s).
	Hold time.Duration
	// MaxHold bounds the hold: a hand-over within MaxHold of the previous
	// one doubles the hold, up to MaxHold. Zero means
	// DefaultFollowMaxHold (5 min); otherwise at least Hold.
	MaxHold time.Duration
	// Logger receives the rule's decisions (Info, Warn). Nil discards.
	Logger *slog.Logger
}

// FollowStatus is a snapshot of a FollowGroup.
type FollowStatus struct {
	LinkDown  bool          // DemoteFollowLink is raised: a member's link is down
	Following bool          // DemoteFollow is raised
	Hold      time.Duration // the hold of the current or last follow demotion
	Events    uint64        // losses of mastership that raised or renewed DemoteFollow
}

// FollowGroup keeps the CARP groups of one node together, so that they
// fail over as one: a node that loses one group hands over the others, and
// one node ends up MASTER of every group. A firewall pair needs this (one
// firewall must forward both directions of a flow, LAN and WAN), and so
// does any service whose addresses must live on the same host. OpenBSD
// gets the same effect from the demote counter of the interface group
// "carp", which every carp interface belongs to; FollowGroup adds what a
// shared counter alone cannot do: react to a lost election, not only to a
// failed link.
//
// It works only through demotion (Group.SetDemotion), always on every
// member at once:
//
//	condition on this node                         demotion on every group   cleared when
//	---------------------------------------------  ------------------------  -----------------------------------------
//	a group's link is down (SetLinkState false)     follow-link +1            every group's link is up again
//	a group went MASTER -> BACKUP while another    follow +1                 no group has been MASTER for the hold,
//	group of this node is still MASTER                                       or every group is MASTER
//	anything else (all MASTER, all BACKUP,          none                      -
//	a group became MASTER)
//
// A MASTER whose demotion rises advertises it at once, and a BACKUP takes
// over from a master more demoted than itself at once, even without
// Preempt. So the groups the node still holds move to the peer within one
// advertisement. Becoming MASTER never demotes anything.
//
// [FollowGroup.SetDemotion] sets any other source (a sync engine still
// fetching state, a health check) on every member, including members added
// later: the FollowGroup is the node-wide demotion counter.
//
// # Why it cannot deadlock
//
// Every demotion is node-wide, so inside one node no group is ever
// preferred to another, and between two nodes every group's election is
// decided by the same numbers: the node's demotion first, then advbase and
// advskew, which an embedder configures alike for all groups of a node.
// Whatever both nodes raise, each group's election has the same winner,
// and CARP itself guarantees each group a master (a BACKUP that hears
// nobody takes over). When both nodes are demoted equally (both lost a
// link, or both lost a group in the same instant), the demotions cancel
// out and the advskew decides, for every group the same way; a group whose
// link is down on one node can only be held by the other, and holds there.
//
// # Why it cannot flap
//
// The link rule follows an input, the link state: it moves the groups once
// and keeps them where they are while the link stays down. The follow rule
// is raised by a loss of mastership and cleared only after the node has
// held no group for the hold time (or holds them all, when the peer is
// gone), so a node cannot win the groups back in the instant it gave them
// up. With Preempt it takes them back after the hold; if the fault
// persists it loses them again, and each repeat within MaxHold of the
// previous one doubles the hold, up to MaxHold: a persistent fault costs
// at most one round trip of the groups per MaxHold, never a loop at
// advertisement speed. Groups returning one advertisement apart after a
// restart never raise the rule on the returning node (it only goes BACKUP
// -> MASTER); the node handing them back goes MASTER -> BACKUP on the
// first and demotes the rest, which only speeds the hand-over up.
//
// # Use
//
// Add every group before starting it. The FollowGroup then sees each
// member's state changes (from its protocol loop, before OnTransition
// runs) and link state (Group.SetLinkState), with no wiring by the
// embedder. All methods are safe for concurrent use and never block on a
// protocol loop. Close it after the groups. Contests (Config.OnContested)
// stay per group: another node claims, and is out-ranked on, each group
// it took, so each group's hook goes to that group's own address follower
// (see "Notifications" in the package documentation).
type FollowGroup struct {
	hold, maxHold time.Duration
	log           *slog.Logger

	mu        sync.Mutex
	members   []*member
	sources   map[string]int // demotions set through SetDemotion
	linkDemo  bool
	following bool
	curHold   time.Duration
	lastEnd   time.Time // when the follow demotion was last cleared
	timer     *time.Timer
	timerGen  uint64 // counts hold timers, so that a stale one is recognised
	closed    bool
	events    uint64
}

// member is one Group of a FollowGroup, with what the rule last learnt of
// it.
type member struct {
	g      *Group
	state  State
	linkUp bool
}

// NewFollowGroup returns an empty FollowGroup. It fails, naming the field,
// the value and the allowed range, if cfg is invalid.
func NewFollowGroup(cfg *FollowConfig) (*FollowGroup, error) {
	var c FollowConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Hold == 0 {
		c.Hold = DefaultFollowHold
	}
	if c.MaxHold == 0 {
		c.MaxHold = max(DefaultFollowMaxHold, c.Hold)
	}
	if c.Hold < 0 {
		return nil, fmt.Errorf("carp: FollowConfig.Hold %v out of range (0 or more)", c.Hold)
	}
	if c.MaxHold < c.Hold {
		return nil, fmt.Errorf("carp: FollowConfig.MaxHold %v out of range (0 or at least Hold, %v)", c.MaxHold, c.Hold)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &FollowGroup{hold: c.Hold, maxHold: c.MaxHold, log: c.Logger, sources: map[string]int{}}, nil
}

// Add makes g a member. g must not be started yet, nor belong to another
// FollowGroup. It receives at once the demotions set with SetDemotion and
// those the rule holds raised.
func (f *FollowGroup) Add(g *Group) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("carp: FollowGroup.Add: follow group closed")
	}
	// Lock order: FollowGroup, then Group. The Group never calls the
	// FollowGroup while holding its own lock.
	g.mu.Lock()
	switch {
	case g.follow != nil:
		g.mu.Unlock()
		return fmt.Errorf("carp: FollowGroup.Add: group vhid %d already belongs to a follow group", g.cfg.VHID)
	case g.started || g.closed:
		g.mu.Unlock()
		return fmt.Errorf("carp: FollowGroup.Add: group vhid %d already started", g.cfg.VHID)
	}
	g.follow = f
	up := g.linkUp
	g.mu.Unlock()

	f.members = append(f.members, &member{g: g, state: Init, linkUp: up})
	for s, n := range f.sources {
		g.SetDemotion(s, n)
	}
	if f.following {
		g.SetDemotion(DemoteFollow, 1)
	}
	f.updateLinkLocked(g, up)
	if f.linkDemo {
		g.SetDemotion(DemoteFollowLink, 1)
	}
	return nil
}

// SetDemotion sets the demotion of one source on every member, present and
// future (Group.SetDemotion: n <= 0 clears it). It has the signature of
// pfsync.Demoter, so a sync engine can demote the whole node.
func (f *FollowGroup) SetDemotion(source string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= 0 {
		delete(f.sources, source)
	} else {
		f.sources[source] = n
	}
	f.setAllLocked(source, n)
}

// Status returns a snapshot of the rule's state.
func (f *FollowGroup) Status() FollowStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FollowStatus{LinkDown: f.linkDemo, Following: f.following, Hold: f.curHold, Events: f.events}
}

// Close stops the hold timer; state changes reported afterwards are
// ignored and the demotions stay as they are. Close the groups first (their
// last transitions, to INIT, need no rule). It is idempotent and returns
// nil.
func (f *FollowGroup) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.stopTimerLocked()
	return nil
}

// setAllLocked sets one demotion source on every member, in the order they
// were added. Group.SetDemotion never blocks.
func (f *FollowGroup) setAllLocked(source string, n int) {
	for _, m := range f.members {
		m.g.SetDemotion(source, n)
	}
}

func (f *FollowGroup) find(g *Group) *member {
	for _, m := range f.members {
		if m.g == g {
			return m
		}
	}
	return nil
}

// link applies a member's link state (from Group.SetLinkState, called
// without the Group's lock).
func (f *FollowGroup) link(g *Group, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.updateLinkLocked(g, up)
}

// updateLinkLocked records g's link state and raises or clears
// DemoteFollowLink when the node's answer to "is any link down" changes.
func (f *FollowGroup) updateLinkLocked(g *Group, up bool) {
	m := f.find(g)
	if m == nil {
		return
	}
	m.linkUp = up
	anyDown := slices.ContainsFunc(f.members, func(m *member) bool { return !m.linkUp })
	if anyDown == f.linkDemo {
		return
	}
	f.linkDemo = anyDown
	n := 0
	if anyDown {
		n = 1
	}
	f.log.Info("carp: follow group link rule", "vhid", g.cfg.VHID, "up", up, "demote_all", n)
	f.setAllLocked(DemoteFollowLink, n)
}

// transition applies one state change of a member. It is called from the
// member's protocol loop, which holds no lock.
func (f *FollowGroup) transition(g *Group, from, to State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	m := f.find(g)
	if m == nil {
		return
	}
	m.state = to
	masters := 0
	for _, m := range f.members {
		if m.state == Master {
			masters++
		}
	}
	if from == Master && to == Backup && masters > 0 {
		f.raiseLocked(g.cfg.VHID)
	}
	if !f.following {
		return
	}
	switch {
	case masters == len(f.members):
		f.clearLocked("every group is MASTER")
	case masters == 0:
		if f.timer == nil {
			f.timerGen++
			gen := f.timerGen
			f.timer = time.AfterFunc(f.curHold, func() { f.expire(gen) })
		}
	default:
		f.stopTimerLocked()
	}
}

// raiseLocked starts the follow demotion, or counts one more loss while it
// is raised.
func (f *FollowGroup) raiseLocked(vhid uint8) {
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
	f.log.Warn("carp: a group lost mastership while another is MASTER; handing every group over",
		"vhid", vhid, "hold", f.curHold)
	f.setAllLocked(DemoteFollow, 1)
}

func (f *FollowGroup) stopTimerLocked() {
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
}

// clearLocked ends the follow demotion.
func (f *FollowGroup) clearLocked(why string) {
	f.stopTimerLocked()
	f.following = false
	f.lastEnd = time.Now()
	f.log.Info("carp: follow demotion cleared", "reason", why)
	f.setAllLocked(DemoteFollow, 0)
}

// expire runs when no member has been MASTER for the hold time. gen
// identifies the timer that fired: one stopped too late to keep its
// function from running must not end a later hold.
func (f *FollowGroup) expire(gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.following || f.timer == nil || f.timerGen != gen {
		return
	}
	f.timer = nil
	for _, m := range f.members {
		if m.state == Master {
			return
		}
	}
	f.clearLocked("hold time over")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
)

// node is one appliance of the demo LAN, wired the way a host program wires
// gocarp (see the package gocarp documentation):
//
//   - its dataplane, a connection table (pfsync.MemTable);
//   - a pfsync.Engine replicating that table over the sync network, holding
//     the CARP group demoted (Config.Demoter) until its bulk sync is done;
//   - a carp.Group on the LAN segment deciding whether it is master;
//   - a vip.Follower, fed by the group's OnTransition (and OnContested, to
//     announce again when the master out-ranks another claimant), which on promotion
//     first commits the replicated state (BeforeInstall →
//     Engine.PrepareTakeover) and only then installs and announces the
//     virtual address, here on the recording fakes of viptest.
type node struct {
	lan      *lan
	name     string
	id       pfsync.NodeID
	skew     uint8 // CARP advskew
	priority uint8 // VRRP priority
	table    *pfsync.MemTable

	port     *carptest.Port
	sync     *pfsynctest.Endpoint
	tap      *advertTap
	group    *carp.Group
	engine   *pfsync.Engine
	follower *vip.Follower
	rec      *viptest.Recorder // every call to the vip fakes, plus our "commit"

	demoted chan struct{} // closed when the engine first reported its demotion
	once    sync.Once

	mu       sync.Mutex
	dead     bool // crashed: its last words are not shown
	state    carp.State
	since    time.Time // when state was entered (Transition.At)
	announce int       // announcement rounds since the last promotion
	demote   map[string]int
}

// opCommit is the step the demo records in the vip fakes' Recorder before
// the addresses are installed, so the order commit → add → announce can be
// checked on one log.
const opCommit viptest.Op = "commit"

// commitTimeout bounds the state commit on promotion
// (vip.Config.BeforeInstallTimeout).
const commitTimeout = 10 * time.Second

// bootNode starts node i for the boot-th time, first showing intro (if
// any) on the timeline. Node1's first boot founds the cluster: it starts as
// master instead of waiting out a master-down interval with nobody else
// there.
func (l *lan) bootNode(i int, boot uint32, intro string) (*node, error) {
	n := &node{
		lan:      l,
		name:     fmt.Sprintf("node%d", i),
		id:       pfsync.NodeID(i),
		skew:     l.opts.advSkew(i),
		priority: l.opts.priority(i),
		table:    &pfsync.MemTable{},
		rec:      &viptest.Recorder{},
		demoted:  make(chan struct{}),
		demote:   make(map[string]int),
	}
	founder := i == 1 && boot == 1
	if intro != "" {
		n.show("%s", intro)
	}
	l.booted = append(l.booted, n)
	n.port = l.segment.Join(carp.IPv4)
	n.tap = newAdvertTap(n.port)
	cfg := carp.Config{
		VHID:     vhid,
		AdvBase:  uint8(l.opts.AdvBase),
		AdvSkew:  n.skew,
		Password: []byte(password),
	}
	if l.opts.vrrp() {
		// Demotion weight 255: a demoted node advertises priority 1, below
		// every fit one, as a demoted CARP node ranks below every undemoted
		// one. With keepalived's weight-per-point a returning node1 (200,
		// demoted 32 → 168) would still outrank node2 (150) and take the
		// address before its bulk sync is done.
		cfg = carp.Config{VHID: vhid, Protocol: carp.ProtocolVRRPv3, Priority: n.priority,
			AdvertInterval: l.opts.AdvertInt, DemotionWeight: 255}
	}
	cfg.Addrs = []netip.Addr{vipAddr}
	cfg.Preempt = l.opts.Preempt
	// The very first node of the LAN would start as master, but its sync
	// engine demotes it until its discovery window has shown that no peer
	// holds state, so it waits as BACKUP and takes over when the
	// master-down interval passes in silence.
	cfg.StartAsMaster = founder
	cfg.Transport = n.tap
	cfg.OnTransition = n.onTransition
	cfg.OnContested = n.onContested
	group, err := carp.NewGroup(cfg)
	if err != nil {
		return nil, err
	}
	n.group = group

	sealer, err := seal.New(seal.Config{Node: n.id, Boot: boot, Keys: []seal.Key{{ID: 1, Secret: l.psk}}, SendKeyID: 1})
	if err != nil {
		group.Close()
		return nil, err
	}
	n.sync = l.network.Attach(n.id)
	n.engine, err = pfsync.New(pfsync.Config{
		Node:      n.id,
		Transport: n.sync,
		Sealer:    sealer,
		Table:     n.table,
		// A backup keeps what it receives in the engine and its dataplane
		// stays clean until it becomes master (conntrackd's external cache).
		Commit:  pfsync.CommitOnTakeover,
		Demoter: n, // forwards to the group, and shows the change
	})
	if err != nil {
		n.sync.Close()
		group.Close()
		return nil, err
	}

	own := netip.PrefixFrom(n.port.Addr(carp.IPv4), 24)
	n.follower, err = vip.NewFollower(vip.Config{
		VHID:           vhid,
		Addrs:          vip.Host(vipAddr), // takes the /24 of the interface's own address
		Manager:        shownManager{viptest.NewAddrManager(n.rec, own), n},
		Announcer:      shownAnnouncer{viptest.NewAnnouncer(n.rec), n},
		AdvertInterval: group.AdvertInterval(),
		BeforeInstall:  n.commitState,
		// Committing a million connections takes a few seconds; a real
		// appliance sizes this against its table too.
		BeforeInstallTimeout: commitTimeout,
	})
	if err == nil {
		err = n.follower.Start()
	}
	if err != nil {
		n.engine.Close()
		group.Close()
		return nil, err
	}

	// The engine first, so that the group's first election already
	// carries the demotion "bulk sync pending": a group that started
	// undemoted could win against a master that is itself still demoted.
	// (Engine.Start reports the demotion before it returns; the wait is a
	// safety net.)
	if err := n.engine.Start(); err != nil {
		n.close()
		return nil, err
	}
	select {
	case <-n.demoted:
	case <-time.After(time.Second):
		n.close()
		return nil, fmt.Errorf("%s: the sync engine reported no demotion within 1s of Start", n.name)
	}
	if err := group.Start(); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// onTransition is the group's OnTransition hook: it shows the transition,
// feeds the invariant check and hands it to the vip Follower, which does
// the commit → install → announce work on its own goroutine.
func (n *node) onTransition(tr carp.Transition) {
	n.mu.Lock()
	dead := n.dead
	if !dead {
		n.state, n.since = tr.To, tr.At
		if tr.To == carp.Master {
			n.announce = 0
		}
	}
	n.mu.Unlock()
	if dead {
		return
	}
	n.lan.watch.transition(n.name, tr)
	o := n.lan.opts
	line := fmt.Sprintf("%v → %v (%s)", tr.From, tr.To, o.reasonText(tr.Reason))
	if crashed := n.lan.crashTime(); tr.Reason == carp.ReasonMasterTimedOut && !crashed.IsZero() {
		// Measured against the formula: the crash came right after an
		// advert, which restarted this backup's master-down timer.
		took := seconds(tr.At.Sub(crashed))
		if o.vrrp() {
			iv := n.group.AdvertInterval()
			skew := time.Duration(256-int(n.priority)) * iv / 256
			line += fmt.Sprintf(": took over %v after the crash (master-down 3×interval+skew, skew (256-priority)×interval/256 = (256-%d)×%v/256 = %v; 3×%v+%v = %v)",
				took, n.priority, seconds(iv), seconds(skew), seconds(iv), seconds(skew), seconds(n.group.MasterDownInterval()))
		} else {
			line += fmt.Sprintf(": took over %v after the crash (master-down 3×advbase+advskew/256 = 3×%d+%d/256 = %v)",
				took, o.AdvBase, n.skew, seconds(n.group.MasterDownInterval()))
		}
	}
	n.lan.tl.printAt(tr.At, n.name, "%s", line)
	n.follower.Handle(tr)
}

// onContested is the group's OnContested hook: as master it out-ranked
// another node claiming the group, which announced the address meanwhile;
// the Follower announces it again.
func (n *node) onContested(c carp.Contest) {
	n.mu.Lock()
	dead := n.dead
	n.mu.Unlock()
	if !dead {
		n.follower.HandleContest(c)
	}
}

// commitState is the Follower's BeforeInstall: commit the replicated
// connections into the dataplane before the address draws their packets.
func (n *node) commitState(ctx context.Context, _ carp.Transition) error {
	start := time.Now()
	k, err := n.engine.PrepareTakeover(ctx)
	n.rec.Record(viptest.Call{Op: opCommit, Err: err})
	switch {
	case errors.Is(err, context.Canceled):
		n.show("state commit cut short after %d records: left MASTER meanwhile", k)
		return err
	case err != nil:
		n.show("state commit FAILED after %d records: %v", k, err)
		return err
	}
	n.show("committed %d replicated connections into its table in %v (pfsync PrepareTakeover)",
		k, time.Since(start).Round(time.Microsecond))
	return nil
}

// SetDemotion makes the node the engine's pfsync.Demoter: it passes the
// demotion on to the CARP group and shows it.
func (n *node) SetDemotion(source string, v int) {
	n.group.SetDemotion(source, v)
	n.once.Do(func() { close(n.demoted) })
	n.mu.Lock()
	old := n.demote[source]
	n.demote[source] = v
	n.mu.Unlock()
	if old == v {
		return
	}
	why := map[string]string{
		pfsync.DemoteSourceBulk: "bulk sync pending",
	}[source]
	advertises := fmt.Sprintf("advertises demote %d", n.group.Demotion())
	if n.lan.opts.vrrp() {
		// What the group advertises: the priority lowered by demotion ×
		// weight 255, never below 1.
		advertises = fmt.Sprintf("advertises priority %d", max(1, int(n.priority)-255*n.group.Demotion()))
	}
	if v > 0 {
		n.show("demoted %d (sync: %s) → %s", v, why, advertises)
	} else {
		n.show("demotion %q cleared → %s", source, advertises)
	}
}

// show prints an event of this node, unless it is dead.
func (n *node) show(format string, args ...any) {
	n.showAt(time.Now(), format, args...)
}

func (n *node) showAt(t time.Time, format string, args ...any) {
	n.mu.Lock()
	dead := n.dead
	n.mu.Unlock()
	if !dead {
		n.lan.tl.printAt(t, n.name, format, args...)
	}
}

// current returns the group's state as last delivered to OnTransition and
// when it was entered.
func (n *node) current() (carp.State, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state, n.since
}

// announced returns how many announcement rounds were made since the last
// promotion.
func (n *node) announced() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.announce
}

// crash kills the node the hard way: the CARP port and the sync endpoint go
// silent first, so nothing the group or the engine says while closing (the
// bow-out advert, the engine's last flush) reaches anyone. Like a power
// cut, except that the demo still releases the goroutines.
func (n *node) crash() {
	t := time.Now()
	n.port.Crash()
	n.sync.Close()
	n.lan.setCrashTime(t)
	n.lan.watch.crashed(n.name, t)
	n.lan.tl.printAt(t, n.name, "CRASH: power lost (no bow-out advert, sync stopped mid-stream)")
	n.mu.Lock()
	n.dead = true
	n.mu.Unlock()
	n.close()
}

// close stops the node: engine, group (which closes its port) and
// Follower. Errors of a node being torn down are of no interest.
func (n *node) close() {
	n.engine.Close()
	n.group.Close()
	n.follower.Close()
}

// shownManager is the vip fake AddrManager, showing every change on the
// timeline at the time the fake recorded it.
type shownManager struct {
	*viptest.AddrManager
	n *node
}

func (m shownManager) Add(p netip.Prefix) error {
	err := m.AddrManager.Add(p)
	m.n.showCall(viptest.OpAdd, "installed %v", p)
	return err
}

func (m shownManager) Remove(p netip.Prefix) error {
	err := m.AddrManager.Remove(p)
	m.n.showCall(viptest.OpRemove, "withdrew %v", p)
	return err
}

// shownAnnouncer is the vip fake Announcer, showing every round.
type shownAnnouncer struct {
	*viptest.Announcer
	n *node
}

func (a shownAnnouncer) Announce(addrs []netip.Addr) error {
	err := a.Announcer.Announce(addrs)
	a.n.mu.Lock()
	a.n.announce++
	round := a.n.announce
	a.n.mu.Unlock()
	if round == 1 {
		a.n.showCall(viptest.OpAnnounce, "announced %v (gratuitous ARP)", addrs)
	} else {
		a.n.showCall(viptest.OpAnnounce, "announced %v again (round %d)", addrs, round)
	}
	return err
}

// showCall shows the latest recorded call of op, at its recorded time.
func (n *node) showCall(op viptest.Op, format string, args ...any) {
	calls := n.rec.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Op == op {
			if calls[i].Err != nil {
				format += " FAILED: " + calls[i].Err.Error()
			}
			n.showAt(calls[i].At, format, args...)
			return
		}
	}
}

// advertTap passes a group's adverts to the segment and signals each one,
// so that the scenario can crash the master right after an advert and
// measure the takeover against the master-down interval exactly.
type advertTap struct {
	*carptest.Port
	sent chan time.Time
}

func newAdvertTap(p *carptest.Port) *advertTap {
	return &advertTap{Port: p, sent: make(chan time.Time, 1)}
}

func (t *advertTap) Send(f carp.Family, payload []byte) error {
	err := t.Port.Send(f, payload)
	if err == nil {
		select {
		case t.sent <- time.Now():
		default:
		}
	}
	return err
}

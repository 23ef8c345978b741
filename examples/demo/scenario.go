package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/vip/viptest"
)

// The one CARP group of the demo LAN.
const (
	vhid     = 1
	password = "demo-secret"
)

// vipAddr is the virtual address the nodes share (TEST-NET-1, the
// in-memory segment's subnet: carptest gives port n the address 192.0.2.n).
var vipAddr = netip.MustParseAddr("192.0.2.100")

// lan is the demo's in-memory network: the CARP segment, the sync network,
// the cluster key, the nodes and the checks.
type lan struct {
	opts    options
	tl      *timeline
	watch   *masterWatch
	segment *carptest.Segment
	network *pfsynctest.Network
	psk     []byte
	nodes   []*node     // index i-1 is node i; a crashed node is replaced when it returns
	booted  []*node     // every node ever started, crashed ones included
	ids     []record.ID // of the connections, as node1 created them

	failures []string // invariants that failed; written by the scenario goroutine only

	mu      sync.Mutex
	crashed time.Time // when node1 crashed; zero before
}

func (l *lan) setCrashTime(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crashed = t
}

func (l *lan) crashTime() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.crashed
}

// run plays the scenario and prints its timeline to out. It returns an
// error if the scenario could not be played to the end or if an invariant
// failed.
func run(ctx context.Context, o options, out io.Writer) error {
	tl := newTimeline(out)
	l, err := newLAN(o, tl)
	if err != nil {
		return err
	}
	defer l.close()
	if o.vrrp() {
		tl.note("gocarp demo: %d nodes on an in-memory LAN speaking VRRPv3, VIP %v (VRID %d), %d connections, real time",
			o.Nodes, vipAddr, vhid, o.Conns)
		tl.note("priority %s, advert interval %v, preempt %s, loss %g%%, master-down 3×interval+skew (RFC 5798)",
			l.priorities(), o.AdvertInt, onOff(o.Preempt), o.Loss*100)
	} else {
		tl.note("gocarp demo: %d nodes on an in-memory LAN, VIP %v (vhid %d), %d connections, real time",
			o.Nodes, vipAddr, vhid, o.Conns)
		tl.note("advbase %ds, advskew %s, preempt %s, loss %g%%, master-down 3×advbase+advskew/256 (%s)",
			o.AdvBase, l.skews(), onOff(o.Preempt), o.Loss*100, carp.ProfileFreeBSD)
	}
	for _, line := range o.legend() {
		tl.note("  %s", line)
	}
	tl.note("")

	err = l.play(ctx)
	if err != nil {
		l.fail("%v", err)
	}
	l.checkMasters()
	l.checkOrdering()
	l.tl.note("")
	for _, f := range l.failures {
		l.tl.note("✗ %s", f)
	}
	if len(l.failures) == 0 {
		l.tl.note("✓ all invariants held: never two masters (beyond the handover transient), no connection lost,\n  state committed before every address announcement")
	}
	l.tl.note("  wall time %v (real time)", seconds(time.Since(tl.start)))
	if len(l.failures) > 0 {
		return fmt.Errorf("%d invariant(s) failed", len(l.failures))
	}
	return nil
}

func newLAN(o options, tl *timeline) (*lan, error) {
	network, err := pfsynctest.New(&pfsynctest.Config{Seed: o.Seed, Faults: pfsynctest.Faults{Loss: o.Loss}})
	if err != nil {
		return nil, err
	}
	psk, err := seal.GenerateKey()
	if err != nil {
		return nil, err
	}
	segment := carptest.NewSegment(o.Seed)
	segment.SetDefaultLink(carptest.Link{Loss: o.Loss})
	allow := o.interval() // one advert interval
	if o.Loss > 0 {
		allow *= 3 // a few adverts may be lost before the old master hears the new one
	}
	return &lan{
		opts:    o,
		tl:      tl,
		watch:   newMasterWatch(allow),
		segment: segment,
		network: network,
		psk:     psk,
		nodes:   make([]*node, o.Nodes),
	}, nil
}

// play runs the scenario step by step; each step waits for what it shows.
func (l *lan) play(ctx context.Context) error {
	o := l.opts

	// 1. The first node comes up alone and is master once a master-down
	// interval has passed with nobody else there.
	n1, err := l.bootNode(1, 1, "")
	if err != nil {
		return err
	}
	l.nodes[0] = n1
	if err := l.waitState(ctx, n1, carp.Master, n1.group.MasterDownInterval()+time.Second); err != nil {
		return err
	}

	// 2. Its dataplane establishes the connections and reports them to the
	// sync engine, as a firewall reports new states.
	l.ids = make([]record.ID, o.Conns)
	for i := range o.Conns {
		l.ids[i] = n1.engine.NewID()
		rec := established(l.ids[i], demoKey(i), i)
		if err := n1.table.Insert(&rec); err != nil {
			return err
		}
		if err := n1.engine.Upsert(rec); err != nil {
			return err
		}
	}
	n1.show("dataplane established %d connections (reported to its sync engine)", o.Conns)

	// 3. The backups boot one after the other, as a cluster is built.
	// Each is held demoted until its bulk sync has brought it every
	// connection.
	for i := 2; i <= o.Nodes; i++ {
		n, err := l.bootNode(i, 1, "boots and joins")
		if err != nil {
			return err
		}
		l.nodes[i-1] = n
		if err := l.waitBulk(ctx, n); err != nil {
			return err
		}
		if err := l.waitState(ctx, n, carp.Backup, time.Second); err != nil {
			return err
		}
	}

	// 4. The master dies without a word, right after an advert: the
	// backups' master-down timers were just restarted.
	select {
	case <-n1.tap.sent: // an older advert
	default:
	}
	select {
	case <-n1.tap.sent:
	case <-time.After(2 * n1.group.AdvertInterval()):
		return errors.New("node1 sent no advert")
	case <-ctx.Done():
		return ctx.Err()
	}
	n1.crash()

	// 5. The best backup takes over after the master-down interval.
	next := l.nodes[1]
	if err := l.waitState(ctx, next, carp.Master, next.group.MasterDownInterval()+2*time.Second); err != nil {
		return err
	}
	if err := l.waitAnnounced(ctx, next); err != nil {
		return err
	}
	l.checkTable(next, "after the takeover")

	// 6. The old master comes back with an empty table. It is held demoted
	// until its bulk sync is done; then, with preemption, it takes the
	// role back.
	l.watch.restarted("node1", time.Now())
	back, err := l.bootNode(1, 2, fmt.Sprintf("back after a reboot: empty table, boot counter 2, preempt %s", onOff(o.Preempt)))
	if err != nil {
		return err
	}
	l.nodes[0] = back
	if err := l.waitBulk(ctx, back); err != nil {
		return err
	}
	if o.Preempt {
		if err := l.waitState(ctx, back, carp.Master, 2*back.group.AdvertInterval()+time.Second); err != nil {
			return err
		}
		if err := l.waitAnnounced(ctx, back); err != nil {
			return err
		}
		if err := l.waitState(ctx, next, carp.Backup, time.Second); err != nil {
			return err
		}
		l.checkTable(back, "after the preemption")
	} else {
		// Without preemption the current master keeps the role: watch
		// one more advert interval pass, then the returned node must be a
		// complete backup.
		time.Sleep(next.group.AdvertInterval() + 100*time.Millisecond)
		if s, _ := back.current(); s != carp.Backup {
			l.fail("%s is %v, want BACKUP without preemption", back.name, s)
		}
		if got := back.engine.Len(); got < o.Conns {
			l.fail("%s holds %d of %d connections in its sync engine", back.name, got, o.Conns)
		} else {
			back.show("ready to take over: %d/%d connections replicated", got, o.Conns)
		}
		l.checkTable(next, "at the end")
	}
	return nil
}

// waitState waits until n's group reported state s.
func (l *lan) waitState(ctx context.Context, n *node, s carp.State, limit time.Duration) error {
	return waitFor(ctx, limit, poll, fmt.Sprintf("%s to become %v", n.name, s), func() bool {
		got, _ := n.current()
		return got == s
	})
}

// waitAnnounced waits until n's Follower has announced the address.
func (l *lan) waitAnnounced(ctx context.Context, n *node) error {
	return waitFor(ctx, commitTimeout+time.Second, poll, n.name+" to announce "+vipAddr.String(), func() bool {
		return n.announced() > 0
	})
}

// waitBulk shows n's bulk sync as a progress bar until the engine reports
// it complete.
func (l *lan) waitBulk(ctx context.Context, n *node) error {
	start := time.Now()
	// The node requests a bulk from every peer; the bar shows the distinct
	// connections received, of the N that exist. Engine.Stats walks the
	// records: poll it gently.
	bar := l.tl.newBar(n.name, "bulk sync", l.opts.Conns)
	limit := 5*time.Second + time.Duration(l.opts.Conns)*100*time.Microsecond // ten times what it takes
	err := waitFor(ctx, limit, 25*time.Millisecond, n.name+"'s bulk sync", func() bool {
		s := n.engine.Stats()
		if s.BulkStarted > 0 {
			bar.set(s.Records)
		}
		return s.BulkDone
	})
	if err != nil {
		return err
	}
	s := n.engine.Stats()
	bar.set(s.Records)
	took := time.Since(start).Round(time.Millisecond)
	switch inTable := n.table.Len(); {
	case s.External == 0:
		n.show("bulk sync complete: %d connections in %v, all put back into its empty table (its own flows from before the reboot, kept by the peer)", s.Records, took)
	default:
		n.show("bulk sync complete: %d connections in %v; %d wait in the engine until it is master, %d in its table",
			s.Records, took, s.External, inTable)
	}
	return nil
}

// poll is how often the scenario looks at cheap conditions. The events
// themselves carry their own times; polling only decides when the next
// step starts.
const poll = 5 * time.Millisecond

// waitFor checks cond every interval until it holds, limit passes or ctx
// ends.
func waitFor(ctx context.Context, limit, every time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}

// checkTable checks that the master n holds every connection.
func (l *lan) checkTable(n *node, when string) {
	got := holds(n.table, l.ids)
	if got != l.opts.Conns {
		l.fail("%s holds %d of %d connections %s", n.name, got, l.opts.Conns, when)
		return
	}
	n.show("holds %d/%d connections %s ✓", got, l.opts.Conns, when)
}

// checkMasters checks that there was never more than one master beyond the
// CARP handover transient, and shows the transients.
func (l *lan) checkMasters() {
	overlaps, err := l.watch.check(time.Now())
	for _, o := range overlaps {
		l.tl.note("  handover transient: %v (the old master yields on the new master's first advert)", o)
	}
	if err != nil {
		l.fail("%v", err)
	}
}

// checkOrdering checks, on every node's log of vip calls, that each
// installation of the address followed a successful state commit and each
// announcement an installation.
func (l *lan) checkOrdering() {
	for _, n := range l.booted {
		committed, installed := false, false
		for _, c := range n.rec.Calls() {
			switch c.Op {
			case opCommit:
				committed = c.Err == nil
			case viptest.OpAdd:
				if !committed {
					l.fail("%s installed %v before committing the replicated state", n.name, c.Prefix)
				}
				installed = true
			case viptest.OpAnnounce:
				if !installed {
					l.fail("%s announced %v before installing it", n.name, c.Addrs)
				}
			case viptest.OpRemove:
				committed, installed = false, false
			}
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (l *lan) fail(format string, args ...any) {
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

// skews describes the advskew of every node.
func (l *lan) skews() string {
	var b strings.Builder
	for i := 1; i <= l.opts.Nodes; i++ {
		if i > 1 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "node%d=%d", i, l.opts.advSkew(i))
	}
	return b.String()
}

// priorities describes the VRRP priority of every node.
func (l *lan) priorities() string {
	var b strings.Builder
	for i := 1; i <= l.opts.Nodes; i++ {
		if i > 1 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "node%d=%d", i, l.opts.priority(i))
	}
	return b.String()
}

// close stops every node still running: the backups first, then the
// master, so that shutting down causes no takeover.
func (l *lan) close() {
	for _, n := range l.nodes {
		if n != nil {
			n.mu.Lock()
			n.dead = true // shutting down is not part of the story
			n.mu.Unlock()
		}
	}
	for _, n := range l.nodes {
		if n != nil && n.group.State() != carp.Master {
			n.close()
		}
	}
	for _, n := range l.nodes {
		if n != nil {
			n.close()
		}
	}
}

// legend explains, once, the CARP words the timeline uses, for a reader who
// has never met them.
var legend = []string{
	"advbase/advskew: the master sends an advert every advbase+advskew/256 s; the lowest advskew wins the election",
	"master-down: how long a backup hears no advert before it takes over as master",
	"demotion: a penalty a node advertises while unfit (here: its state sync is not done); the least demoted wins",
}

// vrrpLegend explains the VRRPv3 words, as RFC 5798 computes them.
var vrrpLegend = []string{
	"priority: 1-254, the highest wins the election (255 is the owner of the address); VRRPv3 has no password",
	"advert interval: the master sends an advert every interval; backups adopt the master's interval",
	"skew: (256-priority)×interval/256, so that the highest-priority backup is the first to act",
	"master-down: a backup that hears no advert for 3×interval+skew takes over as master",
	"demotion: a penalty while a node is unfit (here: its state sync is not done); it then advertises priority 1, below every fit node",
}

// legend returns the legend lines of the protocol in use.
func (o options) legend() []string {
	if o.vrrp() {
		return vrrpLegend
	}
	return legend
}

// reasonText is a transition's reason in the protocol's words: the group
// names its reasons after CARP's timing ("a slower master", "more frequent
// advertisement"), which VRRPv3 expresses as priority.
func (o options) reasonText(r carp.Reason) string {
	if o.vrrp() {
		switch r {
		case carp.ReasonPreempt:
			return "preempting a lower-priority master"
		case carp.ReasonMoreFrequent:
			return "higher-priority advertisement received"
		}
	}
	return string(r)
}

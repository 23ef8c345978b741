package carp_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// grpWait bounds every wait for a state change: master-down at advbase 1
// is 3 s plus skew, so this only catches hangs.
const grpWait = 20 * time.Second

var (
	grpVIP4 = netip.MustParseAddr("10.77.0.254")
	grpVIP6 = netip.MustParseAddr("fd77::254")
)

// grpNode is a Group on its own RawTransport in its own namespace.
type grpNode struct {
	*rawNode
	tr *carp.RawTransport
	g  *carp.Group

	mu      sync.Mutex
	history []carp.Transition
	changed chan struct{} // closed and replaced on each transition
}

// grpStart builds a transport inside n's namespace, a Group on it with cfg
// (Transport, IfIndex and OnTransition filled in) and starts it. The group
// is closed in t.Cleanup.
func grpStart(t *testing.T, n *rawNode, cfg carp.Config, rcfg *carp.RawConfig) *grpNode {
	t.Helper()
	gn := &grpNode{rawNode: n, changed: make(chan struct{})}
	err := n.ns.Do(func() error {
		var err error
		gn.tr, err = carp.NewRawTransport(n.ifname, rcfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password == nil {
		cfg.Password = []byte("secret")
	}
	cfg.Transport = gn.tr
	cfg.IfIndex = n.ifindex
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(grpLogWriter{t, n.ns.Short}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.OnTransition = func(tr carp.Transition) {
		gn.mu.Lock()
		gn.history = append(gn.history, tr)
		close(gn.changed)
		gn.changed = make(chan struct{})
		gn.mu.Unlock()
	}
	gn.g, err = carp.NewGroup(cfg)
	if err != nil {
		gn.tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gn.g.Close(); err != nil {
			t.Errorf("%s: close: %v", n.ns.Short, err)
		}
	})
	if err := gn.g.Start(); err != nil {
		t.Fatal(err)
	}
	return gn
}

// grpLogWriter sends a group's log lines to t.Log, so they show up with
// the failing test (go test -v shows them always).
type grpLogWriter struct {
	t    *testing.T
	node string
}

func (w grpLogWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.node, strings.TrimSpace(string(b)))
	return len(b), nil
}

// mark returns the number of transitions so far, for await.
func (gn *grpNode) mark() int {
	gn.mu.Lock()
	defer gn.mu.Unlock()
	return len(gn.history)
}

// await waits for a transition with index >= from to state to and returns
// it. If reasons are given, its reason must be one of them.
func (gn *grpNode) await(t *testing.T, from int, to carp.State, reasons ...carp.Reason) carp.Transition {
	t.Helper()
	timeout := time.After(grpWait)
	for {
		gn.mu.Lock()
		for _, tr := range gn.history[min(from, len(gn.history)):] {
			if tr.To == to {
				gn.mu.Unlock()
				if len(reasons) > 0 && !slices.Contains(reasons, tr.Reason) {
					t.Fatalf("%s: %v -> %v because %q, want one of %q", gn.ns.Short, tr.From, tr.To, tr.Reason, reasons)
				}
				return tr
			}
		}
		ch := gn.changed
		gn.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%s: no transition to %v within %v; history: %s", gn.ns.Short, to, grpWait, gn.describe())
		}
	}
}

// count returns how many transitions with index >= from went to state to.
func (gn *grpNode) count(from int, to carp.State) int {
	gn.mu.Lock()
	defer gn.mu.Unlock()
	n := 0
	for _, tr := range gn.history[min(from, len(gn.history)):] {
		if tr.To == to {
			n++
		}
	}
	return n
}

func (gn *grpNode) describe() string {
	gn.mu.Lock()
	defer gn.mu.Unlock()
	var b strings.Builder
	for _, tr := range gn.history {
		fmt.Fprintf(&b, "[%v->%v %q] ", tr.From, tr.To, tr.Reason)
	}
	return b.String()
}

// grpWaitFor polls cond (a counter, a state) until it holds, failing
// after grpWait. Polling is for conditions without an event of their own.
func grpWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(grpWait)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", grpWait, what)
		}
	}
}

// grpHeard waits until gn has received at least n more packets of family
// f than it had when grpHeard was called (adverts of the master).
func grpHeard(t *testing.T, gn *grpNode, f carp.Family, n uint64) {
	t.Helper()
	get := func() uint64 {
		s := gn.g.Stats()
		if f == carp.IPv6 {
			return s.Ipackets6
		}
		return s.Ipackets
	}
	base := get()
	grpWaitFor(t, fmt.Sprintf("%s to hear %d %v adverts", gn.ns.Short, n, f), func() bool { return get() >= base+n })
}

// grpFast is the timing of most Group tests, to keep the suite short:
// OpenBSD allows advbase 0, so a node advertises every advskew/256 s and its
// master-down interval is 3 x that (ProfileOpenBSD). grpElect gives a
// AdvSkew 100 (390 ms, master down after 1.17 s) and b 150 (586 ms, 1.76 s).
// Every backup's master-down interval must stay well above every master's
// advert interval (skews within a factor of 2 of each other), or a backup
// times out between two adverts of a live master.
// TestGroupFailover keeps the default advbase 1 s.
var grpFast = carp.Config{AdvBase: 0, ZeroAdvBase: true, Profile: carp.ProfileOpenBSD, AdvSkew: 100}

// grpFastCfg returns grpFast with vhid and addrs.
func grpFastCfg(vhid uint8, addrs ...netip.Addr) carp.Config {
	c := grpFast
	c.VHID, c.Addrs = vhid, addrs
	return c
}

// grpElect starts a (cfg.AdvSkew) and b (cfg.AdvSkew + 50) and checks
// that a wins: a becomes MASTER, and b stays BACKUP while it hears more of
// a's adverts than fit in its own master-down interval.
func grpElect(t *testing.T, a, b *rawNode, cfg carp.Config, ra, rb *carp.RawConfig) (*grpNode, *grpNode) {
	t.Helper()
	ca, cb := cfg, cfg
	cb.AdvSkew += 50
	ga := grpStart(t, a, ca, ra)
	gb := grpStart(t, b, cb, rb)
	ga.await(t, 0, carp.Master, carp.ReasonMasterTimedOut)
	gb.await(t, 0, carp.Backup)
	fam := carp.IPv4
	if !slices.ContainsFunc(cfg.Addrs, netip.Addr.Is4) {
		fam = carp.IPv6
	}
	grpHeard(t, gb, fam, grpOutlast(ga, gb))
	if n := gb.count(0, carp.Master); n != 0 {
		t.Fatalf("b became MASTER %d times while a advertised: %s", n, gb.describe())
	}
	if s := gb.g.Stats(); s.Badauth+s.Badttl+s.Badif+s.Badsum+s.Badloop != 0 {
		t.Errorf("b rejected adverts: %+v", s)
	}
	return ga, gb
}

// grpOutlast returns how many adverts of master take longer than backup's
// master-down interval, plus one.
func grpOutlast(master, backup *grpNode) uint64 {
	return uint64(backup.g.MasterDownInterval()/master.g.AdvertInterval()) + 2
}

// TestGroupFailover: two nodes elect the faster one; when the master's
// transport dies without a bow-out (a crash), the backup takes over after
// its master-down interval.
func TestGroupFailover(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "a", "b")
	// Default timing: advbase 1 s, advskew 0 and 50.
	ga, gb := grpElect(t, nodes[0], nodes[1], carp.Config{VHID: 1, Addrs: []netip.Addr{grpVIP4}}, nil, nil)
	mb := gb.mark()
	silent := time.Now()
	if err := ga.tr.Close(); err != nil { // the master goes silent, no bow-out
		t.Fatal(err)
	}
	tr := gb.await(t, mb, carp.Master, carp.ReasonMasterTimedOut)
	// For information only (no timed assertions): expected about
	// master-down (3 s + 50/256 s) minus the time since a's last advert.
	t.Logf("takeover %v after the master went silent (master-down interval %v)", tr.At.Sub(silent), gb.g.MasterDownInterval())
}

// TestGroupBowOut: closing the MASTER group sends a bow-out advert, and the
// backup takes over on it instead of waiting for the master-down interval.
func TestGroupBowOut(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "a", "b")
	ga, gb := grpElect(t, nodes[0], nodes[1], grpFastCfg(2, grpVIP4), nil, nil)
	mb := gb.mark()
	closed := time.Now()
	if err := ga.g.Close(); err != nil {
		t.Fatal(err)
	}
	ga.await(t, 0, carp.Init, carp.ReasonClosed)
	tr := gb.await(t, mb, carp.Master, carp.ReasonBowOut)
	t.Logf("takeover %v after Close on the master (information only)", tr.At.Sub(closed))
}

// TestGroupPreempt: a slow node is MASTER alone; a faster node with
// Preempt joins and takes over, and the slow one steps down to BACKUP.
func TestGroupPreempt(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "slow", "fast")
	cfg := grpFastCfg(3, grpVIP4)
	cfg.Preempt = true
	slow := cfg
	slow.AdvSkew = 180
	gs := grpStart(t, nodes[0], slow, nil)
	gs.await(t, 0, carp.Master)
	ms := gs.mark()
	fast := cfg
	fast.AdvSkew = 100
	gf := grpStart(t, nodes[1], fast, nil)
	gf.await(t, 0, carp.Master, carp.ReasonPreempt)
	gs.await(t, ms, carp.Backup, carp.ReasonMoreFrequent)
}

// TestGroupIPv6Only: a group with only an IPv6 address runs on the IPv6
// socket alone: election and crash failover.
func TestGroupIPv6Only(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "a", "b")
	v6 := &carp.RawConfig{Families: []carp.Family{carp.IPv6}}
	ga, gb := grpElect(t, nodes[0], nodes[1], grpFastCfg(4, grpVIP6), v6, v6)
	if s := gb.g.Stats(); s.Ipackets != 0 {
		t.Errorf("IPv6-only backup counted %d IPv4 packets", s.Ipackets)
	}
	mb := gb.mark()
	if err := ga.tr.Close(); err != nil {
		t.Fatal(err)
	}
	gb.await(t, mb, carp.Master, carp.ReasonMasterTimedOut)
}

// TestGroupDualStack: a group with an IPv4 and an IPv6 address advertises
// on both families; the backup hears both and hands over on a bow-out.
func TestGroupDualStack(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "a", "b")
	ga, gb := grpElect(t, nodes[0], nodes[1], grpFastCfg(5, grpVIP4, grpVIP6), nil, nil)
	grpHeard(t, gb, carp.IPv6, 2)
	if s := ga.g.Stats(); s.Opackets == 0 || s.Opackets6 == 0 {
		t.Errorf("dual-stack master sent %d IPv4 and %d IPv6 adverts, want both", s.Opackets, s.Opackets6)
	}
	mb := gb.mark()
	if err := ga.g.Close(); err != nil {
		t.Fatal(err)
	}
	gb.await(t, mb, carp.Master, carp.ReasonBowOut)
}

// TestGroupUnicast: two nodes with unicast peers (IPv4 and IPv6) elect,
// and fail over when the master dies.
func TestGroupUnicast(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ra := &carp.RawConfig{Peer4: b.v4, Peer6: b.ll}
	rb := &carp.RawConfig{Peer4: a.v4, Peer6: a.ll}
	ga, gb := grpElect(t, a, b, grpFastCfg(6, grpVIP4, grpVIP6), ra, rb)
	grpHeard(t, gb, carp.IPv6, 2)
	mb := gb.mark()
	if err := ga.tr.Close(); err != nil {
		t.Fatal(err)
	}
	gb.await(t, mb, carp.Master, carp.ReasonMasterTimedOut)
}

// TestGroupThreeNodes: the fastest of three is MASTER; when it dies the
// next fastest takes over and the slowest stays BACKUP.
func TestGroupThreeNodes(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "a", "b", "c")
	cfg := grpFastCfg(7, grpVIP4)
	var gs []*grpNode
	for i, n := range nodes {
		c := cfg
		c.AdvSkew = uint8(100 + i*30) // 100, 130, 160
		gs = append(gs, grpStart(t, n, c, nil))
	}
	ga, gb, gc := gs[0], gs[1], gs[2]
	ga.await(t, 0, carp.Master)
	grpHeard(t, gc, carp.IPv4, grpOutlast(ga, gc))
	if gb.count(0, carp.Master)+gc.count(0, carp.Master) != 0 {
		t.Fatalf("a backup became MASTER while a advertised: b %s, c %s", gb.describe(), gc.describe())
	}
	mb, mc := gb.mark(), gc.mark()
	if err := ga.tr.Close(); err != nil {
		t.Fatal(err)
	}
	gb.await(t, mb, carp.Master, carp.ReasonMasterTimedOut)
	grpHeard(t, gc, carp.IPv4, grpOutlast(gb, gc))
	if n := gc.count(mc, carp.Master); n != 0 {
		// c's master-down is 3 x 30/256 s longer than b's; a transient
		// takeover would have been corrected, but must not happen.
		t.Errorf("c became MASTER %d times after a died: %s", n, gc.describe())
	}
	if st := gc.g.State(); st != carp.Backup {
		t.Errorf("c is %v, want BACKUP", st)
	}
}

// TestGroupLinkDown: a LinkWatcher on the master's interface feeds
// SetLinkState. Cutting the master's carrier (its switch port goes down)
// puts it in INIT and the backup takes over; when the carrier returns the
// old master comes back as BACKUP (no preemption).
func TestGroupLinkDown(t *testing.T) {
	t.Parallel()
	tp, nodes := rawLAN(t, "a", "b")
	ga, gb := grpElect(t, nodes[0], nodes[1], grpFastCfg(8, grpVIP4), nil, nil)

	var w *carp.LinkWatcher
	if err := ga.ns.Do(func() error {
		var err error
		w, err = carp.NewLinkWatcher(ga.ifname, ga.g.SetLinkState, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})

	ma, mb := ga.mark(), gb.mark()
	tp.Switch().SetLink(nodes[0].port, false) // carrier lost on a's eth0
	ga.await(t, ma, carp.Init, carp.ReasonLinkDown)
	if d := ga.g.Demotion(); d != 1 {
		t.Errorf("a's demotion with the link down = %d, want 1", d)
	}
	gb.await(t, mb, carp.Master, carp.ReasonMasterTimedOut)

	ma = ga.mark()
	tp.Switch().SetLink(nodes[0].port, true)
	ga.await(t, ma, carp.Backup, carp.ReasonLinkUp)
	grpHeard(t, ga, carp.IPv4, grpOutlast(gb, ga))
	if n := ga.count(ma, carp.Master); n != 0 {
		t.Errorf("a took over again without preemption: %s", ga.describe())
	}
	if d := ga.g.Demotion(); d != 0 {
		t.Errorf("a's demotion with the link up = %d, want 0", d)
	}
}

// TestGroupUcarp: a Group and ucarp 1.5.2 in one group (vhid 1, password
// "secret", VIP 10.77.0.254, advbase 1). The Group (advskew 0) wins the
// election and ucarp (advskew 100) stays BACKUP; when the Group closes, its
// bow-out makes ucarp take over at once; a new Group (advskew 100) then
// stays BACKUP behind ucarp's adverts, and takes over when ucarp is killed.
func TestGroupUcarp(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ucarp", "go")
	u, n := nodes[0], nodes[1]
	cfg := carp.Config{VHID: rawUcarpVHID, Password: rawUcarpPass, Addrs: []netip.Addr{rawUcarpVIP}}
	v4 := &carp.RawConfig{Families: []carp.Family{carp.IPv4}}

	g := grpStart(t, n, cfg, v4)
	g.await(t, 0, carp.Master, carp.ReasonMasterTimedOut)
	p := rawStartUcarp(t, u, 100)
	mark := p.Len()
	rawUcarpWindow(t, p)
	if n := p.Count(mark, "MASTER") + p.Count(0, "Bad digest"); n != 0 {
		t.Fatalf("ucarp did not accept the Group's adverts:\n%s", strings.Join(p.Output(), "\n"))
	}
	if n := g.count(0, carp.Backup); n != 1 { // only INIT -> BACKUP at start
		t.Errorf("Group left MASTER while ucarp was BACKUP: %s", g.describe())
	}

	mark = p.Len()
	if err := g.g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(mark, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}

	cfg.AdvSkew = 200
	g2 := grpStart(t, n, cfg, v4)
	g2.await(t, 0, carp.Backup)
	grpHeard(t, g2, carp.IPv4, 4) // 4 x 1.39 s (ucarp, advskew 100) > 3 s + 200/256 s
	if n := g2.count(0, carp.Master); n != 0 {
		t.Fatalf("Group took over from a live ucarp master: %s", g2.describe())
	}
	if s := g2.g.Stats(); s.Badauth+s.Badttl+s.Badsum+s.Badif != 0 {
		t.Fatalf("Group rejected ucarp's adverts: %+v", s)
	}
	m := g2.mark()
	if err := p.Stop(); err != nil { // SIGKILL: no goodbye from ucarp
		t.Fatal(err)
	}
	g2.await(t, m, carp.Master, carp.ReasonMasterTimedOut)
}

// TestGroupUcarpDemoteInSkew: ucarp ignores the demote byte, so a demoted
// Group master keeps the role against a preempting ucarp backup unless the
// Group also shows its demotion in the advskew (FreeBSD's way). With
// DemoteInSkew, ucarp (advskew 100, --preempt) takes over from the demoted
// Group (advskew 0) at its next advert, and the Group takes the role back
// when the demotion clears.
func TestGroupUcarpDemoteInSkew(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ucarp", "go")
	u, n := nodes[0], nodes[1]
	cfg := carp.Config{VHID: rawUcarpVHID, Password: rawUcarpPass, Addrs: []netip.Addr{rawUcarpVIP}, Preempt: true}
	v4 := &carp.RawConfig{Families: []carp.Family{carp.IPv4}}

	// Control: the demote byte alone does not move ucarp.
	g := grpStart(t, n, cfg, v4)
	g.await(t, 0, carp.Master, carp.ReasonMasterTimedOut)
	p := rawStartUcarp(t, u, 100, "--preempt")
	g.g.SetDemotion("health", 1)
	mark := p.Len()
	rawUcarpWindow(t, p)
	if p.Count(mark, "Switching to state: MASTER") != 0 {
		t.Fatalf("ucarp took over on the demote byte alone; the control is void:\n%s", strings.Join(p.Output(), "\n"))
	}
	mark = p.Len()
	if err := g.g.Close(); err != nil { // bow-out: ucarp takes over at once
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(mark, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}

	// DemoteInSkew: the faster Group preempts ucarp, ...
	cfg.DemoteInSkew = true
	g2 := grpStart(t, n, cfg, v4)
	mark = p.Len()
	g2.await(t, 0, carp.Master, carp.ReasonPreempt)
	if _, _, err := p.WaitLine(mark, "Switching to state: BACKUP", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	// ... demoted, it advertises advskew 240 and ucarp preempts it, ...
	m := g2.mark()
	mark = p.Len()
	g2.g.SetDemotion("health", 1)
	if _, _, err := p.WaitLine(mark, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	g2.await(t, m, carp.Backup)
	// ... and undemoted, it takes the role back.
	m = g2.mark()
	mark = p.Len()
	g2.g.SetDemotion("health", 0)
	g2.await(t, m, carp.Master, carp.ReasonPreempt)
	if _, _, err := p.WaitLine(mark, "Switching to state: BACKUP", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if n := p.Count(0, "Bad digest"); n != 0 {
		t.Fatalf("ucarp rejected our adverts:\n%s", strings.Join(p.Output(), "\n"))
	}
}

// TestGroupKeepalivedNoInterference: keepalived runs VRRPv3 with VRID 1
// (IPv4 and IPv6) on the same bridge as a dual-stack CARP group with vhid
// 1. Neither disturbs the other: the Group counts keepalived's packets as
// VRRP (not as bad CARP), its election is unchanged, and keepalived stays
// MASTER of its own VRID.
func TestGroupKeepalivedNoInterference(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "a", "b")
	k := rawStartKeepalived(t, nodes[0], `vrrp_instance four {
  version 3
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.77.0.201/24
  }
}
vrrp_instance six {
  version 3
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority 100
  advert_int 1
  virtual_ipaddress {
    fd77::201/64
  }
}
`)
	ga, gb := grpElect(t, nodes[1], nodes[2], grpFastCfg(1, grpVIP4, grpVIP6), nil, nil)
	for _, inst := range []string{"(four) Entering MASTER STATE", "(six) Entering MASTER STATE"} {
		if _, _, err := k.WaitLine(0, inst, grpWait); err != nil {
			t.Fatal(err)
		}
	}
	grpWaitFor(t, "the backup to count VRRP packets", func() bool { return gb.g.Stats().VRRP >= 4 })
	grpHeard(t, gb, carp.IPv4, grpOutlast(ga, gb))
	for _, g := range []*grpNode{ga, gb} {
		s := g.g.Stats()
		if bad := s.Badauth + s.Badsum + s.Badlen + s.Hdrops + s.Badver + s.Badvhid; bad != 0 {
			t.Errorf("%s counted keepalived's packets as bad CARP: %+v", g.ns.Short, s)
		}
	}
	if n := gb.count(0, carp.Master); n != 0 {
		t.Errorf("b became MASTER: %s", gb.describe())
	}
	if n := ga.count(0, carp.Backup); n != 1 {
		t.Errorf("a left MASTER: %s", ga.describe())
	}
	// Each instance enters BACKUP once, at init, and MASTER once.
	if m, b := k.Count(0, "Entering MASTER STATE"), k.Count(0, "Entering BACKUP STATE"); m != 2 || b != 2 {
		t.Errorf("keepalived entered MASTER %d and BACKUP %d times, want 2 and 2:\n%s", m, b, strings.Join(k.Output(), "\n"))
	}
}

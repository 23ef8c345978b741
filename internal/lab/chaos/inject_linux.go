package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// kinds are the event kinds of each system with their weights.
var kinds = map[string][]struct {
	kind   string
	weight int
}{
	"carpd":  {{"kill", 2}, {"crash", 1}, {"freeze", 2}, {"flap", 2}, {"partition", 2}, {"loss", 1}},
	"fwpair": {{"kill", 2}, {"crash", 1}, {"freeze", 2}, {"flap", 2}, {"sync-partition", 2}, {"loss", 1}, {"delay", 1}},
}

// allowed reports whether cfg.Kinds lets kind run on system sys: an empty
// list allows everything, else an entry names the kind ("freeze") or the
// kind on one system ("fwpair/freeze").
func (c Config) allowed(sys, kind string) bool {
	if len(c.Kinds) == 0 {
		return true
	}
	for _, k := range c.Kinds {
		if k == kind || k == sys+"/"+kind {
			return true
		}
	}
	return false
}

// pickKind returns a kind allowed on sys, by weight, or "" if none is.
func (s *Soak) pickKind(r *rand.Rand, sys string) string {
	total := 0
	for _, k := range kinds[sys] {
		if s.cfg.allowed(sys, k.kind) {
			total += k.weight
		}
	}
	if total == 0 {
		return ""
	}
	x := r.IntN(total)
	for _, k := range kinds[sys] {
		if !s.cfg.allowed(sys, k.kind) {
			continue
		}
		if x < k.weight {
			return k.kind
		}
		x -= k.weight
	}
	panic("unreachable")
}

// pickNode returns the master of the system's first group half of the
// time, any node otherwise.
func (s *Soak) pickNode(r *rand.Rand, sys *system) *node {
	coin := r.IntN(2) == 0
	other := sys.nodes[r.IntN(len(sys.nodes))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms := sys.masters(sys.groups[0]); coin && len(ms) == 1 {
		return ms[0]
	}
	return other
}

// role names n's role for the event log. Called without mu.
func (s *Soak) role(n *node) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.state[n.sys.groups[0]] == "MASTER" {
		return n.name + "(master)"
	}
	return n.name + "(backup)"
}

// inject runs events on sys until deadline, one at a time: each fault is
// held, undone, and the system must settle (preferred master back, pair
// in sync, every flow moving) before the next one. It returns an error
// only when the system does not settle, which ends the soak.
func (s *Soak) inject(sys *system, r *rand.Rand, deadline time.Time, stop <-chan struct{}) error {
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return nil
		case <-time.After(between(r, 200*time.Millisecond, 2*time.Second)): // pacing of the schedule
		}
		kind := s.pickKind(r, sys.name)
		if kind == "" {
			return nil
		}
		e, err := s.one(sys, kind, r)
		if err != nil {
			return err
		}
		if err := s.settle(sys, e); err != nil {
			return err
		}
	}
	return nil
}

// one injects one event on sys, holds it and undoes it.
func (s *Soak) one(sys *system, kind string, r *rand.Rand) (*event, error) {
	n := s.pickNode(r, sys)
	if (kind == "kill" || kind == "crash") && n == sys.nodes[len(sys.nodes)-1] && len(sys.nodes) > 2 {
		// The least preferred node of the carpd group is never
		// restarted: one process lives through the whole soak, so its
		// memory and threads can be compared from start to end.
		n = sys.nodes[len(sys.nodes)-2]
	}
	var e *event
	switch kind {
	case "kill", "crash":
		crash := kind == "crash"
		down := between(r, 200*time.Millisecond, 1500*time.Millisecond)
		if crash {
			down = between(r, time.Second, 6*time.Second)
		}
		e = s.begin(sys, kind, s.role(n), fmt.Sprintf("down %v", down.Round(time.Millisecond)), false, n)
		if err := s.kill(n); err != nil {
			return e, err
		}
		if crash {
			if err := s.cutNode(n, true); err != nil {
				return e, err
			}
			s.onUndo(e, func() { s.cutNode(n, false) })
		}
		time.Sleep(down) // the fault's duration
		if crash {
			if err := s.reboot(n); err != nil {
				return e, err
			}
			if err := s.cutNode(n, false); err != nil {
				return e, err
			}
		}
		s.start(n)
	case "freeze":
		hold := between(r, time.Second, 6*time.Second)
		// A frozen master keeps its addresses while a backup takes over:
		// a split is expected until it runs again.
		role := s.role(n)
		e = s.begin(sys, kind, role, fmt.Sprintf("SIGSTOP for %v", hold.Round(time.Millisecond)), strings.HasSuffix(role, "(master)"), n)
		s.mu.Lock()
		p := n.proc
		n.frozen = true
		s.mu.Unlock()
		if err := n.signal(p, syscall.SIGSTOP); err != nil {
			return e, err
		}
		s.onUndo(e, func() { p.Signal(syscall.SIGCONT) })
		time.Sleep(hold)
		if err := n.signal(p, syscall.SIGCONT); err != nil {
			return e, err
		}
		s.mu.Lock()
		n.frozen = false
		s.notify()
		s.mu.Unlock()
	case "flap":
		i := r.IntN(len(n.ports))
		hold := between(r, 300*time.Millisecond, 5*time.Second)
		e = s.begin(sys, kind, s.role(n), fmt.Sprintf("%s carrier off for %v", n.ifaces[i], hold.Round(time.Millisecond)), false, n)
		if err := setLink(sys.sw, n.ports[i], false); err != nil {
			return e, err
		}
		s.onUndo(e, func() { setLink(sys.sw, n.ports[i], true) })
		time.Sleep(hold)
		if err := setLink(sys.sw, n.ports[i], true); err != nil {
			return e, err
		}
		if err := waitRunning(n.ns, n.ifaces[i], 10*time.Second); err != nil {
			return e, err
		}
	case "partition":
		hold := between(r, time.Second, 8*time.Second)
		e = s.begin(sys, kind, s.role(n), fmt.Sprintf("CARP in and out dropped for %v", hold.Round(time.Millisecond)), true, n)
		if err := s.nftPort(e, n, 0, "ip protocol 112 drop", "ip6 nexthdr 112 drop"); err != nil {
			return e, err
		}
		time.Sleep(hold)
		if err := s.nftDelete(e); err != nil {
			return e, err
		}
	case "sync-partition":
		hold := between(r, 2*time.Second, 15*time.Second)
		viaLink := r.IntN(2) == 0
		how := "dropped by nftables"
		if viaLink {
			how = "link down"
		}
		e = s.begin(sys, kind, n.name, fmt.Sprintf("sync link %s at %s for %v", how, n.name, hold.Round(time.Millisecond)), false, nil)
		if viaLink {
			if err := setLink(n.ns, fwbench.SyncIf, false); err != nil {
				return e, err
			}
			s.onUndo(e, func() { setLink(n.ns, fwbench.SyncIf, true) })
		} else if err := s.nftIngress(e, sys, fwbench.SyncIf, "drop"); err != nil {
			return e, err
		}
		time.Sleep(hold)
		if viaLink {
			if err := setLink(n.ns, fwbench.SyncIf, true); err != nil {
				return e, err
			}
			if err := waitRunning(n.ns, fwbench.SyncIf, 10*time.Second); err != nil {
				return e, err
			}
		} else if err := s.nftDelete(e); err != nil {
			return e, err
		}
	case "loss":
		sync := 0
		if sys.pair != nil {
			sync = 1
		}
		i := r.IntN(len(n.ifaces) + sync) // an interface of n, or the pair's sync link
		ifn := fwbench.SyncIf
		if i < len(n.ifaces) {
			ifn = n.ifaces[i]
		}
		pct := 5 + r.IntN(36)
		hold := between(r, 3*time.Second, 10*time.Second)
		e = s.begin(sys, kind, s.role(n), fmt.Sprintf("%d%% of %s's packets dropped both ways for %v", pct, ifn, hold.Round(time.Millisecond)), true, n)
		drop := fmt.Sprintf("numgen random mod 100 < %d drop", pct)
		var err error
		if i < len(n.ifaces) {
			err = s.nftPort(e, n, i, drop)
		} else {
			err = s.nftIngress(e, sys, ifn, drop)
		}
		if err != nil {
			return e, err
		}
		time.Sleep(hold)
		if err := s.nftDelete(e); err != nil {
			return e, err
		}
	case "delay":
		ifs := append(append([]string(nil), n.ifaces...), fwbench.SyncIf)
		ifn := ifs[r.IntN(len(ifs))]
		rate := 64 << r.IntN(3) // kbit/s
		lat := between(r, 100*time.Millisecond, 500*time.Millisecond).Round(time.Millisecond)
		hold := between(r, 3*time.Second, 10*time.Second)
		e = s.begin(sys, kind, s.role(n), fmt.Sprintf("%s egress through tbf %dkbit, queue up to %v, for %v", ifn, rate, lat, hold.Round(time.Millisecond)), true, n)
		if err := nsOutput(n.ns, "tc", "qdisc", "add", "dev", ifn, "root", "tbf", "rate", fmt.Sprintf("%dkbit", rate),
			"burst", "4kb", "latency", lat.String()); err != nil {
			return e, err
		}
		s.onUndo(e, func() { nsOutput(n.ns, "tc", "qdisc", "del", "dev", ifn, "root") })
		time.Sleep(hold)
		if err := nsOutput(n.ns, "tc", "qdisc", "del", "dev", ifn, "root"); err != nil {
			return e, err
		}
	}
	s.healed(e)
	return e, nil
}

// cutNode takes every link of n down (its switch ports, and its end of the
// sync link), as when the box loses power, or brings them back.
func (s *Soak) cutNode(n *node, down bool) error {
	for i, p := range n.ports {
		if err := setLink(n.sys.sw, p, !down); err != nil {
			return err
		}
		if !down {
			if err := waitRunning(n.ns, n.ifaces[i], 10*time.Second); err != nil {
				return err
			}
		}
	}
	if n.sys.pair != nil {
		if err := setLink(n.ns, fwbench.SyncIf, !down); err != nil {
			return err
		}
		if !down {
			return waitRunning(n.ns, fwbench.SyncIf, 10*time.Second)
		}
	}
	return nil
}

// reboot forgets what a crashed box's kernel held: the virtual addresses
// (whatever prefix length the daemon gave them: "to" matches the address)
// and, on a firewall, the conntrack table; a firewall boots with fwpair's
// forwarding gate closed (its boot ruleset), before its links come up.
func (s *Soak) reboot(n *node) error {
	for a, ifn := range n.sys.vips {
		nsOutput(n.ns, "ip", "addr", "flush", "dev", ifn, "to", netip.PrefixFrom(a, a.BitLen()).String())
	}
	if n.sys.pair != nil {
		nsOutput(n.ns, "conntrack", "-F")
		if err := fwbench.CloseGate(n.ns); err != nil {
			return fmt.Errorf("%s: loading the boot gate: %w", n.name, err)
		}
	}
	return nil
}

// nftPort drops, with each rule, frames to and from n's port i in the
// switch (a bridge table there), so the node sees a lossy or partitioned
// network and no local send error.
func (s *Soak) nftPort(e *event, n *node, i int, rules ...string) error {
	var body []string
	for _, r := range rules {
		body = append(body, fmt.Sprintf("iifname %q %s", n.ports[i], r), fmt.Sprintf("oifname %q %s", n.ports[i], r))
	}
	return s.nftTable(e, n.sys.sw, "bridge", "forward", body)
}

// nftIngress applies rule to what every node of sys receives on ifname
// (the sync link, a veth between the firewalls, has no switch).
func (s *Soak) nftIngress(e *event, sys *system, ifname, rule string) error {
	for _, n := range sys.nodes {
		if err := s.nftTable(e, n.ns, "inet", "prerouting", []string{fmt.Sprintf("iifname %q %s", ifname, rule)}); err != nil {
			return err
		}
	}
	return nil
}

// nftTable installs table "chaos<id>" of family in ns with one chain on
// hook holding rules, and registers its removal with the event's undo.
func (s *Soak) nftTable(e *event, ns *netns.NS, family, hook string, rules []string) error {
	tbl := fmt.Sprintf("chaos%d", e.id)
	text := fmt.Sprintf("table %s %s {\n\tchain c {\n\t\ttype filter hook %s priority -400; policy accept;\n\t\t%s\n\t}\n}\n",
		family, tbl, hook, strings.Join(rules, "\n\t\t"))
	f, err := os.CreateTemp("", "chaos-*.nft")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := nsOutput(ns, "nft", "-f", f.Name()); err != nil {
		return err
	}
	del := func() error { return nsOutput(ns, "nft", "delete", "table", family, tbl) }
	s.mu.Lock()
	s.nftUndo[e.id] = append(s.nftUndo[e.id], del)
	prev := s.undo[e.id]
	s.undo[e.id] = func() {
		if prev != nil {
			prev()
		}
		del()
	}
	s.mu.Unlock()
	return nil
}

// nftDelete removes the tables of event e.
func (s *Soak) nftDelete(e *event) error {
	s.mu.Lock()
	dels := s.nftUndo[e.id]
	delete(s.nftUndo, e.id)
	s.mu.Unlock()
	var errs []error
	for _, d := range dels {
		errs = append(errs, d())
	}
	return errors.Join(errs...)
}

// stress runs CPU hogs (one per CPU) for a few seconds at random times
// until deadline. Invariants get no slack for it: a loaded machine must not
// move a group.
func (s *Soak) stress(host *system, sw *netns.NS, r *rand.Rand, deadline time.Time, stop <-chan struct{}) {
	if !s.cfg.allowed(host.name, "cpu-stress") {
		return
	}
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		case <-time.After(between(r, 5*time.Second, 20*time.Second)):
		}
		hold := between(r, 2*time.Second, 8*time.Second)
		k := runtime.NumCPU()
		e := s.begin(host, "cpu-stress", "host", fmt.Sprintf("%d busy loops for %v", k, hold.Round(time.Millisecond)), false, nil)
		var ps []*netns.Process
		for range k {
			p := sw.Start("sh", "-c", "while :; do :; done")
			ps = append(ps, p)
		}
		s.mu.Lock()
		s.stressing = append(s.stressing, ps...)
		s.mu.Unlock()
		select {
		case <-time.After(hold):
		case <-stop:
		}
		for _, p := range ps {
			if err := p.Stop(); err != nil {
				s.mu.Lock()
				s.violate(host, "cleanup", err.Error())
				s.mu.Unlock()
			}
		}
		s.mu.Lock()
		s.stressing = s.stressing[:0]
		s.mu.Unlock()
		s.healed(e)
	}
}

// settle waits until the system is back in its preferred state: every
// daemon running, each group with exactly one master, the preferred node;
// for the pair, both sync peers up and the backup's bulk sync done, and
// every flow moving. A system that does not settle within settleTimeout is
// a violation that ends the soak: later checks would only repeat it.
func (s *Soak) settle(sys *system, e *event) error {
	defer s.settled(e)
	ok := s.waitStable(settleTimeout, advertInterval+s.cfg.Slack, func() bool {
		b := sys.best()
		if b == nil || b != sys.nodes[0] {
			return false
		}
		for _, n := range sys.nodes {
			if !n.alive || n.frozen {
				return false
			}
		}
		for _, vhid := range sys.groups {
			if ms := sys.masters(vhid); len(ms) != 1 || ms[0] != b {
				return false
			}
			for _, n := range sys.nodes {
				if n.demotion[vhid] != 0 {
					return false
				}
			}
		}
		return true
	})
	if !ok {
		s.mu.Lock()
		var st []string
		for _, n := range sys.nodes {
			st = append(st, fmt.Sprintf("%s alive=%v frozen=%v states %v demotions %v", n.name, n.alive, n.frozen, n.state, n.demotion))
		}
		s.violate(sys, "settles", fmt.Sprintf("not back to one master on %s within %v: %v", sys.nodes[0].name, settleTimeout, st))
		s.mu.Unlock()
		return fmt.Errorf("chaos: %s did not settle after %v", sys.name, e)
	}
	if sys.pair == nil {
		return nil
	}
	var last string
	if !fwbench.Poll(settleTimeout, func() bool {
		for i, n := range sys.nodes {
			st, err := fwbench.QueryFwpair(n.socket)
			if err != nil {
				last = err.Error()
				return false
			}
			if st.Sync.PeersUp != 1 || (i > 0 && !st.Sync.BulkDone) {
				last = fmt.Sprintf("%s peers up %d, bulk done %v", n.name, st.Sync.PeersUp, st.Sync.BulkDone)
				return false
			}
		}
		return true
	}) {
		s.mu.Lock()
		s.violate(sys, "settles", fmt.Sprintf("pair not in sync within %v: %s", settleTimeout, last))
		s.mu.Unlock()
		return fmt.Errorf("chaos: %s did not settle after %v", sys.name, e)
	}
	if s.flows == nil { // start-up
		return nil
	}
	return s.checkFlows(sys)
}

// settleTimeout bounds the return to the preferred state after an event
// (a restarted firewall's bulk sync and the follow rule's hold included).
const settleTimeout = 60 * time.Second

// flowsTimeout bounds the recovery of every flow once the pair settled.
const flowsTimeout = 30 * time.Second

// checkFlows checks that every flow echoes again and that none broke
// since the previous check.
func (s *Soak) checkFlows(sys *system) error {
	// A TCP flow that was reset is reported once, below; the others must
	// all echo a message sent after the system settled.
	since := time.Now()
	var moving, alive int
	fwbench.Poll(flowsTimeout, func() bool {
		moving, alive = 0, 0
		for _, f := range s.flows.Stats() {
			if f.Err != nil && !f.UDP {
				continue
			}
			alive++
			if f.LastSent.After(since) {
				moving++
			}
		}
		return moving == alive
	})
	if moving != alive {
		s.mu.Lock()
		s.violate(sys, "flows-survive", fmt.Sprintf("%d of %d live flows echo again within %v of settling", moving, alive, flowsTimeout))
		s.mu.Unlock()
	}
	sum := fwbench.Summarize(s.flows.Stats(), false)
	resets := s.echo.Resets()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks["flows-survive"]++
	if sum.TCPFailed > s.flowFail.TCPFailed || sum.UDPFailed > s.flowFail.UDPFailed || resets > s.flowResets {
		s.violate(sys, "flows-survive", fmt.Sprintf("broken flows: tcp %d, udp %d (before: %d, %d), server resets %d (before %d): %v",
			sum.TCPFailed, sum.UDPFailed, s.flowFail.TCPFailed, s.flowFail.UDPFailed, resets, s.flowResets, sum.Examples))
	}
	s.flowFail, s.flowResets = sum, resets
	if sum.MaxGap > s.maxGap {
		s.maxGap = sum.MaxGap
	}
	return nil
}

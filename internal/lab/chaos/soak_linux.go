package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// Config is the soak's knobs (see doc.go for the flags that set them).
type Config struct {
	// Duration is how long events are injected.
	Duration time.Duration
	// Seed seeds the schedule; the same seed gives the same sequence of
	// events per system (the timing, and so the daemons' reactions, vary).
	Seed uint64
	// Slack is added to every bound to absorb the observation cadence
	// and the scheduling of a loaded machine.
	Slack time.Duration
	// Poll is the cadence of the address and master checks.
	Poll time.Duration
	// TCPFlows and UDPFlows run through the firewall pair (IPv4).
	TCPFlows, UDPFlows int
	// Race builds the daemons with the race detector.
	Race bool
	// Kinds restricts the events to these kinds ("freeze") or kinds on
	// one system ("fwpair/freeze", "host/cpu-stress"); empty means all.
	Kinds []string
}

// Violation is one broken invariant.
type Violation struct {
	At        time.Duration // since the start of the soak
	Invariant string
	System    string
	Detail    string
	Event     string // the event in progress or the latest one of the system
}

func (v Violation) String() string {
	return fmt.Sprintf("t+%v %s [%s] %s (event: %s)", v.At.Round(time.Millisecond), v.Invariant, v.System, v.Detail, v.Event)
}

// event is one injected fault.
type event struct {
	id         int
	sys        *system
	kind       string
	target     string
	detail     string
	start, end time.Time
	excusing   bool           // a split is expected while it lasts
	safe       bool           // must not move any group
	masterAt   map[int]string // master of each group at the start
	movedVHID  map[int]bool   // needless moves already reported
}

func (e *event) String() string {
	if e == nil {
		return "none"
	}
	return fmt.Sprintf("#%d %s %s %s %s", e.id, e.sys.name, e.kind, e.target, e.detail)
}

// Soak runs the systems, injects events and checks the invariants.
type Soak struct {
	t       testing.TB
	cfg     Config
	started time.Time
	systems []*system
	flows   *fwbench.Flows
	echo    *fwbench.EchoServer

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every model change
	events     []*event
	last       map[*system]*event
	kinds      map[string]int
	violations []Violation
	checks     map[string]int
	undo       map[int]func() // pending undo of active events, by id
	stressing  []*netns.Process
	flowFail   fwbench.Summary // flows broken at the latest check
	flowResets int
	maxGap     time.Duration
	nftUndo    map[int][]func() error // nftables tables of active events, by id
	seen       map[netip.Addr]int     // polls that found the address on exactly one node
	ending     bool                   // the soak is over: the cleanup kills the daemons
	unanswered int                    // status requests (SIGUSR1) a running daemon did not answer
}

// NewSoak prepares a soak of the given systems.
func NewSoak(t testing.TB, cfg Config, systems ...*system) *Soak {
	s := &Soak{t: t, cfg: cfg, systems: systems, changed: make(chan struct{}), last: map[*system]*event{},
		kinds: map[string]int{}, checks: map[string]int{}, undo: map[int]func(){}, nftUndo: map[int][]func() error{}, seen: map[netip.Addr]int{}}
	for _, sys := range systems {
		sys.track = map[string]*split{}
	}
	// Every fault is undone even when the run fails: the namespaces and
	// processes go with the topology, but a frozen daemon must not stay
	// frozen while the topology's cleanup kills it, and stress processes
	// live outside the namespaces.
	t.Cleanup(s.undoAll)
	return s
}

func (s *Soak) now() time.Duration { return time.Since(s.started) }

// notify wakes the waiters on the model. Called with mu held.
func (s *Soak) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// violate records a violation. Called with mu held.
func (s *Soak) violate(sys *system, inv, detail string) {
	v := Violation{At: s.now(), Invariant: inv, System: sys.name, Detail: detail, Event: s.last[sys].String()}
	s.violations = append(s.violations, v)
	s.t.Logf("VIOLATION %v", v)
	s.notify()
}

// Violations returns the violations so far.
func (s *Soak) Violations() []Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Violation(nil), s.violations...)
}

// start starts node n's daemon and its log tracker.
func (s *Soak) start(n *node) {
	p := n.ns.Start(n.args[0], n.args[1:]...)
	s.mu.Lock()
	n.proc = p
	n.gen++
	n.alive, n.frozen, n.expectExit = true, false, false
	n.state = map[int]string{}
	n.demotion = map[int]int{}
	m := &procMem{gen: n.gen, pid: p.Pid(), started: time.Now()}
	n.mem = append(n.mem, m)
	gen := n.gen
	s.notify()
	s.mu.Unlock()
	go s.follow(n, p, gen)
}

// kill SIGKILLs node n's daemon and waits until it has exited.
func (s *Soak) kill(n *node) error {
	s.mu.Lock()
	p := n.proc
	n.expectExit = true
	n.alive = false
	n.frozen = false
	s.notify()
	s.mu.Unlock()
	if err := n.signal(p, syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("chaos: %s did not exit within 10s of SIGKILL", n.name)
	}
}

var (
	fieldRE = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)
	// A Go runtime crash, or the race detector's report.
	panicMarks = []string{"panic:", "fatal error:", "WARNING: DATA RACE", "goroutine 1 [", "SIGSEGV"}
)

// follow reads the daemon's log lines as they come: state changes update
// the model, a panic is a violation, and an exit the soak did not cause is
// one too.
func (s *Soak) follow(n *node, p *netns.Process, gen int) {
	from := 0
	for {
		line, i, err := p.WaitLine(from, "", time.Minute)
		if err != nil {
			select {
			case <-p.Done():
				s.exited(n, p, gen)
				return
			default:
				continue // no line for a minute
			}
		}
		from = i + 1
		s.line(n, gen, line)
	}
}

func (s *Soak) exited(n *node, p *netns.Process, gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.gen != gen {
		return
	}
	n.alive = false
	if !n.expectExit && !s.ending {
		out := p.Output()
		s.violate(n.sys, "no-crash", fmt.Sprintf("%s exited by itself (%v); last lines: %q", n.name, p.Err(), out[max(0, len(out)-5):]))
	}
	s.notify()
}

func (s *Soak) line(n *node, gen int, line string) {
	for _, m := range panicMarks {
		if strings.Contains(line, m) {
			s.mu.Lock()
			s.violate(n.sys, "no-panic", fmt.Sprintf("%s: %s", n.name, line))
			s.mu.Unlock()
			return
		}
	}
	demotion := strings.Contains(line, `msg="carp: demotion changed"`)
	if !demotion && !strings.Contains(line, `msg="carp: state changed"`) {
		return
	}
	f := map[string]string{}
	for _, kv := range fieldRE.FindAllStringSubmatch(line, -1) {
		f[kv[1]] = strings.Trim(kv[2], `"`)
	}
	vhid, err := strconv.Atoi(f["vhid"])
	if err != nil || f["state"] == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.gen != gen {
		return
	}
	if demotion {
		n.demotion[vhid], _ = strconv.Atoi(f["to"])
		s.notify()
		return
	}
	prev := n.state[vhid]
	n.state[vhid] = f["state"]
	if f["state"] == "MASTER" && prev != "MASTER" {
		if e := n.sys.safe; e != nil && e.masterAt[vhid] != "" && e.masterAt[vhid] != n.name && !e.movedVHID[vhid] {
			e.movedVHID[vhid] = true
			var dem []string
			for _, o := range n.sys.nodes {
				dem = append(dem, fmt.Sprintf("%s %d", o.name, o.demotion[vhid]))
			}
			s.violate(n.sys, "no-needless-failover", fmt.Sprintf("vhid %d moved from %s to %s (%q) during an event the master needs no help with; demotions %s",
				vhid, e.masterAt[vhid], n.name, f["reason"], strings.Join(dem, ", ")))
		}
	}
	s.notify()
}

// procMem is the memory and thread figures of one daemon process.
type procMem struct {
	gen                int
	pid                int
	started            time.Time
	first, last        memSample
	peakHWM            int // kB
	peakGoroutines     int
	samples            int
	baseline           *memSample // first sample after the warm-up
	baselineAt, lastAt time.Time
}

type memSample struct {
	RSS, HWM, Threads, FDs int // kB, kB, count, count
	Goroutines             int // from the daemon's status line
}

func (m memSample) String() string {
	return fmt.Sprintf("rss %d KiB, hwm %d KiB, threads %d, fds %d, goroutines %d", m.RSS, m.HWM, m.Threads, m.FDs, m.Goroutines)
}

// Invariant checks.

// check evaluates the split invariants once, with the addresses observed
// at this instant (per system: address -> nodes holding it on a running
// interface).
func (s *Soak) check(held map[*system]map[netip.Addr][]*node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, sys := range s.systems {
		excused := sys.excusing > 0
		for _, vhid := range sys.groups {
			ms := sys.masters(vhid)
			s.checks["one-master"]++
			s.bound(sys, fmt.Sprintf("masters/%d", vhid), len(ms) >= 2, excused, now, advertInterval, "one-master",
				func(d time.Duration) string {
					return fmt.Sprintf("vhid %d: %d masters (%s) for %v", vhid, len(ms), names(ms), d.Round(time.Millisecond))
				})
			// A group without a master: a backup must take over within
			// its master-down interval after the last advert, which
			// itself came at most one advert interval before the fault.
			s.checks["some-master"]++
			s.bound(sys, fmt.Sprintf("none/%d", vhid), len(ms) == 0, false, now, masterDown+advertInterval, "some-master",
				func(d time.Duration) string {
					return fmt.Sprintf("vhid %d: no master for %v", vhid, d.Round(time.Millisecond))
				})
		}
		for a := range sys.vips {
			hs := held[sys][a]
			s.checks["one-holder"]++
			if len(hs) == 1 {
				s.seen[a]++
			}
			s.bound(sys, "addr/"+a.String(), len(hs) >= 2, excused, now, advertInterval, "one-holder",
				func(d time.Duration) string {
					return fmt.Sprintf("%v on %d nodes (%s) for %v", a, len(hs), names(hs), d.Round(time.Millisecond))
				})
		}
	}
}

// bound tracks a condition that may last at most limit (plus slack), or
// until limit after the latest excusing event of the system ended, and
// reports it once per episode. Called with mu held.
func (s *Soak) bound(sys *system, key string, on, excused bool, now time.Time, limit time.Duration, inv string, detail func(time.Duration) string) {
	tr := sys.track[key]
	if !on {
		delete(sys.track, key)
		return
	}
	if tr == nil {
		tr = &split{since: now}
		sys.track[key] = tr
	}
	if tr.reported || excused {
		return
	}
	from := tr.since
	if inv != "some-master" && sys.excuseEnd.After(from) {
		from = sys.excuseEnd
	}
	if now.Sub(from) > limit+s.cfg.Slack {
		tr.reported = true
		s.violate(sys, inv, detail(now.Sub(tr.since)))
	}
}

// Helpers of the injectors.

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// begin records the start of an event. Called without mu.
func (s *Soak) begin(sys *system, kind, target, detail string, excusing bool, targetNode *node) *event {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &event{id: len(s.events) + 1, sys: sys, kind: kind, target: target, detail: detail, start: time.Now(),
		excusing: excusing, masterAt: map[int]string{}, movedVHID: map[int]bool{}}
	for _, vhid := range sys.groups {
		if ms := sys.masters(vhid); len(ms) == 1 {
			e.masterAt[vhid] = ms[0].name
		}
	}
	// An event spares the master if it touches only a backup, or is a
	// sync-link partition (which must never move the groups): the groups
	// must stay where they are until the system has settled again.
	switch {
	case kind == "sync-partition":
		e.safe = true
	case targetNode != nil && kind != "loss" && kind != "delay" && kind != "partition":
		e.safe = true
		for _, m := range e.masterAt {
			if m == targetNode.name {
				e.safe = false
			}
		}
	}
	if e.safe {
		sys.safe = e
	}
	if excusing {
		sys.excusing++
	}
	s.events = append(s.events, e)
	s.last[sys] = e
	s.kinds[sys.name+"/"+kind]++
	s.t.Logf("t+%v event %v (masters %v, safe %v, split expected %v)", s.now().Round(time.Millisecond), e, e.masterAt, e.safe, excusing)
	return e
}

// healed records that the fault of e was undone.
func (s *Soak) healed(e *event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.end = time.Now()
	ms := map[int]string{}
	for _, vhid := range e.sys.groups {
		ms[vhid] = names(e.sys.masters(vhid))
	}
	s.t.Logf("t+%v healed #%d after %v (masters %v)", s.now().Round(time.Millisecond), e.id, e.end.Sub(e.start).Round(time.Millisecond), ms)
	if e.excusing {
		e.sys.excusing--
		if e.end.After(e.sys.excuseEnd) {
			e.sys.excuseEnd = e.end
		}
	}
	delete(s.undo, e.id)
}

// settled ends the needless-failover window of e.
func (s *Soak) settled(e *event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.sys.safe == e {
		e.sys.safe = nil
	}
}

// onUndo registers the undo of an active event, run by undoAll if the
// soak ends before the event does.
func (s *Soak) onUndo(e *event, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.undo[e.id] = fn
}

func (s *Soak) undoAll() {
	s.mu.Lock()
	undo := s.undo
	s.undo = map[int]func(){}
	stress := s.stressing
	s.stressing = nil
	s.mu.Unlock()
	for _, fn := range undo {
		fn()
	}
	for _, p := range stress {
		if err := p.Stop(); err != nil {
			s.t.Errorf("chaos: stopping stress: %v", err)
		}
	}
}

// waitStable waits until cond holds on the model and then keeps holding
// for window, or timeout; it returns whether it did.
func (s *Soak) waitStable(timeout, window time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !s.waitModel(time.Until(deadline), cond) {
			return false
		}
		t := time.NewTimer(window)
		stable := func() bool {
			defer t.Stop()
			for {
				s.mu.Lock()
				ok, ch := cond(), s.changed
				s.mu.Unlock()
				if !ok {
					return false
				}
				select {
				case <-ch:
				case <-t.C:
					return true
				}
			}
		}()
		if stable {
			return true
		}
	}
}

// waitModel waits until cond holds on the model (called with mu held) or
// timeout; it returns whether it held.
func (s *Soak) waitModel(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

package carp

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarp/gocarp/internal/ratelog"
	"github.com/gocarp/gocarp/internal/recvloop"
)

// Demotion sources the Group sets itself.
const (
	// DemoteLink is raised (by 1) while the link is down (SetLinkState).
	DemoteLink = "link"
	// DemoteSendErr is raised (by 1) after 3 consecutive send failures.
	DemoteSendErr = "senderr"
)

// DemotedSkew is the advskew a demoted group advertises with
// Config.DemoteInSkew: FreeBSD's CARP_MAXSKEW, the highest advskew FreeBSD
// advertises and the value each of its demotion sources adds.
const DemotedSkew = 240

const (
	sendErrThreshold = 3 // consecutive failures to demote, successes to recover (BSD)
	readRetry        = 100 * time.Millisecond
)

// ErrClosed is returned by Start on a closed group.
var ErrClosed = errors.New("carp: group closed")

// Group runs the CARP protocol for one virtual host id on one transport.
// Build it with [NewGroup], run it with Start and stop it with Close. All
// methods are safe for concurrent use; the control methods (SetDemotion,
// SetLinkState, StepDown) never block on the protocol loop and may be called
// before Start (they take effect at Start) and after Close (no effect).
type Group struct {
	cfg      Config
	auth     *Authenticator
	log      *slog.Logger
	families []Family
	tme      int // own advbase·256 + advskew
	advInt   time.Duration
	mdInt    time.Duration
	vrrp     *vrrpGroup // nil with CARP

	// pubInt and pubDown are advInt and mdInt for the accessors: the
	// protocol loop changes the fields on Reconfigure.
	pubInt, pubDown atomic.Int64

	st    stats
	trans transitionCounts
	state atomic.Uint32

	mu      sync.Mutex
	demote  map[string]int
	linkUp  bool
	stepReq bool
	stepFor time.Duration
	started bool
	closed  bool
	follow  *FollowGroup // set by FollowGroup.Add before Start, then fixed
	reconf  *reconfig    // a Reconfigure waiting for the protocol loop

	reconfMu sync.Mutex // serialises Reconfigure calls

	kick      chan struct{} // control changed; capacity 1
	done      chan struct{} // closed by Close
	loopDone  chan struct{}
	held      atomic.Int32 // packets read has received and the protocol loop not yet taken
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	ntf       *notifier

	contestLog ratelog.Limiter[Family] // lines about contests (contest.go)
}

// NewGroup validates cfg and returns a group in state INIT. It fails,
// naming the field, the value and the allowed range, if any field is
// invalid, or if the transport cannot carry a family of the addresses.
// On success the Group owns cfg.Transport.
func NewGroup(cfg Config) (*Group, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	d, err := deriveSettings(cfg)
	if err != nil {
		return nil, err
	}
	g := &Group{
		cfg:      cfg,
		auth:     d.auth,
		log:      cfg.Logger.With("vhid", cfg.VHID),
		families: d.families,
		tme:      d.tme,
		advInt:   d.advInt,
		mdInt:    d.mdInt,
		vrrp:     d.vrrp,
		demote:   map[string]int{},
		linkUp:   true,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	g.pubInt.Store(int64(d.advInt))
	g.pubDown.Store(int64(d.mdInt))
	if cfg.OnTransition != nil || cfg.OnContested != nil {
		g.ntf = &notifier{fn: cfg.OnTransition, contested: cfg.OnContested, wake: make(chan struct{}, 1), done: make(chan struct{})}
	}
	g.state.Store(uint32(Init))
	return g, nil
}

// ticks converts 1/256 s to a Duration (exact: 1/256 s is 3906250 ns).
func ticks(n int) time.Duration { return time.Duration(n) * time.Second / 256 }

// AdvertInterval is the interval between adverts while MASTER:
// advbase + advskew/256 seconds (VRRPv3: Config.AdvertInterval).
func (g *Group) AdvertInterval() time.Duration { return time.Duration(g.pubInt.Load()) }

// MasterDownInterval is how long a BACKUP waits without an advert before it
// becomes MASTER, by the configured Profile and DeadRatio. With VRRPv3 it
// is 3·AdvertInterval + (256 - Priority)·AdvertInterval/256; a backup
// recomputes it from the interval its master advertises and its demotion.
func (g *Group) MasterDownInterval() time.Duration { return time.Duration(g.pubDown.Load()) }

// State returns the current state.
func (g *Group) State() State { return State(g.state.Load()) }

// Stats returns a snapshot of the packet counters.
func (g *Group) Stats() Stats { return g.st.snapshot() }

// VHID returns the group's virtual host id (Config.VHID).
func (g *Group) VHID() uint8 { return g.cfg.VHID }

// Start starts the protocol: the group leaves INIT for BACKUP (or MASTER
// with Config.StartAsMaster) after Config.HoldDown, unless the link was
// set down. It fails if the group was started or closed before.
func (g *Group) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.started {
		return errors.New("carp: group already started")
	}
	g.started = true
	pkts := make(chan Packet)
	r := &run{g: g, holdPending: g.cfg.HoldDown > 0}
	r.counter = randomCounter()
	g.wg.Add(2)
	go g.read(pkts)
	go r.loop(pkts)
	if g.ntf != nil {
		go g.ntf.run()
	}
	return nil
}

// Close stops the group. A MASTER first sends one bow-out advert per
// family (advbase 255, advskew 255, as OpenBSD does on ifconfig down), so a
// backup takes over at once instead of after the master-down interval. The
// group then goes to INIT, closes the transport and waits for its protocol
// and receive goroutines, which never wait for OnTransition.
//
// Close then waits for OnTransition (and OnContested) to return from the
// events queued so far (the last transition is to INIT), but at most Config.CloseTimeout (5 s by
// default). If the hook is still running then, Close logs a warning and
// returns anyway; the one goroutine that calls the hook stays behind until
// the hook returns, delivers what is left of the queue and exits. Nothing
// else outlives Close. Close is idempotent; it returns the transport's
// Close error.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		started := g.started
		g.mu.Unlock()
		close(g.done)
		if started {
			<-g.loopDone
		}
		if err := g.cfg.Transport.Close(); err != nil {
			g.closeErr = fmt.Errorf("carp: closing transport: %w", err)
		}
		g.wg.Wait()
		if started && g.ntf != nil && !g.ntf.close(g.cfg.CloseTimeout) {
			g.log.Warn("carp: OnTransition or OnContested still running at close; not waiting for it", "timeout", g.cfg.CloseTimeout)
		}
	})
	return g.closeErr
}

// SetDemotion sets the demotion of one source (a health check, "pfsync"
// while a bulk update runs, ...). The advertised demote byte is the sum over
// all sources, capped at 255 (OpenBSD interface-group demotion). A lower
// demotion wins elections even without Preempt, so raising it hands
// mastership to a healthier peer. n <= 0 clears the source. A change while
// MASTER is advertised at once, and a backup that now wins the election
// takes over on that advert, with or without Preempt (see "Planned
// handover" in the package documentation). Clearing every source always
// restores the configured priority, whatever the state.
//
// Peers that ignore the demote byte (FreeBSD, ucarp) do not see it unless
// Config.DemoteInSkew also folds it into the advskew.
func (g *Group) SetDemotion(source string, n int) {
	g.mu.Lock()
	if n <= 0 {
		delete(g.demote, source)
	} else {
		g.demote[source] = n
	}
	g.mu.Unlock()
	g.poke()
}

// Demotion returns the current demotion: the sum over all sources, capped
// at 255.
func (g *Group) Demotion() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.demoteSumLocked()
}

func (g *Group) demoteSumLocked() int {
	sum := 0
	for _, n := range g.demote {
		sum += n
		if sum >= 255 {
			return 255
		}
	}
	return sum
}

// SetLinkState reports the state of the link the transport uses. Down puts
// the group in INIT (timers stopped, adverts ignored; a MASTER leaves
// without a bow-out, the link being gone) and raises the demotion source
// "link" by 1; up returns to BACKUP with a fresh master-down timer and
// clears it (carp(4) on parent link changes). A FollowGroup the group
// belongs to learns of the change too (its link rule).
func (g *Group) SetLinkState(up bool) {
	g.mu.Lock()
	g.linkUp = up
	if up {
		delete(g.demote, DemoteLink)
	} else {
		g.demote[DemoteLink] = 1
	}
	f := g.follow
	g.mu.Unlock()
	g.poke()
	if f != nil {
		f.link(g, up) // without g.mu: the FollowGroup locks its members
	}
}

// StepDown makes a MASTER become BACKUP and keeps the group from taking over
// for d, whatever it hears (ucarp SIGUSR2 uses 3 s). The MASTER first sends
// a bow-out advert (advbase 255, advskew 255; VRRPv3: priority 0), so a
// backup takes over at once (VRRPv3: after its Skew_Time), whether or not
// it preempts, instead of after its master-down interval. If no other node
// has become master when d is over and the master-down interval has
// passed, the group takes over again. On a BACKUP it only suppresses
// takeover for d.
func (g *Group) StepDown(d time.Duration) {
	g.mu.Lock()
	g.stepReq = true
	g.stepFor = d
	g.mu.Unlock()
	g.poke()
}

// pending reports whether received packets wait for the protocol loop:
// held by the read goroutine, or not yet returned by a Transport that can
// tell (PendingReporter).
func (g *Group) pending() bool {
	if g.held.Load() > 0 {
		return true
	}
	pr, ok := g.cfg.Transport.(PendingReporter)
	return ok && pr.Pending()
}

// poke wakes the protocol loop without blocking.
func (g *Group) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// read feeds received packets to the protocol loop until the transport is
// closed. It copies each payload: the transport owns it only until the next
// Receive.
func (g *Group) read(pkts chan<- Packet) {
	defer g.wg.Done()
	recvloop.Loop[Packet]{
		Done:    g.done,
		Receive: g.cfg.Transport.Receive,
		Handle: func(p Packet) bool {
			p.Payload = append([]byte(nil), p.Payload...)
			g.held.Add(1) // the protocol loop takes it off
			select {
			case pkts <- p:
				return true
			case <-g.done:
				return false
			}
		},
		Retry:  readRetry,
		Failed: func(err error) { g.log.Debug("carp: receive failed", "err", err) },
		Closed: func(err error) {
			g.log.Error("carp: transport closed under the group; no more adverts received", "err", err)
		},
	}.Run()
}

// notifier delivers transitions to OnTransition and contests to
// OnContested serially, in the order they happened, on its own goroutine,
// with an unbounded queue so the protocol loop never waits. Either hook may
// be nil: its events are not queued.
type notifier struct {
	fn        func(Transition)
	contested func(Contest)
	mu        sync.Mutex
	q         []note
	closed    bool
	wake      chan struct{} // capacity 1
	done      chan struct{}
}

// note is one queued event: a transition, or a contest if isContest.
type note struct {
	t         Transition
	c         Contest
	isContest bool
}

func (n *notifier) push(t Transition) {
	if n.fn != nil {
		n.enqueue(note{t: t})
	}
}

func (n *notifier) pushContest(c Contest) {
	if n.contested != nil {
		n.enqueue(note{c: c, isContest: true})
	}
}

func (n *notifier) enqueue(e note) {
	n.mu.Lock()
	n.q = append(n.q, e)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		n.mu.Lock()
		if len(n.q) > 0 {
			e := n.q[0]
			n.q[0] = note{}
			n.q = n.q[1:]
			n.mu.Unlock()
			if e.isContest {
				n.contested(e.c)
			} else {
				n.fn(e.t)
			}
			continue
		}
		if n.closed {
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		<-n.wake
	}
}

// close tells the goroutine to exit once it has delivered what is queued
// and waits for that at most d. It reports whether the goroutine exited.
func (n *notifier) close(d time.Duration) bool {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-n.done:
		return true
	case <-t.C:
		return false
	}
}

package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// Config configures a Follower. Manager and Addrs are required; every other
// zero value means the documented default.
type Config struct {
	// VHID is the group this Follower follows. Handle ignores transitions
	// of other groups, so one OnTransition may feed several Followers.
	// Zero accepts every transition. It also appears in logs.
	VHID uint8

	// Addrs are the virtual addresses, of either family (at least one).
	// They are usually the group's carp.Config.Addrs (see Host).
	Addrs []VIP

	// Manager installs and removes the addresses. Required.
	Manager AddrManager

	// Announcer announces the addresses after they are installed. Nil
	// means addresses only, for networks where something else moves
	// traffic (a cloud API called from BeforeInstall, for example).
	Announcer Announcer

	// AdvertInterval is the group's advertisement interval
	// (carp.Group.AdvertInterval), from which the default Schedule is
	// derived. Zero means 1 s, CARP's default advbase.
	AdvertInterval time.Duration

	// Schedule of announcements after a promotion; the zero value is
	// OpenBSD's (see Schedule).
	Schedule Schedule

	// BeforeInstall, when not nil, runs on every promotion before any
	// address is installed: the place for pfsync's "commit state" step
	// (conntrackd -c), so that traffic drawn by the announcements finds its
	// connection state. The order on promotion is always
	// BeforeInstall → install → announce.
	//
	// Its context ends after BeforeInstallTimeout, when a later transition
	// leaves MASTER, or when the Follower closes; it must return soon after,
	// since the Follower (and its Close) waits for it. An error (or the
	// deadline) is recorded (Err, Stats.Errors, the logger) and the
	// addresses are installed anyway: CARP has already made this node MASTER
	// and an unowned VIP serves nobody. An embedder that prefers not to
	// serve should demote the group (carp.Group.SetDemotion) from here.
	BeforeInstall func(ctx context.Context, t carp.Transition) error

	// BeforeInstallTimeout bounds BeforeInstall. Zero means 1 s.
	BeforeInstallTimeout time.Duration

	// ReconcileInterval is the period of the safety pass that lists the
	// interface's addresses, re-adds missing VIPs while MASTER (and
	// announces them again) and removes present ones otherwise. Address
	// notifications (AddrManager.Changes) trigger the same pass at once.
	// Zero means 10 s; otherwise at least 100 ms.
	ReconcileInterval time.Duration

	// Logger receives transitions, repairs and background errors, with keys
	// vhid, vip and err. Nil discards.
	Logger *slog.Logger
}

// Stats counts what a Follower did.
type Stats struct {
	State         carp.State // the state last applied
	Installs      uint64     // addresses added on promotion
	Withdrawals   uint64     // addresses removed (demotion, start-up, close, reconciliation)
	Repairs       uint64     // addresses re-added by reconciliation while MASTER
	Announcements uint64     // announcement rounds
	Reconciles    uint64     // reconciliation passes
	Errors        uint64     // background errors (see Err)
}

// Follower makes the addresses of one CARP group follow its state: on
// MASTER it runs BeforeInstall, installs the addresses and announces them
// (the first round immediately, the rest on the Schedule); on BACKUP or INIT
// it withdraws them. While MASTER it keeps them installed against anything
// that removes them behind its back (a network restart, UCarp#26), and in
// every other state it keeps them off the interface, so a backup never
// answers for a VIP. At start it removes VIPs left over from a crashed
// run (docs/interop.md, "Stale addresses after a crash").
//
// Plug Handle into carp.Config.OnTransition and call Start before starting
// the group. Handle never blocks: the work runs on the Follower's own
// goroutine, and a newer transition supersedes one not yet applied.
type Follower struct {
	cfg  Config
	plan plan
	log  *slog.Logger

	wake   chan struct{}
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	pending      *carp.Transition
	pendingAddrs []VIP // from SetAddresses, not yet applied
	reannounce   bool
	cancelBefore context.CancelFunc // of a running BeforeInstall
	stats        Stats
	lastErr      error
	closeOnce    sync.Once
	closeErr     error
	started      bool
	closed       bool

	// Owned by the run goroutine.
	state     carp.State
	onIf      []netip.Prefix              // addresses seen on the latest pass
	installed map[netip.Addr]netip.Prefix // what we added while MASTER
	batches   []batch                     // announcement schedules running
	timer     *time.Timer                 // for the earliest round of batches
}

// NewFollower validates cfg and returns a Follower in INIT. It starts
// nothing: Start does. Close it when done.
func NewFollower(cfg Config) (*Follower, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.AdvertInterval == 0 {
		cfg.AdvertInterval = time.Second
	}
	if cfg.BeforeInstallTimeout == 0 {
		cfg.BeforeInstallTimeout = time.Second
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 10 * time.Second
	}
	cfg.Addrs = append([]VIP(nil), cfg.Addrs...)
	f := &Follower{
		cfg:       cfg,
		plan:      cfg.Schedule.plan(cfg.AdvertInterval),
		log:       orDiscard(cfg.Logger).With("vhid", int(cfg.VHID)),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		installed: make(map[netip.Addr]netip.Prefix),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

// Start starts the Follower's goroutine, which first removes any of the
// VIPs found on the interface (the Follower starts in INIT), then applies
// the latest transition handed to Handle, if any. It fails if the Follower
// was started or closed before.
func (f *Follower) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return errors.New("vip: Follower.Start: follower closed")
	case f.started:
		return errors.New("vip: Follower.Start: follower already started")
	}
	f.started = true
	go f.run()
	return nil
}

func (c *Config) validate() error {
	if err := validateAddrs(c.Addrs); err != nil {
		return err
	}
	switch {
	case c.Manager == nil:
		return errors.New("vip: Config.Manager is nil, want an AddrManager")
	case c.AdvertInterval < 0 || c.AdvertInterval > 255*time.Second:
		return fmt.Errorf("vip: Config.AdvertInterval %v out of range 0-255s", c.AdvertInterval)
	case c.BeforeInstallTimeout < 0:
		return fmt.Errorf("vip: Config.BeforeInstallTimeout %v out of range (0 or more)", c.BeforeInstallTimeout)
	case c.ReconcileInterval < 0 || (c.ReconcileInterval > 0 && c.ReconcileInterval < 100*time.Millisecond):
		return fmt.Errorf("vip: Config.ReconcileInterval %v out of range (0 or at least 100ms)", c.ReconcileInterval)
	}
	return c.Schedule.validate()
}

// validateAddrs checks Config.Addrs (also the argument of SetAddresses,
// which replaces it).
func validateAddrs(addrs []VIP) error {
	if len(addrs) == 0 {
		return errors.New("vip: Config.Addrs is empty, want at least one address")
	}
	seen := make(map[netip.Addr]bool, len(addrs))
	for i, v := range addrs {
		field := fmt.Sprintf("Config.Addrs[%d]", i)
		if err := v.validate(field); err != nil {
			return err
		}
		if seen[v.Addr] {
			return fmt.Errorf("vip: %s.Addr %v listed twice", field, v.Addr)
		}
		seen[v.Addr] = true
	}
	return nil
}

// SetAddresses replaces the addresses the Follower manages (Config.Addrs),
// validated as NewFollower validates them; it returns at once and the
// Follower's goroutine applies the change. While MASTER, added addresses
// are installed and announced (a round at once and the Schedule's repeats,
// for those addresses only), removed ones are withdrawn, and unchanged
// ones are left alone: not removed and re-added, and not announced again.
// An address whose Bits changed counts as removed and added. In any other
// state the new set is only recorded, for the next promotion (and for the
// reconciliation, which keeps the new set off the interface). A removal
// that fails is reported (Err) and retried when the addresses are next
// withdrawn. After Close it returns an error.
func (f *Follower) SetAddresses(addrs []VIP) error {
	if err := validateAddrs(addrs); err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errors.New("vip: Follower.SetAddresses: follower closed")
	}
	f.pendingAddrs = slices.Clone(addrs)
	f.mu.Unlock()
	f.poke()
	return nil
}

// Handle applies transition t (asynchronously; it returns at once). It has
// the signature of carp.Config.OnTransition. A transition that leaves
// MASTER cancels a BeforeInstall still running. Before Start the latest
// transition waits for Start; after Close it does nothing.
func (f *Follower) Handle(t carp.Transition) {
	if f.cfg.VHID != 0 && t.VHID != f.cfg.VHID {
		return
	}
	f.mu.Lock()
	f.pending = &t
	if t.To != carp.Master && f.cancelBefore != nil {
		f.cancelBefore()
	}
	f.mu.Unlock()
	f.poke()
}

// Reannounce sends a round of announcements now and restarts the Schedule,
// if MASTER; otherwise it does nothing. Use it when another node may have
// announced the addresses meanwhile, e.g. after a split brain healed
// (keepalived#166; HandleContest calls it on carp.Config.OnContested). It
// returns at once.
func (f *Follower) Reannounce() {
	f.mu.Lock()
	f.reannounce = true
	f.mu.Unlock()
	f.poke()
}

// HandleContest re-announces the addresses (Reannounce) when c is for the
// Follower's group (Config.VHID, if set). It has the signature of
// carp.Config.OnContested: a MASTER that out-ranked another node's claim
// of mastership (a split brain healing, a backup that missed an advert)
// announces the addresses again, because the other node announced them
// while it was MASTER and the neighbours may still send to its MAC. Wire
// it next to Handle:
//
//	groupConfig.OnTransition = f.Handle
//	groupConfig.OnContested = f.HandleContest
//
// It returns at once.
func (f *Follower) HandleContest(c carp.Contest) {
	if f.cfg.VHID != 0 && c.VHID != f.cfg.VHID {
		return
	}
	f.Reannounce()
}

func (f *Follower) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Err returns the latest background error (a failed install, removal,
// listing, announcement or BeforeInstall), or nil if there was none.
func (f *Follower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// Stats returns the counters.
func (f *Follower) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Close stops the Follower: it withdraws the addresses it installed, waits
// for its goroutine and returns the errors of that withdrawal. It does not
// close the Manager or the Announcer, which the caller created. It is
// idempotent, and a Follower never started has nothing to stop.
func (f *Follower) Close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		started := f.started
		f.mu.Unlock()
		f.cancel()
		if started {
			<-f.done
		}
	})
	return f.closeErr
}

func (f *Follower) run() {
	defer close(f.done)
	f.timer = time.NewTimer(time.Hour)
	f.timer.Stop()
	safety := time.NewTicker(f.cfg.ReconcileInterval)
	defer safety.Stop()
	changes := f.cfg.Manager.Changes()

	f.reconcile() // INIT: clear stale VIPs
	for {
		select {
		case <-f.ctx.Done():
			f.timer.Stop()
			f.closeErr = f.withdrawInstalled("close")
			return
		case <-f.wake:
			f.mu.Lock()
			t, again, addrs := f.pending, f.reannounce, f.pendingAddrs
			f.pending, f.reannounce, f.pendingAddrs = nil, false, nil
			f.mu.Unlock()
			// A promotion installs the new set at once; any other
			// transition first withdraws the old one, so nothing is
			// installed only to be removed.
			promote := t != nil && t.To == carp.Master
			if addrs != nil && promote {
				f.setAddrs(addrs)
			}
			announced := false
			if t != nil {
				announced = f.apply(*t)
			}
			if addrs != nil && !promote {
				f.setAddrs(addrs)
			}
			if again && f.state == carp.Master && !announced {
				f.startAnnouncing(f.installedAddrs())
			}
		case <-changes:
			f.reconcile()
		case <-safety.C:
			f.reconcile()
		case <-f.timer.C:
			f.announceDue()
		}
	}
}

// apply moves to t.To. It reports whether it started announcing.
func (f *Follower) apply(t carp.Transition) bool {
	if t.To != carp.Master {
		f.timer.Stop()
		if err := f.withdrawInstalled(t.To.String() + ": " + t.Reason.String()); err != nil {
			f.fail("vip: withdrawal failed", netip.Addr{}, err)
		}
		f.setState(t.To)
		return false
	}
	if f.state == carp.Master {
		return false
	}
	if f.cfg.BeforeInstall != nil && !f.beforeInstall(t) {
		return false
	}
	f.setState(carp.Master)
	var addrs []netip.Addr
	for _, v := range f.cfg.Addrs {
		p := v.resolve(f.onIf)
		if err := f.cfg.Manager.Add(p); err != nil {
			f.fail("vip: install failed", v.Addr, err)
			continue
		}
		f.installed[v.Addr] = p
		addrs = append(addrs, v.Addr)
		f.count(func(s *Stats) { s.Installs++ })
	}
	f.startAnnouncing(addrs)
	f.log.Info("vip: installed addresses", "reason", t.Reason, "count", len(addrs))
	return true
}

// beforeInstall runs the hook; it returns false when the promotion was
// superseded or the Follower is closing, so nothing must be installed.
func (f *Follower) beforeInstall(t carp.Transition) bool {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.BeforeInstallTimeout)
	f.mu.Lock()
	superseded := f.pending != nil && f.pending.To != carp.Master
	f.cancelBefore = cancel
	f.mu.Unlock()
	var err error
	if !superseded {
		err = f.cfg.BeforeInstall(ctx, t)
	}
	f.mu.Lock()
	f.cancelBefore = nil
	superseded = superseded || (f.pending != nil && f.pending.To != carp.Master)
	f.mu.Unlock()
	cancel()
	if superseded || f.ctx.Err() != nil {
		return false
	}
	if err != nil {
		f.fail("vip: BeforeInstall failed; installing anyway", netip.Addr{}, fmt.Errorf("vip: BeforeInstall: %w", err))
	}
	return true
}

// reconcile lists the interface and repairs it towards the current state.
func (f *Follower) reconcile() {
	onIf, err := f.cfg.Manager.List()
	f.count(func(s *Stats) { s.Reconciles++ })
	if err != nil {
		f.fail("vip: listing addresses failed", netip.Addr{}, err)
		return
	}
	f.onIf = onIf
	present := make(map[netip.Addr]netip.Prefix, len(onIf))
	for _, p := range onIf {
		present[p.Addr()] = p
	}
	if f.state != carp.Master {
		for _, v := range f.cfg.Addrs {
			if p, ok := present[v.Addr]; ok {
				f.log.Warn("vip: removing a VIP found while not MASTER", "vip", p.String(), "state", f.state.String())
				f.remove(p)
			}
		}
		return
	}
	var repaired []netip.Addr
	for _, v := range f.cfg.Addrs {
		if _, ok := present[v.Addr]; ok {
			continue
		}
		p, ok := f.installed[v.Addr]
		if !ok {
			p = v.resolve(onIf)
		}
		if err := f.cfg.Manager.Add(p); err != nil {
			f.fail("vip: re-adding a missing VIP failed", v.Addr, err)
			continue
		}
		f.installed[v.Addr] = p
		repaired = append(repaired, v.Addr)
		f.log.Warn("vip: re-added a VIP removed behind our back", "vip", p.String())
		f.count(func(s *Stats) { s.Repairs++ })
	}
	if len(repaired) > 0 {
		// Neighbours may have learnt another owner meanwhile.
		f.startAnnouncing(f.installedAddrs())
	}
}

// remove deletes p and counts it.
func (f *Follower) remove(p netip.Prefix) {
	if err := f.cfg.Manager.Remove(p); err != nil {
		f.fail("vip: withdrawal failed", p.Addr(), err)
		return
	}
	f.count(func(s *Stats) { s.Withdrawals++ })
}

// withdrawInstalled removes what we installed and returns the errors.
func (f *Follower) withdrawInstalled(why string) error {
	var errs []error
	for _, v := range f.cfg.Addrs {
		p, ok := f.installed[v.Addr]
		if !ok {
			continue
		}
		if err := f.cfg.Manager.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(f.installed, v.Addr)
		f.count(func(s *Stats) { s.Withdrawals++ })
	}
	// Addresses dropped by SetAddresses whose removal failed then.
	for _, a := range slices.SortedFunc(maps.Keys(f.installed), netip.Addr.Compare) {
		if err := f.cfg.Manager.Remove(f.installed[a]); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(f.installed, a)
		f.count(func(s *Stats) { s.Withdrawals++ })
	}
	if f.state == carp.Master {
		f.log.Info("vip: withdrew addresses", "reason", why, "errors", len(errs))
	}
	return errors.Join(errs...)
}

// installedAddrs returns the installed VIPs in configuration order.
func (f *Follower) installedAddrs() []netip.Addr {
	var addrs []netip.Addr
	for _, v := range f.cfg.Addrs {
		if _, ok := f.installed[v.Addr]; ok {
			addrs = append(addrs, v.Addr)
		}
	}
	return addrs
}

// batch is one announcement schedule: the promotion's, which covers every
// installed address and runs the whole Schedule (Refresh included), or
// that of addresses added while MASTER (SetAddresses), which covers only
// them and ends after the repeats, the promotion's Refresh covering them
// from then on.
type batch struct {
	addrs []netip.Addr // nil: every installed address
	start time.Time
	round int // next round, 0 being the immediate one
}

// offset returns when b's next round is due after b.start, and false when
// b has no more rounds.
func (f *Follower) offset(b batch) (time.Duration, bool) {
	if b.addrs != nil && b.round > f.plan.repeats {
		return 0, false
	}
	return f.plan.offset(b.round)
}

// startAnnouncing restarts the schedule for every installed address: it
// sends round 0 now and arms the timer for round 1.
func (f *Follower) startAnnouncing(addrs []netip.Addr) {
	if f.cfg.Announcer == nil || len(addrs) == 0 {
		return
	}
	f.batches = []batch{{start: time.Now()}}
	f.announceDue()
}

// announceAdded starts a schedule for addrs only, beside the running ones.
func (f *Follower) announceAdded(addrs []netip.Addr) {
	if f.cfg.Announcer == nil || len(addrs) == 0 {
		return
	}
	f.batches = append(f.batches, batch{addrs: addrs, start: time.Now()})
	f.announceDue()
}

// announceDue sends, in one round, the addresses of every batch whose round
// is due, and arms the timer for the earliest next one.
func (f *Follower) announceDue() {
	installed := f.installedAddrs()
	if f.state != carp.Master || len(installed) == 0 {
		f.batches = nil
		return
	}
	now := time.Now()
	due := make(map[netip.Addr]bool)
	var next time.Time
	keep := f.batches[:0]
	for _, b := range f.batches {
		off, ok := f.offset(b)
		if ok && !b.start.Add(off).After(now) {
			if b.addrs == nil {
				for _, a := range installed {
					due[a] = true
				}
			}
			for _, a := range b.addrs {
				due[a] = true
			}
			b.round++
			off, ok = f.offset(b)
		}
		if !ok {
			continue
		}
		keep = append(keep, b)
		if at := b.start.Add(off); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	f.batches = keep
	var addrs []netip.Addr
	for _, a := range installed {
		if due[a] {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) > 0 {
		if err := f.cfg.Announcer.Announce(addrs); err != nil {
			f.fail("vip: announcement failed", netip.Addr{}, err)
		}
		f.count(func(s *Stats) { s.Announcements++ })
	}
	if !next.IsZero() {
		f.timer.Reset(time.Until(next))
	}
}

// setAddrs applies SetAddresses on the run goroutine.
func (f *Follower) setAddrs(addrs []VIP) {
	old := f.cfg.Addrs
	f.cfg.Addrs = addrs
	if f.state != carp.Master {
		f.log.Info("vip: addresses changed", "count", len(addrs), "state", f.state.String())
		return
	}
	now := make(map[VIP]bool, len(addrs))
	for _, v := range addrs {
		now[v] = true
	}
	removed := 0
	for _, v := range old {
		p, ok := f.installed[v.Addr]
		if now[v] || !ok {
			continue
		}
		if err := f.cfg.Manager.Remove(p); err != nil {
			f.fail("vip: withdrawal failed", v.Addr, err)
			continue // still installed: withdrawInstalled retries it
		}
		delete(f.installed, v.Addr)
		removed++
		f.count(func(s *Stats) { s.Withdrawals++ })
	}
	var added []netip.Addr
	for _, v := range addrs {
		if _, ok := f.installed[v.Addr]; ok {
			continue // unchanged (or a changed one whose removal failed)
		}
		p := v.resolve(f.onIf)
		if err := f.cfg.Manager.Add(p); err != nil {
			f.fail("vip: install failed", v.Addr, err)
			continue
		}
		f.installed[v.Addr] = p
		added = append(added, v.Addr)
		f.count(func(s *Stats) { s.Installs++ })
	}
	f.announceAdded(added)
	f.log.Info("vip: addresses changed", "count", len(addrs), "state", f.state.String(), "added", len(added), "removed", removed)
}

func (f *Follower) setState(s carp.State) {
	f.state = s
	f.count(func(st *Stats) { st.State = s })
}

func (f *Follower) count(fn func(*Stats)) {
	f.mu.Lock()
	fn(&f.stats)
	f.mu.Unlock()
}

// fail records a background error.
func (f *Follower) fail(msg string, addr netip.Addr, err error) {
	f.mu.Lock()
	f.lastErr = err
	f.stats.Errors++
	f.mu.Unlock()
	if addr.IsValid() {
		f.log.Error(msg, "vip", addr.String(), "err", err)
	} else {
		f.log.Error(msg, "err", err)
	}
}

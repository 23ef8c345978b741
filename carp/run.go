package carp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// timer is a time.Timer that can be selected on only while armed.
type timer struct {
	t  *time.Timer
	on bool
	at time.Time // when it is due
}

func (t *timer) start(d time.Duration) {
	if t.t == nil {
		t.t = time.NewTimer(d)
	} else {
		t.t.Reset(d) // Go ≥ 1.23: no stale value after Reset or Stop
	}
	t.on = true
	t.at = time.Now().Add(d)
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.on = false
}

// c returns the timer's channel, or nil (never ready) when not armed.
func (t *timer) c() <-chan time.Time {
	if !t.on {
		return nil
	}
	return t.t.C
}

// fired must be called after receiving from c.
func (t *timer) fired() { t.on = false }

// run is the state of the protocol loop. Only the loop goroutine touches
// it, so it needs no locks.
type run struct {
	g *Group

	state  State
	demote int  // demotion sum last applied
	linkUp bool // link state last applied

	counter uint64                 // last counter sent, or the cookie
	sent    runs                   // counters sent in this life: loop and replay detection
	heard   runs                   // counters of incrementing masters followed in this life
	master  tracked                // the master a BACKUP follows
	buf     [AdvertisementLen]byte // encoding buffer
	adv     timer                  // advert timer (MASTER)
	down    [2]timer               // master-down timers (BACKUP), IPv4 and IPv6
	hold    timer                  // hold-down before the first election
	step    timer                  // StepDown suppression
	recover timer                  // senderr probation (BACKUP)

	holdPending bool    // hold-down not over yet
	begun       bool    // first election started
	startWait   bool    // StartAsMaster deferred by demotion: claim MASTER once it clears
	suppress    bool    // StepDown in force: no takeover
	downFired   bool    // a master-down timer fired while suppressed
	downLate    [2]bool // the master-down timer is armed again after being seen late

	senderr   bool // demotion source "senderr" raised by us
	sendFails int  // consecutive send failures
	sendOKs   int  // consecutive successes while senderr is raised

	advertNow  bool      // send an advert at the end of this loop iteration
	replied    time.Time // last immediate answer to a worse master
	jumped     time.Time // last leaveSequence
	loopLogged time.Time // last warning about our own adverts coming back
	vrrpLogged bool

	vrrp vrrpRun // VRRPv3 state; unused with CARP

	// prev is the election view of the last advert acted on as BACKUP,
	// per family: a master whose next advert is worse stepped down on
	// purpose (see process).
	prev [2]prevOffer

	old rollover // the key replaced by the last Reconfigure
}

// prevOffer is what a BACKUP last heard from the master of one family.
type prevOffer struct {
	set            bool
	src            netip.Addr
	timing, demote int
}

// A counterRun is the counters lo, lo+1, ..., lo+n (mod 2^64).
type counterRun struct{ lo, n uint64 }

func (c counterRun) has(v uint64) bool { return v-c.lo <= c.n }

// runs is a bounded list of counter runs, oldest first.
type runs []counterRun

const (
	// maxRuns bounds each list of runs. A new run starts only on a new
	// sequence (a new master, a jump, a streak of failed sends), a
	// handful per life; the oldest is forgotten.
	maxRuns = 16
	// seqSpan is how far behind the last counter of an incrementing
	// master a counter still counts as one it already used: far more
	// adverts than a group sends in its life, and a negligible part of the
	// random 64-bit space.
	seqSpan = 1 << 32
	// seqWindow is how far ahead of the last counter heard from the
	// master its next one may be (adverts lost on the way) and still be
	// taken as its next.
	seqWindow = 256
)

func (rs runs) has(v uint64) bool {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].has(v) {
			return true
		}
	}
	return false
}

// add records v. A counter at most gap past the end of the last run
// extends it over the gap; any other starts a new run.
func (rs *runs) add(v, gap uint64) {
	if rs.has(v) {
		return
	}
	if n := len(*rs); n > 0 {
		last := &(*rs)[n-1]
		if d := v - (last.lo + last.n); d <= gap {
			last.n += d
			return
		}
	}
	if len(*rs) == maxRuns {
		*rs = append((*rs)[:0], (*rs)[1:]...)
	}
	*rs = append(*rs, counterRun{lo: v})
}

// Counter kinds of a tracked master.
const (
	kindUnknown   = iota // one advert heard so far
	kindIncrement        // FreeBSD, ucarp, CounterIncrement
	kindConstant         // OpenBSD, CounterCookie
)

// tracked is the master a BACKUP follows: where its adverts come from,
// the highest counter it sent and whether that counter increments.
type tracked struct {
	set bool
	// src is the master's address per family (a dual-stack master sends
	// from two), zero until the family is heard.
	src  [2]netip.Addr
	last uint64 // highest counter heard (the cookie if constant)
	// seen has bit i set if counter last-i was heard (i < 64): a dual-stack
	// master's adverts of the two families may arrive out of order, and
	// each counter is still accepted once only (IPsec's replay window).
	seen uint64
	kind int
	at   time.Time // last advert proven fresh
}

// Verdicts of (*run).classify.
const (
	fresh = iota // the tracked master's next advert
	stale        // a counter the tracked master's sequence already used
	other        // unrelated: a new or restarted master, or an old capture
)

// classify tells a valid advert from src with counter c apart, relative to
// the tracked master. Only the counter is authenticated, so freshness is
// judged by it: an incrementing master's next advert is a little ahead of
// its last one, or one of the last 64 not heard yet (from any source: a
// FreeBSD or ucarp peer that takes over continues the sequence), anything
// else at or behind it is a replay; a constant-counter master's adverts
// repeat its cookie from its own source.
func (r *run) classify(f Family, src netip.Addr, c uint64) int {
	m := &r.master
	if !m.set {
		return other
	}
	d, back := c-m.last, m.last-c
	same := m.sameSrc(f, src)
	switch m.kind {
	case kindIncrement:
		switch {
		case d != 0 && d <= seqWindow:
			return fresh
		case back < 64 && m.seen&(1<<back) == 0:
			return fresh
		case back <= seqSpan:
			return stale
		}
	case kindConstant:
		switch {
		case d == 0 && same:
			return fresh
		case d == 0:
			return stale
		case same && d <= seqWindow:
			return fresh // it started to increment
		}
	default: // one advert heard: its next, or the other family's just before
		switch {
		case same && (d <= seqWindow || back < 64):
			return fresh
		case d == 0 || (same && back <= seqSpan):
			return stale
		}
	}
	return other
}

// follow records a fresh advert from the tracked master. Counters of an
// incrementing master are remembered (never a constant one: an OpenBSD
// master sends its cookie again when it returns).
func (r *run) follow(f Family, src netip.Addr, c uint64, now time.Time) {
	m := &r.master
	switch {
	case c == m.last:
		m.kind = kindConstant
	case m.kind == kindUnknown || m.kind == kindConstant:
		m.kind = kindIncrement
		r.heard.add(m.last, seqWindow)
	}
	if m.kind == kindIncrement {
		r.heard.add(c, seqWindow)
		switch d, back := c-m.last, m.last-c; {
		case d != 0 && d <= seqWindow:
			if d >= 64 {
				m.seen = 1
			} else {
				m.seen = m.seen<<d | 1
			}
			m.last = c
		case back < 64:
			m.seen |= 1 << back
		}
	}
	if i := familyIndex(f); m.src[i] != src {
		// Another address continues the sequence: a new master
		// (FreeBSD and ucarp continue the old master's counter).
		m.src = [2]netip.Addr{}
		m.src[i] = src
	}
	m.at = now
}

// sameSrc reports whether src is the master's address for family f, or
// the family has not been heard from it yet.
func (m *tracked) sameSrc(f Family, src netip.Addr) bool {
	have := m.src[familyIndex(f)]
	return !have.IsValid() || have == src
}

// newTracked starts following a sender of counter c from src on f.
func newTracked(f Family, src netip.Addr, c uint64, now time.Time) tracked {
	m := tracked{set: true, last: c, seen: 1, at: now}
	m.src[familyIndex(f)] = src
	return m
}

// masterAlive reports whether the tracked master proved itself fresh
// within the last master-down interval.
func (r *run) masterAlive(now time.Time) bool {
	m := &r.master
	return m.set && m.kind != kindUnknown && now.Sub(m.at) < r.g.mdInt
}

func familyIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

func (r *run) loop(pkts <-chan Packet) {
	g := r.g
	defer g.wg.Done()
	defer close(g.loopDone)
	defer r.stopTimers()

	r.linkUp = true
	r.control()
	if r.linkUp {
		r.enter()
	}
	for {
		select {
		case <-g.done:
			r.shutdown()
			return
		case p := <-pkts:
			g.held.Add(-1)
			r.receive(p)
		case <-r.adv.c():
			r.adv.fired()
			if r.state == Master {
				r.advertise(int(g.cfg.AdvBase), int(g.cfg.AdvSkew))
				r.adv.start(g.advInt)
			}
		case <-r.down[0].c():
			r.downExpired(0)
		case <-r.down[1].c():
			r.downExpired(1)
		case <-r.hold.c():
			r.hold.fired()
			r.holdPending = false
			r.enter()
		case <-r.step.c():
			r.step.fired()
			r.stepOver()
		case <-r.recover.c():
			r.recover.fired()
			if r.state == Backup && r.senderr {
				g.log.Info("carp: send-error demotion cleared after a master-down interval as backup", "state", r.state)
				r.setSendErr(false)
			}
		case <-g.kick:
			r.control()
		}
		if r.advertNow {
			r.advertNow = false
			if r.state == Master {
				r.advertise(int(g.cfg.AdvBase), int(g.cfg.AdvSkew))
			}
		}
	}
}

// enter leaves INIT once the link is up: after the hold-down, the first
// time as configured (BACKUP or MASTER), later always BACKUP.
func (r *run) enter() {
	switch {
	case r.holdPending:
		if !r.hold.on {
			r.hold.start(r.g.cfg.HoldDown)
		}
	case !r.begun:
		r.begun = true
		switch {
		case r.g.cfg.StartAsMaster && r.demote == 0:
			r.becomeMaster(ReasonStartAsMaster)
		case r.g.cfg.StartAsMaster:
			// A demoted node does not claim the addresses (OpenBSD
			// boots demoted until pfsync is in sync): it waits as
			// BACKUP and starts as master when the demotion clears,
			// unless it hears a master first.
			r.g.log.Info("carp: start as master deferred while demoted", "demotion", r.demote)
			r.startWait = true
			r.becomeBackup(ReasonInit)
		default:
			r.becomeBackup(ReasonInit)
		}
	default:
		r.becomeBackup(ReasonLinkUp)
	}
}

// control applies what the embedder changed through the Group's methods.
func (r *run) control() {
	g := r.g
	r.reconfigure()
	g.mu.Lock()
	up := g.linkUp
	_, senderr := g.demote[DemoteSendErr]
	sum := g.demoteSumLocked()
	stepReq, stepFor := g.stepReq, g.stepFor
	g.stepReq = false
	g.mu.Unlock()

	if senderr != r.senderr { // the embedder cleared or set our source
		r.senderr = senderr
		r.sendOKs = 0
		if !senderr {
			r.recover.stop()
		}
	}
	if up != r.linkUp {
		r.linkUp = up
		if up {
			if r.state == Init {
				r.enter()
			}
		} else {
			r.toInit(ReasonLinkDown)
		}
	}
	if sum != r.demote {
		g.log.Info("carp: demotion changed", "state", r.state, "from", r.demote, "to", sum)
		r.demote = sum
		if r.state == Master {
			r.advertNow = true
		}
		if r.startWait && sum == 0 && r.state == Backup && !r.suppress {
			r.becomeMaster(ReasonStartAsMaster)
		}
	}
	if stepReq && r.state != Init {
		r.suppress = stepFor > 0
		r.downFired = false
		if r.suppress {
			r.step.start(stepFor)
		} else {
			r.step.stop()
		}
		if r.state == Master {
			// Hand over before leaving: a bow-out (VRRP: priority 0)
			// makes every backup, whatever its Preempt, take over
			// now instead of after its master-down interval. Sent
			// first, so that no peer's advert finds this node still
			// MASTER and draws an answer that would take the
			// addresses back.
			r.advertise(255, 255)
			r.becomeBackup(ReasonUser)
		}
	}
}

// stepOver ends a StepDown: take over if the master-down interval passed
// meanwhile without an advert.
func (r *run) stepOver() {
	r.suppress = false
	if r.state == Backup && r.downFired {
		r.downFired = false
		r.becomeMaster(ReasonMasterTimedOut)
	}
}

// lateLimit is how late a master-down timer may be seen and still be
// trusted at once. Seen later, this loop was not running when it was due
// (the process was stopped, as by SIGSTOP or a paused virtual machine, or
// starved of CPU), and the master's adverts sent meanwhile may still wait
// in the socket or with the reader goroutine: a select that sees the timer
// and a queued advert at once picks either. It is also how long a timer is
// given when it expires on time while received packets wait unread.
const lateLimit = 50 * time.Millisecond

// downExpired handles the expiry of master-down timer i. Before a backup
// takes over it gives the timer a second look, once, when the timer is
// seen more than lateLimit late or when received packets wait unread
// (Group.pending): the timer is armed again for as long as it was late
// (at least lateLimit, at most one advert interval), so the adverts that
// arrived while this loop was not running are read first and, if the
// master is alive, restart it. Lateness alone misses a stop that ends just
// before or just after the timer falls due; the unread packets do not.
// The takeover of a node that was stopped, or that hears other traffic at
// the instant its timer expires, is delayed by at most an advert interval;
// a loop that runs on time with nothing unread sees no difference.
func (r *run) downExpired(i int) {
	t := &r.down[i]
	t.fired()
	if r.state == Backup && !r.downLate[i] {
		late := time.Since(t.at)
		switch {
		case late > lateLimit:
			r.g.st.lateTimers.Add(1)
			r.g.log.Debug("carp: master-down timer seen late, reading what arrived meanwhile first", "late", late)
		case r.g.pending():
			r.g.st.unread.Add(1)
			r.g.log.Debug("carp: master-down timer expired with packets unread, reading them first")
		default:
			r.masterDown()
			return
		}
		r.downLate[i] = true
		t.start(min(max(late, lateLimit), r.g.advInt))
		return
	}
	r.masterDown()
}

func (r *run) masterDown() {
	if r.state != Backup {
		return
	}
	if r.suppress {
		r.downFired = true
		return
	}
	if r.vrrp.leaving {
		r.becomeMaster(ReasonBowOut) // VRRP: the master left with priority 0
		return
	}
	r.becomeMaster(ReasonMasterTimedOut)
}

// becomeMaster sends an advert at once and only then notifies the embedder,
// so peers learn of the new master before any hook runs (carp(4)).
func (r *run) becomeMaster(reason Reason) {
	g := r.g
	from := r.state
	r.startWait = false
	r.stopDown()
	r.recover.stop()
	r.sendOKs = 0
	r.state = Master
	r.master = tracked{} // whoever we followed is master no more
	r.prev = [2]prevOffer{}
	r.vrrp.leaving = false
	g.state.Store(uint32(Master))
	g.st.preempt.Add(1)

	r.advertise(int(g.cfg.AdvBase), int(g.cfg.AdvSkew))
	r.adv.start(g.advInt)
	r.transition(from, reason)
}

func (r *run) becomeBackup(reason Reason) {
	g := r.g
	from := r.state
	r.adv.stop()
	r.state = Backup
	g.state.Store(uint32(Backup))
	r.startDown()
	if r.senderr {
		r.recover.start(g.mdInt)
	}
	r.transition(from, reason)
}

func (r *run) toInit(reason Reason) {
	from := r.state
	r.adv.stop()
	r.stopDown()
	r.step.stop()
	r.recover.stop()
	r.hold.stop()
	r.suppress, r.downFired, r.startWait = false, false, false
	r.master = tracked{}
	r.prev = [2]prevOffer{}
	r.state = Init
	r.g.state.Store(uint32(Init))
	r.transition(from, reason)
}

func (r *run) startDown() {
	for _, f := range r.g.families {
		i := familyIndex(f)
		r.down[i].start(r.masterDownInt())
		r.downLate[i] = false
	}
}

func (r *run) stopDown() {
	r.down[0].stop()
	r.down[1].stop()
}

func (r *run) stopTimers() {
	r.adv.stop()
	r.stopDown()
	r.hold.stop()
	r.step.stop()
	r.recover.stop()
}

func (r *run) transition(from State, reason Reason) {
	if from == r.state {
		return
	}
	g := r.g
	g.trans.add(r.state, string(reason))
	level := slog.LevelInfo
	if reason == ReasonLinkDown || r.state == Init {
		level = slog.LevelWarn
	}
	g.log.Log(context.Background(), level, "carp: state changed", "from", from, "state", r.state, "reason", reason)
	if g.follow != nil {
		// Before the embedder hears of it: the rule's demotion is then
		// in the next advert of every member.
		g.follow.transition(g, from, r.state)
	}
	if g.ntf != nil {
		g.ntf.push(Transition{VHID: g.cfg.VHID, From: from, To: r.state, Reason: reason, At: time.Now()})
	}
}

func (r *run) shutdown() {
	if r.state == Master {
		r.advertise(255, 255) // bow-out
	}
	r.stopTimers()
	if r.state != Init {
		from := r.state
		r.state = Init
		r.g.state.Store(uint32(Init))
		r.transition(from, ReasonClosed)
	}
}

// skew returns the advskew to advertise and elect with instead of the
// configured advskew: at least DemotedSkew while demoted with
// Config.DemoteInSkew.
func (r *run) skew(advskew int) int {
	if r.g.cfg.DemoteInSkew && r.demote > 0 && advskew < 255 {
		return max(advskew, DemotedSkew)
	}
	return advskew
}

// timing returns this node's advbase·256 + advskew as it advertises it
// now (Group.tme, with DemoteInSkew's skew while demoted).
func (r *run) timing() int {
	if r.g.vrrp != nil {
		return vrrpTiming(r.priority())
	}
	return int(r.g.cfg.AdvBase)<<8 | r.skew(int(r.g.cfg.AdvSkew))
}

// advertise sends one advert per family with the given timing (the
// advskew before DemoteInSkew applies).
func (r *run) advertise(advbase, advskew int) {
	g := r.g
	leaving := advbase == 255 && advskew == 255 // a bow-out: VRRP priority 0
	advskew = r.skew(advskew)
	auth, vg := r.signing(time.Now())
	for _, f := range g.families {
		if g.cfg.CounterMode == CounterIncrement {
			r.counter++
		}
		a := Advertisement{
			VHID:    g.cfg.VHID,
			AdvBase: uint8(advbase),
			AdvSkew: uint8(advskew),
			Demote:  uint8(min(r.demote, 255)),
			Counter: r.counter,
		}
		var b []byte
		if g.vrrp != nil {
			b = r.encodeVRRP(vg, f, leaving)
		} else {
			auth.Sign(&a)
			b, _ = a.AppendBinary(r.buf[:0]) // never fails
		}
		if err := g.cfg.Transport.Send(f, b); err != nil {
			g.st.oerrors.Add(1)
			r.sendOKs = 0
			r.sendFails++
			g.log.Debug("carp: sending advert failed", "family", f, "err", err)
			if r.sendFails >= sendErrThreshold && !r.senderr {
				g.log.Warn("carp: demoting after consecutive send errors", "state", r.state, "errors", r.sendFails, "err", err)
				r.setSendErr(true)
			}
			continue
		}
		// Only what reached the wire can come back or be replayed.
		if g.vrrp == nil {
			r.sent.add(a.Counter, 1)
		}
		if f == IPv6 {
			g.st.opackets6.Add(1)
		} else {
			g.st.opackets.Add(1)
		}
		r.sendFails = 0
		if r.senderr {
			r.sendOKs++
			if r.sendOKs >= sendErrThreshold {
				g.log.Info("carp: send-error demotion cleared after successful sends", "state", r.state)
				r.setSendErr(false)
			}
		}
	}
}

// setSendErr raises or clears the demotion source "senderr".
func (r *run) setSendErr(on bool) {
	g := r.g
	r.senderr = on
	r.sendOKs = 0
	g.mu.Lock()
	if on {
		g.demote[DemoteSendErr] = 1
	} else {
		delete(g.demote, DemoteSendErr)
	}
	sum := g.demoteSumLocked()
	g.mu.Unlock()
	if !on {
		r.recover.stop()
	} else if r.state == Backup {
		r.recover.start(g.mdInt)
	}
	if sum != r.demote {
		g.log.Info("carp: demotion changed", "state", r.state, "from", r.demote, "to", sum)
		r.demote = sum
		if r.state == Master {
			r.advertNow = true
		}
	}
}

// receive runs the checks of carp(4) in its order, counting each drop, and
// then the state machine.
func (r *run) receive(p Packet) {
	g := r.g
	if p.Family == IPv6 {
		g.st.ipackets6.Add(1)
	} else {
		g.st.ipackets.Add(1)
	}
	if g.cfg.IfIndex != 0 && p.IfIndex != 0 && p.IfIndex != g.cfg.IfIndex {
		g.st.badif.Add(1)
		g.log.Debug("carp: advert on another interface", "peer", p.Src, "ifindex", p.IfIndex)
		return
	}
	if !g.cfg.SkipTTLCheck && p.TTL != -1 && p.TTL != 255 {
		g.st.badttl.Add(1)
		g.log.Debug("carp: bad TTL", "peer", p.Src, "ttl", p.TTL)
		return
	}
	if g.vrrp != nil {
		r.receiveVRRP(p)
		return
	}
	var a Advertisement
	if err := a.UnmarshalBinary(p.Payload); err != nil {
		switch {
		case errors.Is(err, ErrVRRP):
			g.st.vrrp.Add(1)
			if !r.vrrpLogged {
				r.vrrpLogged = true
				g.log.Info("carp: VRRP seen on IP protocol 112; ignoring it (never use a VRRP VRID equal to this vhid)", "peer", p.Src)
			}
			return
		case errors.Is(err, ErrShort):
			g.st.hdrops.Add(1)
		case errors.Is(err, ErrLength):
			g.st.badlen.Add(1)
		case errors.Is(err, ErrChecksum):
			g.st.badsum.Add(1)
		default: // ErrVersion, ErrType
			g.st.badver.Add(1)
		}
		g.log.Debug("carp: malformed advert", "peer", p.Src, "err", err)
		return
	}
	if a.VHID != g.cfg.VHID {
		g.st.badvhid.Add(1)
		g.log.Debug("carp: advert for another vhid", "peer", p.Src, "peer_vhid", a.VHID)
		return
	}
	if err := g.auth.Verify(a); err != nil && (!r.oldValid(time.Now()) || r.old.auth.Verify(a) != nil) {
		g.st.badauth.Add(1)
		g.log.Debug("carp: incorrect hash; check vhid, password and virtual addresses", "peer", p.Src)
		return
	}
	// A backup's own old counters can be its master's next ones when that
	// master adopted our sequence (FreeBSD, ucarp). Its fresh advert wins.
	if r.isOwn(a.Counter) && (r.state != Backup || r.classify(p.Family, p.Src, a.Counter) != fresh) {
		g.st.badloop.Add(1)
		if r.state == Master {
			r.leaveSequence(a)
		}
		// One warning a minute: a replay flood must not flood the log.
		if now := time.Now(); now.Sub(r.loopLogged) >= time.Minute || r.loopLogged.IsZero() {
			r.loopLogged = now
			g.log.Warn("carp: own advert received back: network loop or replay", "peer", p.Src)
		} else if g.log.Enabled(context.Background(), slog.LevelDebug) {
			// Guarded: boxing the address allocates, per replayed packet.
			g.log.Debug("carp: own advert received back", "peer", p.Src)
		}
		return
	}
	if r.state == Init {
		return
	}
	r.process(p.Family, p.Src, carpOffer(a))
}

// isOwn reports whether counter c is one this node sent in this life: our
// own adverts coming back (a network loop, OpenBSD's check) or replayed,
// however old, from any source. The timing fields are not authenticated,
// so only the counter counts. In cookie mode that is the cookie. A peer
// that adopted our counter (FreeBSD, ucarp) and then became master sends
// counters past ours, which stay accepted; only while both are master at
// once (a partition) can its counters trail ours (see leaveSequence).
func (r *run) isOwn(c uint64) bool { return r.sent.has(c) }

// leaveSequence moves a master's counter to a fresh random start when it
// hears a counter it sent a moment ago with another timing than its own:
// not its advert looping back but another master that continued the same
// sequence (it adopted our counter, then a partition or a preemption race
// left both master). Its counters trail ours and we drop them as our own;
// once our counter is elsewhere, its next adverts pass ours in at most as
// many adverts as it trails, and our adverts reach it as a stranger's at
// once. Old counters (a replay) and our own timing (a loop) do not move it;
// it moves at most once per master-down interval and only while few runs
// are remembered, so replays cannot push old runs out of memory.
func (r *run) leaveSequence(a Advertisement) {
	g := r.g
	if g.cfg.CounterMode != CounterIncrement || len(r.sent) >= maxRuns/2 {
		return
	}
	if r.counter-a.Counter >= seqWindow {
		return
	}
	if a.Timing() == r.timing() && int(a.Demote) == min(r.demote, 255) {
		return
	}
	now := time.Now()
	if !r.jumped.IsZero() && now.Sub(r.jumped) < g.mdInt {
		return
	}
	r.jumped = now
	r.counter = randomCounter()
	g.log.Info("carp: another master continues our counter sequence; moving to a new one")
}

// process applies a valid advert of either protocol (OpenBSD rules with
// the demote byte; docs/interop.md, "Receive rules"). VRRP adverts carry no
// counter, so the replay and freshness checks are CARP's only; everything
// else is one election (see offer).
func (r *run) process(f Family, src netip.Addr, a offer) {
	g := r.g
	tme, tpeer := r.timing(), a.timing
	dme, dpeer := r.demote, a.demote
	if g.vrrp != nil {
		dme = 0 // folded into the priority, as the peer's is
	}
	switch r.state {
	case Master:
		if g.vrrp == nil && r.heard.has(a.counter) {
			// An old advert of a master we followed: a replay.
			g.st.replay.Add(1)
			r.debug("carp: stale advert (counter already used); ignored", src)
			return
		}
		// Yield to a faster or equally fast master (no tie-break on the
		// BSDs; VRRP: the higher primary address wins a tie) unless we
		// are less demoted; always yield to a less demoted one.
		if ((tme > tpeer || (tme == tpeer && r.tieLost(f, src))) && dpeer <= dme) || dpeer < dme {
			if g.vrrp != nil {
				r.vrrp.mai = a.interval // learn the new master's interval
			} else {
				// Follow the new master from this advert on
				// (unproven until its next one).
				r.master = newTracked(f, src, a.counter, time.Now())
			}
			r.becomeBackup(ReasonMoreFrequent)
			return
		}
		// Another, worse master: a backup that missed our adverts. Answer
		// at once so it yields now rather than at our next interval (the
		// rule above makes it yield to us; ucarp reasserts similarly). At
		// most one answer per quarter interval: a flood of worse adverts
		// must not draw one advert each.
		now := time.Now()
		if !r.replied.IsZero() && now.Sub(r.replied) < g.advInt/4 {
			g.st.suppressed.Add(1)
			return
		}
		r.replied = now
		r.advertNow = true
		r.contested(f, src, now)
	case Backup:
		if g.vrrp == nil && !r.fresh(f, src, a) {
			return
		}
		r.startWait = false // a master is there: the election decides
		stepped := r.steppedDown(f, src, a)
		if r.suppress {
			if a.leaving {
				r.downFired = true // the master left: take over when StepDown ends
				r.stopDown()
				return
			}
			r.restartDown(f)
			return
		}
		switch {
		case a.leaving && g.vrrp != nil:
			// The master stops: take over after the skew time, so
			// the backup of highest priority goes first.
			r.vrrp.leaving = true
			r.startDownFor(f, vrrpSkew(r.vrrp.interval(g), r.priority()))
		case a.leaving:
			r.becomeMaster(ReasonBowOut)
		case g.cfg.Preempt && tme < tpeer && dpeer >= dme:
			r.becomeMaster(ReasonPreempt)
		case dpeer > dme:
			r.becomeMaster(ReasonDemotedMaster)
		case stepped && tme < tpeer && dpeer >= dme:
			// The master made itself worse than this node (a higher
			// advskew or demotion in skew, a lower priority): a
			// planned handover, taken at once even without Preempt.
			r.becomeMaster(ReasonSteppedDown)
		case g.vrrp == nil && g.cfg.AdvBase != 0 && g.cfg.DeadRatio*int(g.cfg.AdvBase)<<8 < tpeer:
			r.becomeMaster(ReasonWillTimeOut)
		default:
			if g.vrrp != nil {
				r.vrrp.mai = a.interval
				r.vrrp.leaving = false
			}
			r.restartDown(f)
		}
	}
}

// steppedDown records the election view of a, the master's advert from
// src a BACKUP acts on, and reports whether it is worse than the master's
// previous one from the same address: a higher advskew (VRRP: a lower
// priority) or demotion. A master changes neither unless its embedder did
// (Reconfigure, SetDemotion): it means to step down, and a backup that now
// wins the election takes over whatever its Preempt says. A new advbase is
// not such a sign: it is the interval, which a cluster changes on every
// node, and a master that changed first must not lose the group for that.
func (r *run) steppedDown(f Family, src netip.Addr, a offer) bool {
	p := &r.prev[familyIndex(f)]
	worse := p.set && p.src == src && !a.leaving && a.timing>>8 == p.timing>>8 &&
		(a.timing > p.timing || a.demote > p.demote)
	*p = prevOffer{set: !a.leaving, src: src, timing: a.timing, demote: a.demote}
	return worse
}

// fresh applies CARP's freshness rules to a valid advert a BACKUP
// received and reports whether the election may act on it. Only the
// counter is authenticated: act on the tracked master's fresh adverts only
// (see classify).
func (r *run) fresh(f Family, src netip.Addr, a offer) bool {
	g := r.g
	now := time.Now()
	v := r.classify(f, src, a.counter)
	if v != fresh && r.heard.has(a.counter) {
		v = stale // an old advert of an earlier master
	}
	if a.leaving && (v != fresh || !r.master.sameSrc(f, src)) {
		// A bow-out hands mastership over at once, so it must be
		// the current master's very next advert.
		g.st.replay.Add(1)
		r.debug("carp: bow-out not from the current master's sequence; ignored", src)
		return false
	}
	switch v {
	case stale:
		g.st.replay.Add(1)
		r.debug("carp: stale advert (counter already used); ignored", src)
		return false
	case other:
		if r.masterAlive(now) {
			// Another master (one taking over with a sequence of
			// its own, or a split healing) or a capture from
			// another life: it cannot take the current master's
			// place or trigger a takeover, but a master is there.
			r.debug("carp: advert from another sender while the master is heard", src)
			r.restartDown(f)
			return false
		}
		// A new master (or one restarted): follow it, but act on
		// its timing only once its next advert proves it live.
		r.master = newTracked(f, src, a.counter, now)
		r.startWait = false
		r.restartDown(f)
		return false
	}
	r.follow(f, src, a.counter, now)
	return true
}

func (r *run) restartDown(f Family) {
	i := familyIndex(f)
	for _, have := range r.g.families {
		if have == f {
			r.down[i].start(r.masterDownInt())
			r.downLate[i] = false
			r.downFired = false
			return
		}
	}
}

// randomCounter returns a random counter start (FreeBSD, ucarp) or cookie
// (OpenBSD). crypto/rand.Read never returns an error (it aborts the program
// if the OS source fails), so there is no error to handle.
func randomCounter() uint64 {
	var c [8]byte
	rand.Read(c[:])
	return binary.BigEndian.Uint64(c[:])
}

// debug logs a dropped advert at Debug level, without allocating when
// Debug is off (a replay flood goes through here).
func (r *run) debug(msg string, peer netip.Addr) {
	if r.g.log.Enabled(context.Background(), slog.LevelDebug) {
		r.g.log.Debug(msg, "peer", peer)
	}
}

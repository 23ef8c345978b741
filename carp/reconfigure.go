package carp

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"time"
)

// KeyRollover is the shortest window of a change of the key of a CARP
// group's adverts (Config.Password or Config.Addrs, which both go into
// the HMAC) or of a VRRPv3 group's address list. See Group.Reconfigure.
// The window is the longer of KeyRollover and the group's master-down
// interval.
const KeyRollover = 10 * time.Second

// settings is what a Group derives from a validated Config: the
// authenticator, the families in use and the intervals.
type settings struct {
	auth     *Authenticator
	families []Family
	tme      int
	advInt   time.Duration
	mdInt    time.Duration
	vrrp     *vrrpGroup
}

// deriveSettings computes the settings of a validated cfg. It fails if
// the transport cannot carry a family of the addresses.
func deriveSettings(cfg Config) (settings, error) {
	var d settings
	auth, err := NewAuthenticator(cfg.Password, cfg.VHID, cfg.Addrs)
	if err != nil {
		return d, err
	}
	d.auth = auth
	have := map[Family]bool{}
	for _, f := range cfg.Transport.Families() {
		have[f] = true
	}
	for _, f := range []Family{IPv4, IPv6} {
		for _, a := range cfg.Addrs {
			if (f == IPv4) != a.Is4() {
				continue
			}
			if !have[f] {
				return d, fmt.Errorf("carp: Config.Addrs: %v needs %v, which Config.Transport does not carry", a, f)
			}
			d.families = append(d.families, f)
			break
		}
	}
	d.tme = int(cfg.AdvBase)<<8 | int(cfg.AdvSkew)
	d.advInt = ticks(d.tme)
	if d.advInt == 0 {
		d.advInt = ticks(1) // OpenBSD: advbase 0, advskew 0 is 1/256 s
	}
	dead := cfg.DeadRatio
	switch {
	case cfg.Profile == ProfileOpenBSD, cfg.AdvBase == 0:
		// With advbase 0 the FreeBSD formula (which FreeBSD never
		// applies to it: it refuses advbase 0) would wait a single
		// advert interval, so any late advert would start a takeover
		// (ucarp does exactly that). Sub-second timing is OpenBSD's,
		// and so is its master-down interval (docs/sub-second.md).
		d.mdInt = time.Duration(dead) * d.advInt
	default:
		d.mdInt = ticks(dead*int(cfg.AdvBase)<<8 + int(cfg.AdvSkew))
	}
	if cfg.Protocol == ProtocolVRRPv3 {
		if d.vrrp, err = newVRRPGroup(cfg, d.families); err != nil {
			return d, err
		}
		d.advInt = cfg.AdvertInterval
		d.mdInt = vrrpMasterDown(d.advInt, int(cfg.Priority))
	}
	return d, nil
}

// reconfig is a Reconfigure waiting for the protocol loop.
type reconfig struct {
	cfg  Config
	d    settings
	done chan struct{} // closed by the loop once applied
}

// Reconfigure replaces the group's configuration while it runs, without a
// state change unless the election outcome changes. cfg is validated like
// NewGroup's; on an error nothing changes.
//
// What may change: Addrs (within the address families the group already
// uses), AdvBase, ZeroAdvBase, AdvSkew, Password, Preempt, DemoteInSkew,
// Profile, DeadRatio, SkipTTLCheck and, with VRRPv3, Priority,
// AdvertInterval and DemotionWeight. Every other field is fixed at
// NewGroup and must be equal (VHID, Protocol, CounterMode, StartAsMaster,
// HoldDown, IfIndex, CloseTimeout); a nil Transport, Logger,
// OnTransition or OnContested means "unchanged", any other must be the one
// the group has. A refused field is named in the error.
//
// A MASTER advertises its new settings at once and goes on advertising
// every new interval, so a backup hears no gap; a BACKUP restarts its
// master-down timer with the new interval. If the change makes a peer win
// the election (a higher advskew or lower priority than a backup's), the
// peer takes over on that first advert, whether or not it preempts: a
// planned handover (see the package documentation). A new AdvBase alone
// never hands over to a backup that does not preempt.
//
// A new Password or a new set of Addrs changes the HMAC of every CARP
// advert (and a VRRPv3 advert lists the addresses), so a node that
// switched at once would be unheard by peers not yet reconfigured, which
// would take over. Instead, for a window of KeyRollover or the
// master-down interval, whichever is longer, the group goes on sending
// with the old key (or address list) while accepting both, and it keeps
// accepting the old one for a second window after it switches. Nodes
// reconfigured less than one window apart therefore always hear each
// other. A change made while a previous window is open starts a new one
// from the key configured last.
//
// Reconfigure applies the change on the protocol loop and returns once it
// is applied (or the group is closed): at most one loop iteration. Before
// Start it changes the configuration Start will use; on a closed group it
// returns ErrClosed. Unicast peers belong to the transport
// (RawConfig.Peers4 / Peers6).
func (g *Group) Reconfigure(cfg Config) error {
	g.reconfMu.Lock()
	defer g.reconfMu.Unlock()
	if cfg.Transport == nil {
		cfg.Transport = g.cfg.Transport
	}
	if cfg.Logger == nil {
		cfg.Logger = g.cfg.Logger
	}
	if cfg.OnTransition == nil {
		cfg.OnTransition = g.cfg.OnTransition
	}
	if cfg.OnContested == nil {
		cfg.OnContested = g.cfg.OnContested
	}
	cfg, err := cfg.validate()
	if err != nil {
		return err
	}
	if err := g.checkFixed(cfg); err != nil {
		return err
	}
	d, err := deriveSettings(cfg)
	if err != nil {
		return err
	}
	if !slices.Equal(d.families, g.families) {
		return fmt.Errorf("carp: Config.Addrs families %v differ from %v, fixed at NewGroup", d.families, g.families)
	}
	rc := &reconfig{cfg: cfg, d: d, done: make(chan struct{})}
	g.mu.Lock()
	switch {
	case g.closed:
		g.mu.Unlock()
		return ErrClosed
	case !g.started:
		// No loop yet: apply it now, under g.mu so Start waits.
		g.applySettings(rc)
		g.mu.Unlock()
		return nil
	}
	g.reconf = rc
	g.mu.Unlock()
	g.poke()
	select {
	case <-rc.done:
	case <-g.loopDone:
	}
	return nil
}

// checkFixed refuses a change of a field fixed at NewGroup. Only fields
// no goroutine but the caller's writes are read here.
func (g *Group) checkFixed(c Config) error {
	old := g.cfg
	fixed := []struct {
		name     string
		old, new any
	}{
		{"VHID", old.VHID, c.VHID},
		{"Protocol", old.Protocol, c.Protocol},
		{"CounterMode", old.CounterMode, c.CounterMode},
		{"StartAsMaster", old.StartAsMaster, c.StartAsMaster},
		{"HoldDown", old.HoldDown, c.HoldDown},
		{"IfIndex", old.IfIndex, c.IfIndex},
		{"CloseTimeout", old.CloseTimeout, c.CloseTimeout},
	}
	for _, f := range fixed {
		if f.old != f.new {
			return fmt.Errorf("carp: Config.%s %v differs from %v, fixed at NewGroup", f.name, f.new, f.old)
		}
	}
	if !sameTransport(old.Transport, c.Transport) {
		return fmt.Errorf("carp: Config.Transport %T differs from the group's, fixed at NewGroup", c.Transport)
	}
	if old.Logger != c.Logger {
		return fmt.Errorf("carp: Config.Logger differs from the group's, fixed at NewGroup (nil keeps it)")
	}
	if (old.OnTransition == nil) != (c.OnTransition == nil) ||
		(old.OnTransition != nil && reflect.ValueOf(old.OnTransition).Pointer() != reflect.ValueOf(c.OnTransition).Pointer()) {
		return fmt.Errorf("carp: Config.OnTransition differs from the group's, fixed at NewGroup (nil keeps it)")
	}
	if (old.OnContested == nil) != (c.OnContested == nil) ||
		(old.OnContested != nil && reflect.ValueOf(old.OnContested).Pointer() != reflect.ValueOf(c.OnContested).Pointer()) {
		return fmt.Errorf("carp: Config.OnContested differs from the group's, fixed at NewGroup (nil keeps it)")
	}
	return nil
}

// sameTransport compares two transports without panicking on a dynamic
// type that is not comparable.
func sameTransport(a, b Transport) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb {
		return false
	}
	if !ta.Comparable() {
		return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
	}
	return a == b
}

// applySettings writes the changeable fields of rc into the group. It runs
// on the protocol loop (or before Start under g.mu): only the loop reads
// these fields while the group runs.
func (g *Group) applySettings(rc *reconfig) {
	c := rc.cfg
	g.cfg.Addrs = c.Addrs
	g.cfg.AdvBase, g.cfg.ZeroAdvBase, g.cfg.AdvSkew = c.AdvBase, c.ZeroAdvBase, c.AdvSkew
	g.cfg.Password = c.Password
	g.cfg.Preempt, g.cfg.DemoteInSkew = c.Preempt, c.DemoteInSkew
	g.cfg.Profile, g.cfg.DeadRatio = c.Profile, c.DeadRatio
	g.cfg.SkipTTLCheck = c.SkipTTLCheck
	g.cfg.Priority, g.cfg.AdvertInterval, g.cfg.DemotionWeight = c.Priority, c.AdvertInterval, c.DemotionWeight
	g.auth, g.vrrp = rc.d.auth, rc.d.vrrp
	g.tme, g.advInt, g.mdInt = rc.d.tme, rc.d.advInt, rc.d.mdInt
	g.pubInt.Store(int64(rc.d.advInt))
	g.pubDown.Store(int64(rc.d.mdInt))
}

// rollover is the key a group replaced, kept for a while (see
// Group.Reconfigure).
type rollover struct {
	auth       *Authenticator // CARP: the old password and addresses
	vrrp       *vrrpGroup     // VRRPv3: the old address lists
	signUntil  time.Time      // adverts are sent with the old key until then
	validUntil time.Time      // the old key is accepted until then
}

// signing returns the authenticator and VRRP addresses adverts are sent
// with now.
func (r *run) signing(now time.Time) (*Authenticator, *vrrpGroup) {
	if o := &r.old; o.auth != nil && now.Before(o.signUntil) {
		return o.auth, o.vrrp
	}
	return r.g.auth, r.g.vrrp
}

// oldValid reports whether the replaced key is still accepted.
func (r *run) oldValid(now time.Time) bool {
	return r.old.auth != nil && now.Before(r.old.validUntil)
}

// reconfigure applies a pending Reconfigure on the protocol loop.
func (r *run) reconfigure() {
	g := r.g
	g.mu.Lock()
	rc := g.reconf
	g.reconf = nil
	g.mu.Unlock()
	if rc == nil {
		return
	}
	defer close(rc.done)
	now := time.Now()
	keyChanged := !bytes.Equal(g.cfg.Password, rc.cfg.Password) || !slices.Equal(g.cfg.Addrs, rc.cfg.Addrs)
	if keyChanged {
		auth, vg := r.signing(now)
		w := max(KeyRollover, g.mdInt, rc.d.mdInt)
		r.old = rollover{auth: auth, vrrp: vg, signUntil: now.Add(w), validUntil: now.Add(2 * w)}
	}
	oldTiming, oldInt := r.timing(), g.advInt
	g.applySettings(rc)
	g.log.Info("carp: reconfigured", "state", r.state, "key_changed", keyChanged,
		"advert_interval", g.advInt, "master_down", g.mdInt)
	switch r.state {
	case Master:
		if keyChanged || r.timing() != oldTiming || g.advInt != oldInt {
			r.advertNow = true
			r.adv.start(g.advInt)
		}
	case Backup:
		for i := range r.down {
			if r.down[i].on && !r.vrrp.leaving {
				r.down[i].start(r.masterDownInt())
				r.downLate[i] = false
			}
		}
	}
}

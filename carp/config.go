package carp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Profile selects the master-down interval formula of a peer
// implementation. It matters only for which backup fires first and how fast
// a failover is; the election rules are the same.
type Profile uint8

const (
	// ProfileFreeBSD, the default: master-down = DeadRatio·advbase +
	// advskew/256 seconds (FreeBSD carp(4), ucarp with --deadratio). The skew
	// is not multiplied, so failover is faster than OpenBSD's, and it is what
	// ucarp peers, the most common non-BSD peers, use.
	ProfileFreeBSD Profile = iota
	// ProfileOpenBSD: master-down = DeadRatio·(advbase + advskew/256)
	// seconds (OpenBSD carp(4), skew multiplied).
	ProfileOpenBSD
)

// ProfileUCarp is ProfileFreeBSD: ucarp uses the FreeBSD formula with a
// configurable dead ratio (Config.DeadRatio).
const ProfileUCarp = ProfileFreeBSD

// String returns "freebsd" or "openbsd".
func (p Profile) String() string {
	switch p {
	case ProfileFreeBSD:
		return "freebsd"
	case ProfileOpenBSD:
		return "openbsd"
	}
	return fmt.Sprintf("Profile(%d)", uint8(p))
}

// CounterMode selects what goes into the 8-byte counter of adverts. No
// implementation requires the counter to increase, so both modes
// interoperate with every peer; they differ in loop detection.
type CounterMode uint8

const (
	// CounterIncrement, the default: a random start, +1 per advert sent
	// (FreeBSD, ucarp). Unlike FreeBSD and ucarp, a backup that becomes
	// master continues its own sequence instead of the old master's (no
	// implementation checks the counter, so this changes nothing for
	// peers): every node's counters are its own, so a replay of any of
	// them is told apart from a live peer. Any advert carrying a counter
	// this group sent in its life is a loop or a replay.
	CounterIncrement CounterMode = iota
	// CounterCookie: one random 8-byte cookie sent unchanged for the life
	// of the group (OpenBSD). An advert carrying it is a loop or a replay.
	CounterCookie
)

// String returns "increment" or "cookie".
func (m CounterMode) String() string {
	switch m {
	case CounterIncrement:
		return "increment"
	case CounterCookie:
		return "cookie"
	}
	return fmt.Sprintf("CounterMode(%d)", uint8(m))
}

// Protocol selects the wire protocol of a [Group]. Both run the same
// election; only the advert on the wire and how a node ranks differ.
type Protocol uint8

const (
	// ProtocolCARP, the default: CARP version 2 (OpenBSD, FreeBSD, ucarp).
	ProtocolCARP Protocol = iota
	// ProtocolVRRPv3: VRRP version 3 (RFC 5798; keepalived, routers,
	// FreeBSD 15 carp with carpver 3), IPv4 and IPv6.
	ProtocolVRRPv3
)

// String returns "carp" or "vrrp3".
func (p Protocol) String() string {
	switch p {
	case ProtocolCARP:
		return "carp"
	case ProtocolVRRPv3:
		return "vrrp3"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// Limits of the VRRPv3 settings.
const (
	// DefaultPriority is the VRRP priority used when Config.Priority is
	// zero (RFC 5798, keepalived, FreeBSD).
	DefaultPriority = 100
	// MinAdvertInterval and MaxAdvertInterval bound Config.AdvertInterval:
	// the wire carries 12 bits of centiseconds.
	MinAdvertInterval = 10 * time.Millisecond
	MaxAdvertInterval = VRRPMaxInterval * 10 * time.Millisecond
)

// Config configures a [Group]. [NewGroup] validates every field and copies
// the slices, so the caller may reuse them.
type Config struct {
	// VHID is the virtual host id, 1-255; with ProtocolVRRPv3 the virtual
	// router id (VRID). Never reuse a CARP vhid as a VRRP VRID on the same
	// LAN: both use the virtual MAC 00:00:5e:00:01:<id>.
	VHID uint8

	// Protocol selects CARP (the default) or VRRPv3 on the wire. With
	// VRRPv3, Priority and AdvertInterval replace AdvBase and AdvSkew, and
	// the CARP-only fields (AdvBase, AdvSkew, ZeroAdvBase, Password,
	// DemoteInSkew, Profile, DeadRatio, CounterMode) must be left zero.
	Protocol Protocol
	// Priority is the VRRP priority, 1-254, or 255 for the owner of the
	// addresses, which starts as MASTER (as with StartAsMaster). Higher
	// wins; equal priorities are decided by the higher primary (source)
	// address. Zero means DefaultPriority (100). Demotion (SetDemotion)
	// lowers the advertised priority by its sum times DemotionWeight, as
	// keepalived's track weights do, but never below 1: 0 is what a
	// stopping master sends.
	// VRRPv3 only.
	Priority uint8
	// DemotionWeight is how many priority points each unit of demotion
	// takes away with VRRPv3 (a keepalived track weight). Zero means 1.
	// Demotion sources count in units (a link down is 1, a sync engine's
	// bulk update or a FollowGroup's rule a few), so with the default only
	// nodes of equal Priority hand over on a demotion. 255 ranks any
	// demoted node below every undemoted one (at priority 1), as a CARP
	// demotion does, whatever the priorities. VRRPv3 only.
	DemotionWeight uint8
	// AdvertInterval is the VRRP advertisement interval, in steps of 10 ms
	// from 10 ms to 40.95 s. Zero means 1 s. A backup waits three times
	// the interval the master advertises plus a skew of
	// (256 - priority)/256 of it, so the highest priority takes over
	// first. VRRPv3 only.
	AdvertInterval time.Duration

	// AdvBase is the base advertisement interval in seconds, 1-255. Zero
	// means 1, unless ZeroAdvBase is set.
	AdvBase uint8
	// ZeroAdvBase makes an AdvBase of 0 mean 0 (OpenBSD allows it: with
	// AdvSkew 0 a master advertises every 1/256 s). It is how CARP runs
	// sub-second: AdvBase 0 and AdvSkew 26 advertise every 101.6 ms. The
	// master-down interval is then DeadRatio times the advert interval
	// whatever the Profile (OpenBSD's rule; FreeBSD rejects advbase 0, and
	// ucarp accepts it but waits one interval only). See
	// docs/sub-second.md for which peers can follow.
	ZeroAdvBase bool
	// AdvSkew is added to AdvBase in 1/256 s, 0-254. The lower the
	// interval advbase·256+advskew, the more preferred the node.
	AdvSkew uint8

	// Password is the HMAC-SHA1 key, at most 20 bytes; empty means the BSD
	// default of 20 zero bytes. BSD ifconfig and ucarp accept at most 19.
	Password []byte

	// Addrs are the virtual addresses of the group, IPv4 and/or IPv6, at
	// least one, no duplicates. They go into the HMAC of every advert, so
	// every node must configure the same set. Adverts are sent on each
	// family that has an address.
	Addrs []netip.Addr

	// Preempt lets a backup with a strictly better interval take over from
	// a live, slower master (net.inet.carp.preempt, ucarp --preempt). Off by
	// default, as on the BSDs. A better (lower) demotion always preempts.
	// With VRRPv3 it lets a backup with a strictly higher priority take
	// over; VRRP routers and keepalived preempt by default, so set it to
	// match them.
	Preempt bool

	// DemoteInSkew also shows demotion the way FreeBSD does, for peers
	// that ignore the demote byte (FreeBSD carp, ucarp): while the group is
	// demoted it advertises, and compares itself to peers with, an advskew
	// of at least [DemotedSkew] (240, FreeBSD's CARP_MAXSKEW; every
	// FreeBSD demotion source, pfsync's bulk included, adds 240 to it).
	// A ucarp or FreeBSD backup with Preempt then takes over from a
	// demoted master, and a demoted backup does not preempt one. The demote
	// byte is still sent, so OpenBSD peers and other Groups see both and
	// agree. The advert interval and master-down interval keep the
	// configured advskew. Off by default: it changes the election for every
	// peer, so enable it on every node of a group with FreeBSD or ucarp
	// members.
	DemoteInSkew bool

	// Profile selects the master-down formula; see [ProfileFreeBSD].
	Profile Profile
	// DeadRatio is the number of advert intervals without an advert after
	// which a backup takes over (ucarp --deadratio). Zero means 3, the
	// fixed BSD value; otherwise at least 1.
	DeadRatio int

	// CounterMode selects the advert counter; see [CounterIncrement].
	CounterMode CounterMode

	// StartAsMaster makes the group become MASTER at start (after
	// HoldDown) instead of BACKUP, like an "I am master" setting in an
	// appliance UI. A group demoted at that moment (SetDemotion: a sync
	// engine still fetching state, a health check failing) starts as
	// BACKUP instead and becomes MASTER as soon as its demotion drops to
	// zero, unless it heard a master's advert first; OpenBSD boots
	// demoted for the same reason. The usual election rules apply from
	// then on.
	StartAsMaster bool
	// HoldDown keeps the group in INIT this long after Start before the
	// first election, e.g. until routes are up. Zero means none.
	HoldDown time.Duration

	// SkipTTLCheck accepts adverts with a TTL / hop limit other than 255.
	// Use it for routed unicast peers (FreeBSD skips the check for unicast
	// peers; OpenBSD and ucarp never do).
	SkipTTLCheck bool
	// IfIndex, if not zero, is the index of the interface adverts must
	// arrive on; others are counted as Badif and dropped. Packets whose
	// IfIndex the transport does not know (0) are accepted.
	IfIndex int

	// Transport sends and receives the adverts. Required. The Group owns it
	// once NewGroup succeeds: Close closes it.
	Transport Transport

	// Logger receives state changes (Info/Warn) and per-packet drops
	// (Debug). Nil discards.
	Logger *slog.Logger

	// OnTransition, if not nil, is called for every state change, serially
	// and in order, on a goroutine of its own: never on the protocol loop,
	// so a slow or blocked hook never delays adverts. It may block, but
	// Close waits for it to return from the transitions that happened
	// before the group stopped (the last one is to INIT), for at most
	// CloseTimeout; the hook should not call Close itself (Close would
	// wait out CloseTimeout). The control methods (SetDemotion, ...) never
	// block and may be called from it.
	OnTransition func(Transition)

	// OnContested, if not nil, is called when this group, as MASTER,
	// hears another node advertise as master and out-ranks it (see
	// [Contest]): after a split brain or a missed advert, the other node
	// announced the addresses too. It is called for the adverts answered
	// at once, at most one per quarter advertisement interval (the others
	// are counted in Stats.Suppressed), with either protocol: a VRRPv3
	// master that hears an advert of a lower priority answers it too, as
	// keepalived does, instead of only discarding it. It runs like
	// OnTransition, on the same goroutine, serially and in order with the
	// transitions, never on the protocol loop, and Close waits for it the
	// same way. It is not a transition: Transitions and the transition
	// hooks never see it. Wire it to the address follower so the
	// neighbours learn this node's MAC again:
	//
	//	OnContested: follower.HandleContest,
	OnContested func(Contest)

	// CloseTimeout bounds how long Close waits for OnTransition (and
	// OnContested) to return from the events queued before the group
	// stopped. Zero means DefaultCloseTimeout; negative is an error. See
	// Group.Close.
	CloseTimeout time.Duration
}

// DefaultCloseTimeout is the CloseTimeout used when Config.CloseTimeout is
// zero.
const DefaultCloseTimeout = 5 * time.Second

// validate checks c and returns a normalised copy.
func (c Config) validate() (Config, error) {
	if c.VHID == 0 {
		return c, fmt.Errorf("carp: Config.VHID %d out of range 1-255", c.VHID)
	}
	switch c.Protocol {
	case ProtocolCARP:
		if c.Priority != 0 {
			return c, fmt.Errorf("carp: Config.Priority %d set with protocol %v, want 0 (VRRPv3 only)", c.Priority, c.Protocol)
		}
		if c.AdvertInterval != 0 {
			return c, fmt.Errorf("carp: Config.AdvertInterval %v set with protocol %v, want 0 (VRRPv3 only)", c.AdvertInterval, c.Protocol)
		}
		if c.DemotionWeight != 0 {
			return c, fmt.Errorf("carp: Config.DemotionWeight %d set with protocol %v, want 0 (VRRPv3 only)", c.DemotionWeight, c.Protocol)
		}
	case ProtocolVRRPv3:
		if err := c.validateVRRP(); err != nil {
			return c, err
		}
		if c.Priority == 0 {
			c.Priority = DefaultPriority
		}
		if c.Priority == VRRPPriorityOwner {
			c.StartAsMaster = true
		}
		if c.AdvertInterval == 0 {
			c.AdvertInterval = time.Second
		}
		if c.DemotionWeight == 0 {
			c.DemotionWeight = 1
		}
	default:
		return c, fmt.Errorf("carp: Config.Protocol %d out of range %d-%d", c.Protocol, ProtocolCARP, ProtocolVRRPv3)
	}
	if c.AdvBase == 0 && !c.ZeroAdvBase {
		c.AdvBase = 1
	}
	if c.AdvSkew == 255 {
		return c, fmt.Errorf("carp: Config.AdvSkew %d out of range 0-254", c.AdvSkew)
	}
	if len(c.Password) > MaxPasswordLen {
		return c, fmt.Errorf("carp: Config.Password length %d out of range 0-%d", len(c.Password), MaxPasswordLen)
	}
	if len(c.Addrs) == 0 {
		return c, errors.New("carp: Config.Addrs is empty, want at least one virtual address")
	}
	addrs := make([]netip.Addr, 0, len(c.Addrs))
	seen := make(map[netip.Addr]bool, len(c.Addrs))
	for i, a := range c.Addrs {
		if !a.IsValid() || a.Unmap().IsUnspecified() || a.IsMulticast() {
			return c, fmt.Errorf("carp: Config.Addrs[%d] %v is not a unicast address", i, a)
		}
		a = a.Unmap()
		key := a.WithZone("")
		if seen[key] {
			return c, fmt.Errorf("carp: Config.Addrs[%d] %v listed twice", i, a)
		}
		seen[key] = true
		addrs = append(addrs, a)
	}
	c.Addrs = addrs
	c.Password = slices.Clone(c.Password)
	if c.Profile > ProfileOpenBSD {
		return c, fmt.Errorf("carp: Config.Profile %d out of range 0-%d", c.Profile, ProfileOpenBSD)
	}
	if c.DeadRatio == 0 {
		c.DeadRatio = 3
	}
	if c.DeadRatio < 1 || c.DeadRatio > 255 {
		return c, fmt.Errorf("carp: Config.DeadRatio %d out of range 0-255 (0 means 3)", c.DeadRatio)
	}
	if c.CounterMode > CounterCookie {
		return c, fmt.Errorf("carp: Config.CounterMode %d out of range 0-%d", c.CounterMode, CounterCookie)
	}
	if c.HoldDown < 0 {
		return c, fmt.Errorf("carp: Config.HoldDown %v out of range (0 or more)", c.HoldDown)
	}
	if c.CloseTimeout < 0 {
		return c, fmt.Errorf("carp: Config.CloseTimeout %v out of range (0 or more)", c.CloseTimeout)
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.IfIndex < 0 {
		return c, fmt.Errorf("carp: Config.IfIndex %d out of range (0 or more)", c.IfIndex)
	}
	if c.Transport == nil {
		return c, errors.New("carp: Config.Transport is nil, want a Transport")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// validateVRRP checks the VRRPv3 settings and that no CARP-only field is
// set: silently ignoring one would hide a mistake.
func (c Config) validateVRRP() error {
	if c.AdvertInterval != 0 && (c.AdvertInterval < MinAdvertInterval || c.AdvertInterval > MaxAdvertInterval || c.AdvertInterval%MinAdvertInterval != 0) {
		return fmt.Errorf("carp: Config.AdvertInterval %v out of range (0 or %v-%v in steps of %v)", c.AdvertInterval, MinAdvertInterval, MaxAdvertInterval, MinAdvertInterval)
	}
	carpOnly := []struct {
		name string
		set  bool
		val  any
	}{
		{"AdvBase", c.AdvBase != 0, c.AdvBase},
		{"AdvSkew", c.AdvSkew != 0, c.AdvSkew},
		{"ZeroAdvBase", c.ZeroAdvBase, c.ZeroAdvBase},
		{"Password", len(c.Password) != 0, fmt.Sprintf("of %d bytes", len(c.Password))},
		{"DemoteInSkew", c.DemoteInSkew, c.DemoteInSkew},
		{"Profile", c.Profile != 0, c.Profile},
		{"DeadRatio", c.DeadRatio != 0, c.DeadRatio},
		{"CounterMode", c.CounterMode != 0, c.CounterMode},
	}
	for _, f := range carpOnly {
		if f.set {
			return fmt.Errorf("carp: Config.%s %v set with protocol %v, want the zero value (CARP only)", f.name, f.val, ProtocolVRRPv3)
		}
	}
	return nil
}

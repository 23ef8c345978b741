package carp

import (
	"net/netip"
	"time"
)

// offer is a valid advert of either protocol reduced to what the election
// compares, so that one state machine runs both. CARP ranks nodes by
// (demote, advbase·256 + advskew), lower first; VRRP by priority, higher
// first, and then by the higher primary address. A VRRP priority p maps to
// the timing 255 - p, which orders like the advskew of a CARP node with
// advbase 0 (the owner, 255, ranks first; the priority 0 of a stopping
// master last, like CARP's bow-out), and VRRP's demotion is already in its
// priority, so its demote is 0 on both sides.
type offer struct {
	timing  int  // lower wins
	demote  int  // lower wins; 0 with VRRP
	leaving bool // CARP bow-out (advbase 255, advskew 255); VRRP priority 0
	// counter is the CARP counter, which the replay checks use; VRRP
	// adverts have none.
	counter uint64
	// interval is the VRRP sender's advert interval, which a backup
	// learns (RFC 5798: Master_Adver_Interval); 0 with CARP.
	interval time.Duration
}

// carpOffer returns the election's view of a CARP advert.
func carpOffer(a Advertisement) offer {
	return offer{timing: a.Timing(), demote: int(a.Demote), leaving: a.IsBowOut(), counter: a.Counter}
}

// vrrpOffer returns the election's view of a VRRPv3 advert.
func vrrpOffer(a VRRPAdvertisement) offer {
	return offer{
		timing:   vrrpTiming(int(a.Priority)),
		leaving:  a.Priority == VRRPPriorityStop,
		interval: time.Duration(a.Interval) * 10 * time.Millisecond,
	}
}

// vrrpTiming maps a VRRP priority onto CARP's timing order (lower wins).
func vrrpTiming(priority int) int { return 255 - priority }

// vrrpSkew is RFC 5798's Skew_Time: the part of the master-down interval
// that lets the backup of highest priority take over first.
func vrrpSkew(interval time.Duration, priority int) time.Duration {
	return time.Duration(256-priority) * interval / 256
}

// vrrpMasterDown is RFC 5798's Master_Down_Interval for a backup of the
// given priority that follows a master advertising every interval.
func vrrpMasterDown(interval time.Duration, priority int) time.Duration {
	return 3*interval + vrrpSkew(interval, priority)
}

// tieLost reports whether this node loses a tie (equal timing and
// demotion) against the sender src of an advert on family f. CARP has no
// tie-break: a master yields to an equal one. VRRP decides by the higher
// primary address (the advert's source), RFC 5798.
func (r *run) tieLost(f Family, src netip.Addr) bool {
	if r.g.vrrp == nil {
		return true
	}
	return src.WithZone("").Compare(r.g.vrrp.src[familyIndex(f)].WithZone("")) > 0
}

// priority returns the VRRP priority this node advertises and ranks with
// now: the configured one lowered by the demotion times
// Config.DemotionWeight, as keepalived's track weights lower it, but never below 1 (0 means "the master stops" on the
// wire, and a demoted node must still be able to take over when no one
// else is there).
func (r *run) priority() int {
	p := int(r.g.cfg.Priority)
	if r.demote > 0 {
		p = max(1, p-r.demote*int(r.g.cfg.DemotionWeight))
	}
	return p
}

// masterDownInt returns how long a BACKUP waits for the next advert: the
// configured interval with CARP, and with VRRP the one computed from the
// interval the master advertises and this node's current priority.
func (r *run) masterDownInt() time.Duration {
	if r.g.vrrp == nil {
		return r.g.mdInt
	}
	return vrrpMasterDown(r.vrrp.interval(r.g), r.priority())
}

// startDownFor arms the master-down timer of family f for d, if the group
// runs that family.
func (r *run) startDownFor(f Family, d time.Duration) {
	for _, have := range r.g.families {
		if have == f {
			i := familyIndex(f)
			r.down[i].start(d)
			r.downLate[i] = false
			r.downFired = false
			return
		}
	}
}

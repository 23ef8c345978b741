package vip

import (
	"fmt"
	"time"
)

// NoRepeats as Schedule.Repeats means: announce once on promotion and not
// again (apart from Refresh).
const NoRepeats = -1

// Schedule says when a new MASTER announces its addresses: one round at
// once, Repeats more every Interval, then (optionally) one every Refresh for
// as long as it stays MASTER.
//
// The zero Schedule is OpenBSD's: one round at promotion and a second one
// two advertisement intervals later, "for some L3 switches" that miss the
// first (carp_master_down → carp_send_arp, then the delayed second GARP).
// BurstSchedule is MetalLB's takeover spam.
type Schedule struct {
	// Interval between the repeats. Zero means 2 × Config.AdvertInterval;
	// otherwise at least 10 ms.
	Interval time.Duration

	// Repeats is the number of rounds after the first. Zero means 1;
	// NoRepeats means none.
	Repeats int

	// Refresh, when not zero, keeps announcing every Refresh after the
	// repeats, for networks whose switches age their forwarding tables out
	// faster than hosts their ARP caches (MetalLB#2910; keepalived's
	// garp_master_refresh). At least 100 ms.
	Refresh time.Duration
}

// BurstSchedule returns MetalLB's schedule: a round at once and then every
// 1.1 s for 5 s (rounds at 0, 1.1, 2.2, 3.3 and 4.4 s).
func BurstSchedule() Schedule {
	return Schedule{Interval: 1100 * time.Millisecond, Repeats: 4}
}

// validate checks the fields; see Schedule.
func (s Schedule) validate() error {
	switch {
	case s.Interval < 0 || (s.Interval > 0 && s.Interval < 10*time.Millisecond):
		return fmt.Errorf("vip: Schedule.Interval %v out of range (0 or at least 10ms)", s.Interval)
	case s.Repeats < NoRepeats || s.Repeats > 1000:
		return fmt.Errorf("vip: Schedule.Repeats %d out of range %d-1000", s.Repeats, NoRepeats)
	case s.Refresh < 0 || (s.Refresh > 0 && s.Refresh < 100*time.Millisecond):
		return fmt.Errorf("vip: Schedule.Refresh %v out of range (0 or at least 100ms)", s.Refresh)
	}
	return nil
}

// plan is a Schedule with its defaults applied.
type plan struct {
	interval time.Duration
	repeats  int
	refresh  time.Duration
}

func (s Schedule) plan(advert time.Duration) plan {
	p := plan{interval: s.Interval, repeats: s.Repeats, refresh: s.Refresh}
	if p.interval == 0 {
		p.interval = 2 * advert
	}
	switch p.repeats {
	case 0:
		p.repeats = 1
	case NoRepeats:
		p.repeats = 0
	}
	return p
}

// offset returns when round i (0 is the immediate one) is due, counted from
// the promotion, and false when there is no such round.
func (p plan) offset(i int) (time.Duration, bool) {
	switch {
	case i < 0:
		return 0, false
	case i <= p.repeats:
		return time.Duration(i) * p.interval, true
	case p.refresh <= 0:
		return 0, false
	}
	return time.Duration(p.repeats)*p.interval + time.Duration(i-p.repeats)*p.refresh, true
}

package main

import (
	"errors"
	"time"
)

// Bounds of --interval. Below 10 ms the master-down interval (three
// adverts) is shorter than the scheduling delays a busy host shows, so a
// backup would take over from a live master; 992 ms is advskew 254, the
// longest interval advbase 0 can carry (longer ones: --advbase 1 or more).
const (
	minInterval = 10 * time.Millisecond
	maxInterval = 254 * tick
)

// tick is CARP's unit of advskew, 1/256 s (exactly 3.90625 ms).
const tick = time.Second / 256

// setInterval parses --interval. Its advbase 0 and advskew are set by
// checkInterval once every flag is read, so that a --advbase or --advskew
// given as well is refused whatever the order.
func setInterval(o *options, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < minInterval || d > maxInterval {
		return errors.New("out of range 10ms-992ms (a duration, e.g. 100ms; longer: --advbase, --advskew)")
	}
	o.Interval = d
	return nil
}

// intervalSkew returns the advskew nearest to the interval d with advbase 0.
func intervalSkew(d time.Duration) uint8 { return uint8((d + tick/2) / tick) }

// checkInterval applies --interval, refuses it with --advbase or
// --advskew, and refuses --advbase 0 with advskew 0 (an advert every
// 1/256 s: OpenBSD takes it, ucarp and carpd do not).
func (o *options) checkInterval() error {
	if o.Interval != 0 {
		if o.AdvBase != 1 || o.AdvSkew != 0 {
			return usagef("--interval %v: not with --advbase or --advskew (it sets both)", o.Interval)
		}
		o.AdvBase, o.AdvSkew = 0, intervalSkew(o.Interval)
	}
	if o.AdvBase == 0 && o.AdvSkew == 0 {
		return usagef("--advskew 0 out of range 1-254 with --advbase 0 (the interval is advskew/256 s; or use --interval)")
	}
	return nil
}

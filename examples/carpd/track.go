package main

import (
	"errors"
	"strings"
	"time"

	"github.com/gocarp/gocarp/track"
)

// trackOptions are the --track-* flags: keepalived's track_script and
// track_interface, with one set of interval, timeout, rise, fall and
// weight for every tracker.
type trackOptions struct {
	Scripts    []string      // --track-script, repeatable: shell command lines
	Interfaces []string      // --track-interface, repeatable
	Interval   time.Duration // --track-interval (0: the track package's 1 s)
	Timeout    time.Duration // --track-timeout (0: the interval)
	Rise, Fall int           // --track-rise, --track-fall (0: 1)
	Weight     int           // --track-weight
	WeightSet  bool          // --track-weight was given (its 0 is meaningful)
}

// maxTrackInterval bounds --track-interval and --track-timeout.
const maxTrackInterval = 24 * time.Hour

// trackFlags are carpd's health-tracking flags, appended to the flag table
// after the VRRPv3 ones.
var trackFlags = []flagSpec{
	{0, "track-script", "CMD", "demote while CMD (run with /bin/sh -c) exits non-zero; repeatable", func(o *options, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("is not a command")
		}
		for _, s := range o.Track.Scripts {
			if s == v {
				return errors.New("is given twice")
			}
		}
		o.Track.Scripts = append(o.Track.Scripts, v)
		return nil
	}},
	{0, "track-interface", "IF", "demote while IF is down or has no carrier; repeatable", func(o *options, v string) error {
		if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ ") {
			return errors.New("is not an interface name (1-15 bytes, no '/' or space)")
		}
		for _, s := range o.Track.Interfaces {
			if s == v {
				return errors.New("is given twice")
			}
		}
		o.Track.Interfaces = append(o.Track.Interfaces, v)
		return nil
	}},
	{0, "track-interval", "DURATION", "time between two checks, 10ms-24h (default 1s)", func(o *options, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < track.MinInterval || d > maxTrackInterval {
			return errors.New("out of range 10ms-24h (a duration, e.g. 2s)")
		}
		o.Track.Interval = d
		return nil
	}},
	{0, "track-timeout", "DURATION", "a check still running after DURATION fails (a script is killed with its process group), 1ms-24h (default: the interval)", func(o *options, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond || d > maxTrackInterval {
			return errors.New("out of range 1ms-24h (a duration, e.g. 2s)")
		}
		o.Track.Timeout = d
		return nil
	}},
	{0, "track-rise", "1-1000", "successes in a row that clear a failed tracker (default 1)", func(o *options, v string) error {
		n, err := parseRange(v, 1, track.MaxCount)
		o.Track.Rise = n
		return err
	}},
	{0, "track-fall", "1-1000", "failures in a row that fail a healthy tracker (default 1)", func(o *options, v string) error {
		n, err := parseRange(v, 1, track.MaxCount)
		o.Track.Fall = n
		return err
	}},
	{0, "track-weight", "0-255", "demotion of a failed tracker; 0 (default) forces the group out of MASTER (keepalived's FAULT)", func(o *options, v string) error {
		n, err := parseRange(v, 0, 255)
		o.Track.Weight, o.Track.WeightSet = n, err == nil
		return err
	}},
}

// check rejects tuning flags without a tracker to tune: they would be
// ignored silently.
func (t *trackOptions) check() error {
	if len(t.Scripts)+len(t.Interfaces) > 0 {
		return nil
	}
	for _, f := range []struct {
		flag string
		set  bool
	}{
		{"--track-interval", t.Interval != 0},
		{"--track-timeout", t.Timeout != 0},
		{"--track-rise", t.Rise != 0},
		{"--track-fall", t.Fall != 0},
		{"--track-weight", t.WeightSet},
	} {
		if f.set {
			return usagef("%s: no --track-script or --track-interface to apply it to", f.flag)
		}
	}
	return nil
}

// trackSpec is one tracker to build: its name (in logs and in the demotion
// source, "track:<name>") and its check.
type trackSpec struct {
	name  string
	check track.Check
}

// specs lists the trackers, scripts first, in the order given.
func (t *trackOptions) specs() []trackSpec {
	var out []trackSpec
	for _, s := range t.Scripts {
		out = append(out, trackSpec{"script " + s, track.ShellScript(s)})
	}
	for _, i := range t.Interfaces {
		out = append(out, trackSpec{"interface " + i, &track.Interface{Name: i}})
	}
	return out
}

// startTrackers starts one tracker per --track-script and
// --track-interface, each feeding the group's demotion. Before the group
// starts, a demotion takes effect with its first advert.
func (d *daemon) startTrackers() error {
	t := d.o.Track
	for _, s := range t.specs() {
		tr, err := track.New(s.check, d.group, &track.Config{
			Name: s.name, Interval: t.Interval, Timeout: t.Timeout,
			Rise: t.Rise, Fall: t.Fall, Weight: t.Weight, Logger: d.log,
		})
		if err != nil {
			return err
		}
		d.trackers = append(d.trackers, tr)
		if err := tr.Start(); err != nil {
			return err
		}
	}
	return nil
}

// closeTrackers stops the trackers; each clears its demotion.
func (d *daemon) closeTrackers() {
	for _, tr := range d.trackers {
		if err := tr.Close(); err != nil {
			d.log.Warn("carpd: closing tracker", "track", tr.Status().Name, "err", err)
		}
	}
	d.trackers = nil
}

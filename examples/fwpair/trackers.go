package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gocarp/gocarp/track"
)

// TrackConfig is one health check of the track list: while it fails, the
// node is demoted by Weight on every group (through the follow group, so
// the groups move together), as keepalived's track_script,
// track_interface, track_process and its TCP_CHECK and HTTP_GET checkers
// do. Type selects the check and which of the type fields it needs:
//
//	script     script     a shell command line; healthy when it exits 0
//	interface  interface  a network interface; healthy while up with carrier
//	process    pid_file or process (one of them): healthy while it runs
//	tcp        address    "host:port"; healthy when a connection is accepted
//	http       url, status (0: any 2xx); healthy when a GET answers so
type TrackConfig struct {
	Name string `json:"name"`
	Type string `json:"type"`

	Script    string `json:"script,omitempty"`
	Interface string `json:"interface,omitempty"`
	PIDFile   string `json:"pid_file,omitempty"`
	Process   string `json:"process,omitempty"`
	Address   string `json:"address,omitempty"`
	URL       string `json:"url,omitempty"`
	Status    int    `json:"status,omitempty"`

	Interval Duration `json:"interval,omitzero"`
	Timeout  Duration `json:"timeout,omitzero"`
	Rise     int      `json:"rise,omitempty"`
	Fall     int      `json:"fall,omitempty"`
	// Weight is the demotion while failed, 1-255; 0 forces the node out
	// of MASTER (track.FaultDemotion: keepalived's FAULT).
	Weight int `json:"weight,omitempty"`
}

// maxTracks bounds the track list: each tracker is a goroutine and, for a
// script, a process every interval.
const maxTracks = 64

// trackTypes are the accepted values of track[].type.
var trackTypes = []string{"script", "interface", "process", "tcp", "http"}

// validateTracks checks the track list, naming the key of the first bad
// value and its allowed range, and fills in the defaults (those of
// package track, written out so that -check shows them).
func (c *Config) validateTracks() error {
	if len(c.Track) > maxTracks {
		return rangeErr("track: count", len(c.Track), fmt.Sprintf("0-%d", maxTracks))
	}
	names := map[string]bool{}
	for i := range c.Track {
		tc := &c.Track[i]
		where := fmt.Sprintf("track[%d]", i)
		if tc.Name == "" || len(tc.Name) > 64 || strings.ContainsAny(tc.Name, " \t\n\"=") {
			return fmt.Errorf("%s.name %q is not a name (1-64 bytes, no spaces, quotes or '=')", where, tc.Name)
		}
		if names[tc.Name] {
			return fmt.Errorf("%s.name %q used by two trackers", where, tc.Name)
		}
		names[tc.Name] = true
		if err := tc.validateType(where); err != nil {
			return err
		}
		if tc.Interval.Duration == 0 {
			tc.Interval.Duration = track.DefaultInterval
		}
		if d := tc.Interval.Duration; d < track.MinInterval || d > time.Hour {
			return rangeErr(where+".interval", d, fmt.Sprintf("%v-1h (0 means %v)", track.MinInterval, track.DefaultInterval))
		}
		if tc.Timeout.Duration == 0 {
			tc.Timeout.Duration = tc.Interval.Duration
		}
		if d := tc.Timeout.Duration; d < track.MinInterval || d > time.Hour {
			return rangeErr(where+".timeout", d, fmt.Sprintf("%v-1h (0 means the interval)", track.MinInterval))
		}
		for _, k := range []struct {
			key string
			n   *int
		}{{"rise", &tc.Rise}, {"fall", &tc.Fall}} {
			if *k.n == 0 {
				*k.n = 1
			}
			if *k.n < 1 || *k.n > track.MaxCount {
				return rangeErr(where+"."+k.key, *k.n, fmt.Sprintf("1-%d (0 means 1)", track.MaxCount))
			}
		}
		if tc.Weight < 0 || tc.Weight > 255 {
			return rangeErr(where+".weight", tc.Weight, "0-255 (0 forces the node out of MASTER)")
		}
	}
	return nil
}

// validateType checks type and the fields it uses; a field of another
// type is an error, so a typo in type does not leave a check unset.
func (tc *TrackConfig) validateType(where string) error {
	if !slices.Contains(trackTypes, tc.Type) {
		return fmt.Errorf("%s.type %q not one of %s", where, tc.Type, strings.Join(trackTypes, ", "))
	}
	set := map[string]bool{
		"script": tc.Script != "", "interface": tc.Interface != "", "pid_file": tc.PIDFile != "",
		"process": tc.Process != "", "address": tc.Address != "", "url": tc.URL != "", "status": tc.Status != 0,
	}
	uses := map[string][]string{
		"script": {"script"}, "interface": {"interface"}, "process": {"pid_file", "process"},
		"tcp": {"address"}, "http": {"url", "status"},
	}[tc.Type]
	for _, k := range []string{"script", "interface", "pid_file", "process", "address", "url", "status"} {
		if set[k] && !slices.Contains(uses, k) {
			return fmt.Errorf("%s.%s set with %s.type %s, want it unset (%s uses %s)", where, k, where, tc.Type, tc.Type, strings.Join(uses, ", "))
		}
	}
	switch tc.Type {
	case "script":
		if strings.TrimSpace(tc.Script) == "" {
			return fmt.Errorf("%s.script required with type script (a shell command line; healthy when it exits 0)", where)
		}
	case "interface":
		return checkIfName(where+".interface", tc.Interface)
	case "process":
		if (tc.PIDFile == "") == (tc.Process == "") {
			return fmt.Errorf("%s: set exactly one of %s.pid_file and %s.process", where, where, where)
		}
		if tc.Process != "" && (len(tc.Process) > 15 || strings.Contains(tc.Process, "/")) {
			return fmt.Errorf("%s.process %q is not a process name (1-15 bytes as in /proc/PID/comm, no '/')", where, tc.Process)
		}
	case "tcp":
		host, port, err := net.SplitHostPort(tc.Address)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("%s.address %q is not host:port", where, tc.Address)
		}
	case "http":
		u, err := url.Parse(tc.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.url %q is not an http or https URL", where, tc.URL)
		}
		if tc.Status != 0 && (tc.Status < 100 || tc.Status > 599) {
			return rangeErr(where+".status", tc.Status, "100-599 (0 means any 2xx)")
		}
	}
	return nil
}

// check returns the track.Check of tc (validated).
func (tc *TrackConfig) check() track.Check {
	switch tc.Type {
	case "script":
		return track.ShellScript(tc.Script)
	case "interface":
		return &track.Interface{Name: tc.Interface}
	case "process":
		return &track.Process{PIDFile: tc.PIDFile, Name: tc.Process}
	case "tcp":
		return &track.TCP{Address: tc.Address}
	default:
		return &track.HTTP{URL: tc.URL, Status: tc.Status}
	}
}

// trackRun is one running tracker and the configuration it was built
// from (a reload compares them).
type trackRun struct {
	cfg TrackConfig
	t   *track.Tracker
}

// newTracker builds (does not start) the tracker of tc feeding the node's
// follow group.
func (d *daemon) newTracker(tc TrackConfig) (*trackRun, error) {
	t, err := track.New(tc.check(), d.follow, &track.Config{
		Name: tc.Name, Interval: tc.Interval.Duration, Timeout: tc.Timeout.Duration,
		Rise: tc.Rise, Fall: tc.Fall, Weight: tc.Weight, Logger: d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("track %s: %w", tc.Name, err)
	}
	return &trackRun{cfg: tc, t: t}, nil
}

// TrackStatus is one tracker in the status.
type TrackStatus struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	State  string `json:"state"` // "unknown" until the first check, then "healthy" or "failed"
	Weight int    `json:"weight"`
	// Demotion is what the tracker contributes to every group's demotion
	// now: 0 while healthy, the weight (255 for weight 0) while failed.
	Demotion int    `json:"demotion"`
	Streak   int    `json:"streak"` // consecutive results against the state
	Checks   uint64 `json:"checks"`
	LastErr  string `json:"last_error,omitempty"`
}

// trackStatus reports the trackers.
func trackStatus(ts []*trackRun) []TrackStatus {
	var out []TrackStatus
	for _, tr := range ts {
		s := tr.t.Status()
		st := TrackStatus{Name: tr.cfg.Name, Type: tr.cfg.Type, State: "unknown", Weight: tr.cfg.Weight,
			Demotion: s.Demotion, Streak: s.Streak, Checks: s.Checks}
		if s.Known {
			st.State = "failed"
			if s.Healthy {
				st.State = "healthy"
			}
		}
		if s.LastErr != nil {
			st.LastErr = s.LastErr.Error()
		}
		out = append(out, st)
	}
	return out
}

// planTrack plans the track list: a tracker is known by its name; one
// whose settings changed is replaced (its state is known again after the
// new tracker's first check), one no longer listed is closed, which clears
// its demotion, and a new one starts.
func planTrack(d *daemon, next *Config) (*sectionPlan, error) {
	_, running := d.running()
	byName := map[string]*trackRun{}
	for _, tr := range running {
		byName[tr.cfg.Name] = tr
	}
	var p sectionPlan
	var start []*trackRun // built now, started by apply
	var stop []*trackRun
	keep := map[*trackRun]bool{}
	var list []*trackRun // the new running list, in the file's order
	for i, tc := range next.Track {
		old := byName[tc.Name]
		if old != nil && old.cfg == tc {
			keep[old] = true
			list = append(list, old)
			continue
		}
		tr, err := d.newTracker(tc)
		if err != nil {
			for _, tr := range start {
				tr.t.Close()
			}
			return nil, fmt.Errorf("track[%d]: %w", i, err)
		}
		start = append(start, tr)
		list = append(list, tr)
		if old != nil {
			p.changes = append(p.changes, fmt.Sprintf("track[%d] %s changed (restarted)", i, tc.Name))
		} else {
			p.changes = append(p.changes, fmt.Sprintf("track[%d] %s added (%s)", i, tc.Name, tc.Type))
		}
	}
	for _, tr := range running {
		if !keep[tr] {
			stop = append(stop, tr)
			if !slices.ContainsFunc(next.Track, func(tc TrackConfig) bool { return tc.Name == tr.cfg.Name }) {
				p.changes = append(p.changes, fmt.Sprintf("track %s removed (its demotion cleared)", tr.cfg.Name))
			}
		}
	}
	if len(p.changes) == 0 {
		return nil, nil
	}
	p.discard = func() {
		for _, tr := range start {
			tr.t.Close()
		}
	}
	p.apply = func() error {
		// Stop first: a replaced tracker's successor has the same
		// demotion source, which the old one's Close clears.
		var errs []error
		for _, tr := range stop {
			if err := tr.t.Close(); err != nil {
				errs = append(errs, fmt.Errorf("track %s: %w", tr.cfg.Name, err))
			}
		}
		groups, _ := d.running()
		d.setRunning(groups, list)
		for _, tr := range start {
			if err := tr.t.Start(); err != nil {
				errs = append(errs, fmt.Errorf("track %s: %w", tr.cfg.Name, err))
			}
		}
		return errors.Join(errs...)
	}
	return &p, nil
}

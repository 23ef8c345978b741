package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
)

// A reload (SIGHUP, or fwpair -reload through the control socket) reads
// the configuration file again, validates it as at start, and applies the
// difference with what runs, live: no group is closed and re-opened that
// the change does not remove, so no state changes unless the election
// outcome does.
//
// It runs in two phases. First every section plans its change: it
// compares what runs with the new file and refuses, with an error naming
// the key, what cannot change live; planning changes nothing. Only when
// every section accepted does each apply its plan, in the order of
// reloadSections. So a refused reload leaves the daemon running on its old
// configuration, untouched.
//
// Every section compares the new file with what runs (each groupRun and
// trackRun keeps the configuration it runs with; d.syncPeers and d.syncKey
// the sync engine's), not with the file read last: a change whose applying
// failed is tried again by the next reload. d.cfg stays the configuration
// the daemon started with: the keys planFixed guards never differ from it.

// sectionPlan is what a reload does to one section.
type sectionPlan struct {
	// changes describe the change, one line each (logged, and returned to
	// fwpair -reload).
	changes []string
	// apply makes the change. It runs after every section has planned; an
	// error is reported and the other sections are applied all the same.
	apply func() error
	// discard, if not nil, releases what planning built when another
	// section refused the reload.
	discard func()
}

// reloadSection plans the reload of one part of the configuration. plan
// compares what runs with next and returns nil when there is nothing to
// do, or an error naming the key of a change that cannot be applied live.
// It must not change anything the daemon runs.
type reloadSection struct {
	name string
	plan func(d *daemon, next *Config) (*sectionPlan, error)
}

// reloadSections are the sections a reload plans and applies, in order.
// A section of the configuration that is not listed here (and not among
// the fixed keys of planFixed) is simply taken from the new file: add its
// planner here to make it live.
func reloadSections() []reloadSection {
	return []reloadSection{
		{"fixed", planFixed},         // keys that cannot change live: refused
		{"groups", planGroups},       // carp and groups (reload_groups.go)
		{"sync", planSync},           // sync.peers, sync.key_file
		{"track", planTrack},         // the trackers
		{"documents", planDocuments}, // firewall and files (documents.go)
	}
}

// reload reads the configuration file again and applies it. It returns
// the changes applied, or the error that refused the reload (nothing
// changed) or that some change failed (the others are applied).
func (d *daemon) reload(trigger string) ([]string, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.closing {
		return nil, errors.New("fwpair: reload: shutting down")
	}
	next, err := LoadConfig(d.cfg.File)
	if err != nil {
		d.log.Error("fwpair: reload refused; running on the previous configuration", "trigger", trigger, "err", err)
		return nil, err
	}
	var plans []*sectionPlan
	for _, s := range reloadSections() {
		p, err := s.plan(d, next)
		if err != nil {
			for _, p := range plans {
				if p.discard != nil {
					p.discard()
				}
			}
			err = fmt.Errorf("fwpair: reload %s: %w", d.cfg.File, err)
			d.log.Error("fwpair: reload refused; running on the previous configuration", "trigger", trigger, "err", err)
			return nil, err
		}
		if p != nil {
			plans = append(plans, p)
		}
	}
	var changes []string
	var errs []error
	for _, p := range plans {
		for _, c := range p.changes {
			d.log.Info("fwpair: reload", "change", c)
		}
		changes = append(changes, p.changes...)
		if err := p.apply(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		err = fmt.Errorf("fwpair: reload %s: applied in part (reload again to retry): %w", d.cfg.File, err)
		d.log.Error("fwpair: reload", "trigger", trigger, "err", err)
		return changes, err
	}
	if len(changes) == 0 {
		changes = []string{"none"}
	}
	d.log.Info("fwpair: configuration reloaded", "trigger", trigger, "changes", len(changes))
	return changes, nil
}

// fixedKey is a key a reload refuses to change.
type fixedKey struct {
	key      string
	old, new any
	why      string // what to do instead
}

// planFixed refuses a change of a key that cannot change live, and notes
// the keys that take effect at the next start only.
func planFixed(d *daemon, next *Config) (*sectionPlan, error) {
	old := d.cfg
	const restart = "restart fwpair to change it"
	for _, k := range []fixedKey{
		{"node", old.Node, next.Node, "it is the node's identity on the sync link; " + restart},
		{"control_socket", old.ControlSocket, next.ControlSocket, restart},
		{"log_level", old.LogLevel, next.LogLevel, restart},
		{"log_format", old.LogFormat, next.LogFormat, restart},
		{"carp.protocol", old.CARP.Protocol, next.CARP.Protocol, restart},
		{"carp.accept", old.CARP.accepts(), next.CARP.accepts(), restart},
		{"sync.interface", old.Sync.Interface, next.Sync.Interface, restart},
		{"sync.local", old.Sync.Local, next.Sync.Local, restart},
		{"sync.boot_file", old.Sync.BootFile, next.Sync.BootFile, restart},
		{"sync.commit", old.Sync.Commit, next.Sync.Commit, restart},
		{"sync.commit_timeout", old.Sync.CommitTimeout, next.Sync.CommitTimeout, restart},
		{"sync.heartbeat", old.Sync.Heartbeat, next.Sync.Heartbeat, restart},
		{"sync.flush_delay", old.Sync.FlushDelay, next.Sync.FlushDelay, restart},
		{"sync.bulk_rate", old.Sync.BulkRate, next.Sync.BulkRate, restart},
		{"conntrack", old.Conntrack, next.Conntrack, restart},
		{"follow", old.Follow, next.Follow, restart},
		{"metrics.listen", old.Metrics.Listen, next.Metrics.Listen, restart},
		{"forwarding", old.Forwarding, next.Forwarding, restart},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			return nil, fmt.Errorf("%s %s cannot change while fwpair runs (running with %s): %s",
				k.key, show(k.new), show(k.old), k.why)
		}
	}
	var notes []string
	if old.CARP.StartAsMaster != next.CARP.StartAsMaster {
		notes = append(notes, fmt.Sprintf("carp.start_as_master %v: applies at the next start", next.CARP.StartAsMaster))
	}
	if old.CARP.StartWait != next.CARP.StartWait {
		notes = append(notes, fmt.Sprintf("carp.start_wait %v: applies at the next start", next.CARP.StartWait.Duration))
	}
	if len(notes) == 0 {
		return nil, nil
	}
	return &sectionPlan{changes: notes, apply: func() error { return nil }}, nil
}

// show formats a value of the configuration for an error as the user
// wrote it: JSON.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 120 {
		return string(b[:117]) + "..."
	}
	return string(b)
}

// planSync plans sync.peers and sync.key_file: each is one function
// (applySyncPeers, applySyncKey), so that the sync engine's run-time
// changes plug in there.
func planSync(d *daemon, next *Config) (*sectionPlan, error) {
	var p sectionPlan
	var applies []func() error
	if !slices.Equal(d.syncPeers, next.Sync.Peers) {
		apply, changes, err := d.planSyncPeers(next.Sync.Peers)
		if err != nil {
			return nil, err
		}
		p.changes = append(p.changes, changes...)
		applies = append(applies, apply)
	}
	apply, changes, err := d.planSyncKey(next.Sync.KeyFile)
	if err != nil {
		return nil, err
	}
	if apply != nil {
		p.changes = append(p.changes, changes...)
		applies = append(applies, apply)
	}
	if len(applies) == 0 {
		return nil, nil
	}
	p.apply = func() error {
		var errs []error
		for _, a := range applies {
			errs = append(errs, a())
		}
		return errors.Join(errs...)
	}
	return &p, nil
}

// describePeers lists a change of sync.peers.
func describePeers(old, next []SyncPeer) []string {
	var out []string
	for _, p := range old {
		if !slices.Contains(next, p) {
			out = append(out, fmt.Sprintf("sync.peers: -node %d %s", p.Node, p.Address))
		}
	}
	for _, p := range next {
		if !slices.Contains(old, p) {
			out = append(out, fmt.Sprintf("sync.peers: +node %d %s", p.Node, p.Address))
		}
	}
	return out
}

// running returns the groups and trackers that run now.
func (d *daemon) running() ([]*groupRun, []*trackRun) {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	return d.groups, d.tracks
}

// groupList returns the groups that run now.
func (d *daemon) groupList() []*groupRun {
	g, _ := d.running()
	return g
}

// setRunning publishes new slices of groups and trackers.
func (d *daemon) setRunning(groups []*groupRun, tracks []*trackRun) {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	d.groups, d.tracks = groups, tracks
}

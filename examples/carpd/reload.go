package main

import (
	"bytes"

	"github.com/gocarp/gocarp/carp"
)

// reload is SIGHUP: it re-reads --demote-file and --passfile at once and
// applies what changed, without leaving the group. The demotion takes
// effect before reload returns (a MASTER advertises it at once, and a
// backup that now wins takes over). A new password goes through
// Group.Reconfigure: for a window of carp.KeyRollover or the master-down
// interval, whichever is longer, the group still signs with the old
// password while accepting both, then signs with the new one and accepts
// the old for another window, so peers changed within a window of each
// other never stop hearing each other. A password file that cannot be read
// or holds no valid password is logged and the password in use kept;
// nothing else on the command line is re-read.
func (d *daemon) reload() {
	d.log.Info("carpd: SIGHUP: re-reading files", "state", d.group.State(),
		"demote_file", d.o.DemoteFile, "passfile", d.o.PassFile)
	if d.demote != nil {
		d.demote.Reread()
	}
	changed := false
	if d.o.PassFile != "" {
		changed = d.reloadPassword()
	}
	d.log.Info("carpd: reloaded", "demotion", d.group.Demotion(), "password_changed", changed)
}

// reloadPassword reads --passfile and hands a changed password to the
// group. It reports whether the password changed.
func (d *daemon) reloadPassword() bool {
	pass, err := d.o.password()
	if err != nil {
		d.log.Warn("carpd: keeping the password in use", "err", err)
		return false
	}
	if bytes.Equal(pass, d.cfg.Password) {
		return false
	}
	cfg := d.cfg
	cfg.Password = pass
	// Nil keeps what the group has: these are fixed at NewGroup.
	cfg.Transport, cfg.Logger, cfg.OnTransition, cfg.OnContested = nil, nil, nil, nil
	if err := d.group.Reconfigure(cfg); err != nil {
		d.log.Warn("carpd: keeping the password in use", "err", err)
		return false
	}
	d.cfg.Password = pass
	d.log.Info("carpd: new password from the password file; the old one is still sent, and accepted, for a while",
		"window", max(carp.KeyRollover, d.group.MasterDownInterval()))
	return true
}

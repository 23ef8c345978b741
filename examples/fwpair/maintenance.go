package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocarp/gocarp/internal/atomicfile"
	"github.com/gocarp/gocarp/track"
)

// Persistent maintenance mode (pfSense's "persistent CARP maintenance
// mode"): the node hands every group to its peer and keeps them there,
// across restarts of the daemon, until it is switched off. It works
// through the node-wide demotion (the follow group), at the cap: a MASTER
// whose demotion rises advertises it at once and the peer, less demoted,
// takes over at once whatever its preempt setting. If the peer is gone
// (or in maintenance too) this node still takes the groups: maintenance
// asks the peer to serve, it never leaves the pair without a master.
const (
	// demoteMaintenance is the demotion source of maintenance mode.
	demoteMaintenance = "maintenance"
	// maintenanceDemotion is carp's largest demotion.
	maintenanceDemotion = track.FaultDemotion
	// maintenanceFileName is the file that records maintenance mode, in
	// sync.boot_file's directory (the daemon's state directory).
	maintenanceFileName = "maintenance"
)

// maintenancePath is where the maintenance mode of the node configured by
// c is recorded.
func (c *Config) maintenancePath() string {
	return filepath.Join(filepath.Dir(c.Sync.BootFile), maintenanceFileName)
}

// Maintenance is the recorded maintenance mode.
type Maintenance struct {
	On    bool      `json:"on"`
	Since time.Time `json:"since,omitzero"` // when it was switched on
}

// readMaintenance reads the maintenance file at path: no file is off.
func readMaintenance(path string) (Maintenance, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Maintenance{}, nil
	}
	if err != nil {
		return Maintenance{}, fmt.Errorf("fwpair: maintenance: %w", err)
	}
	// The file holds the time it was switched on; an unreadable time (a
	// file written by hand) still means on.
	m := Maintenance{On: true}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
		m.Since = t
	}
	return m, nil
}

// writeMaintenance records m at path: on writes the file (replaced
// atomically, so a crash leaves the old or the new mode), off removes it.
func writeMaintenance(path string, m Maintenance) error {
	if !m.On {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fwpair: maintenance: %w", err)
		}
		return nil
	}
	if err := atomicfile.Write(path, []byte(m.Since.UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
		return fmt.Errorf("fwpair: maintenance: %w", err)
	}
	return nil
}

// parseMaintenanceArg parses -maintenance's value.
func parseMaintenanceArg(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("fwpair: -maintenance %q not one of on, off", s)
}

// setMaintenance switches the running daemon's maintenance mode: the file
// first (so that a restart right after keeps it), then the demotion.
func (d *daemon) setMaintenance(on bool) (Maintenance, error) {
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	if d.maint.On == on {
		return d.maint, nil
	}
	m := Maintenance{On: on}
	if on {
		m.Since = time.Now()
	}
	if err := writeMaintenance(d.cfg.maintenancePath(), m); err != nil {
		return d.maint, err
	}
	d.maint = m
	d.applyMaintenance()
	if on {
		d.log.Info("fwpair: maintenance mode on: handing every group to the peer", "demotion", maintenanceDemotion)
	} else {
		d.log.Info("fwpair: maintenance mode off")
	}
	return m, nil
}

// applyMaintenance sets the maintenance demotion from d.maint (maintMu
// held, or before the groups start).
func (d *daemon) applyMaintenance() {
	n := 0
	if d.maint.On {
		n = maintenanceDemotion
	}
	d.follow.SetDemotion(demoteMaintenance, n)
}

// maintenanceStatus returns the mode for the status.
func (d *daemon) maintenanceStatus() Maintenance {
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	return d.maint
}

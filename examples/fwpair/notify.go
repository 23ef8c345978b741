package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/sdnotify"
)

// notifyReady tells systemd (Type=notify, fwpair.service) that fwpair runs:
// called once newDaemon has returned, that is once the first sync decision
// is made (start_as_master: founder, or joining a running pair) and the
// groups run. It starts the watchdog pings when the unit sets WatchdogSec:
// they go out while every group's protocol loop makes progress. Without
// NOTIFY_SOCKET nothing is sent.
func (d *daemon) notifyReady() {
	d.notify.Status(d.statusLine())
	d.notify.Ready()
	// The groups a reload adds are watched too: a new list of groups
	// starts a new Stall (called from the watchdog's goroutine only).
	var stall *sdnotify.Stall
	var watched []*carp.Group
	d.notify.StartWatchdog(func() error {
		running := d.groupList()
		groups := make([]*carp.Group, len(running))
		for i, gr := range running {
			groups[i] = gr.group
		}
		if stall == nil || !slices.Equal(groups, watched) {
			stall, watched = sdnotify.NewStall(time.Now(), groups...), groups
		}
		return stall.Check(time.Now())
	})
}

// notifyState updates the status systemctl shows after a transition.
func (d *daemon) notifyState() {
	if d.notify != nil {
		d.notify.Status(d.statusLine())
	}
}

// notifyStopping ends the watchdog and reports the shutdown.
func (d *daemon) notifyStopping() {
	if d.notify != nil {
		d.notify.Stopping()
	}
}

// statusLine is the node, how it started and each group's state, as
// "node 1 (founder): wan MASTER, lan MASTER".
func (d *daemon) statusLine() string {
	d.mu.Lock()
	founder := d.startedAsMaster
	d.mu.Unlock()
	start := "joined"
	if founder {
		start = "founder"
	}
	running := d.groupList()
	states := make([]string, len(running))
	for i, gr := range running {
		states[i] = fmt.Sprintf("%s %v", gr.cfg.Name, gr.group.State())
	}
	return fmt.Sprintf("node %d (%s): %s", d.cfg.Node, start, strings.Join(states, ", "))
}

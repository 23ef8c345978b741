package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/sdnotify"
)

// notifyReady tells systemd (Type=notify, carpd@.service) that the group
// runs, and starts the watchdog pings when the unit sets WatchdogSec: they
// go out while the group's protocol loop makes progress. Without
// NOTIFY_SOCKET nothing is sent.
func (d *daemon) notifyReady() {
	d.notify.Ready()
	stall := sdnotify.NewStall(time.Now(), d.group)
	d.notify.StartWatchdog(func() error { return stall.Check(time.Now()) })
}

// newNotifier returns carpd's notifier, its status that of a group not
// started yet.
func newNotifier(o *options, log *slog.Logger) *sdnotify.Notifier {
	n := sdnotify.New(log)
	n.Status(statusLine(o, carp.Init))
	return n
}

// notifyState updates the status systemctl shows after a transition.
func (d *daemon) notifyState(to carp.State) {
	if d.notify != nil {
		d.notify.Status(statusLine(d.o, to))
	}
}

// notifyStopping ends the watchdog and reports the shutdown.
func (d *daemon) notifyStopping() {
	if d.notify != nil {
		d.notify.Stopping()
	}
}

func statusLine(o *options, s carp.State) string {
	return fmt.Sprintf("vhid %d on %s: %v", o.VHID, o.Interface, s)
}

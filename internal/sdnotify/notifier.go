package sdnotify

import (
	"log/slog"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends a daemon's notify-protocol messages. The zero value is not
// usable; New returns one. Its methods are safe for concurrent use.
type Notifier struct {
	log  *slog.Logger
	send func(state string) error

	mu      sync.Mutex
	stop    chan struct{} // closed by Stopping or Close: ends the watchdog
	done    chan struct{} // closed when the watchdog goroutine has returned
	stopped bool
	ready   bool
	status  string // the latest status line
}

// New returns a Notifier that writes to $NOTIFY_SOCKET, if set. Send
// errors are logged on log (at warn level), never returned: a daemon does
// not stop because its service manager went away.
func New(log *slog.Logger) *Notifier {
	n := &Notifier{log: log, stop: make(chan struct{})}
	n.send = func(state string) error {
		_, err := daemon.SdNotify(false, state)
		return err
	}
	return n
}

func (n *Notifier) notify(state string) {
	if err := n.send(state); err != nil {
		n.log.Warn("sdnotify: cannot notify the service manager", "err", err)
	}
}

// Ready reports that the daemon serves, with the latest status line.
func (n *Notifier) Ready() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ready = true
	n.notify(daemon.SdNotifyReady + "\nSTATUS=" + n.status)
}

// Status replaces the status line the service manager shows
// (systemctl status). Before Ready it is only recorded: Ready sends the
// latest, so a state change while the daemon starts is neither lost nor
// reported before READY.
func (n *Notifier) Status(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status = oneLine(status)
	if n.ready {
		n.notify("STATUS=" + n.status)
	}
}

// Stopping ends the watchdog pings and reports that the daemon shuts down.
func (n *Notifier) Stopping() {
	n.Close()
	n.notify(daemon.SdNotifyStopping)
}

// StartWatchdog pings the service manager at half of WatchdogSec, each
// time alive returns nil, until Stopping or Close; it does nothing when
// the unit sets no watchdog for this process. When alive fails, the
// failure is logged once and no ping goes out until it passes again, so
// the manager restarts the daemon after WatchdogSec.
func (n *Notifier) StartWatchdog(alive func() error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("sdnotify: watchdog settings unreadable; not pinging", "err", err)
		return
	}
	if d <= 0 {
		return
	}
	t := time.NewTicker(d / 2)
	n.startWatchdog(t.C, t.Stop, alive)
}

// startWatchdog runs the ping loop on ticks (a test feeds them).
func (n *Notifier) startWatchdog(ticks <-chan time.Time, stopTicks func(), alive func() error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped || n.done != nil {
		stopTicks()
		return
	}
	done := make(chan struct{})
	n.done = done
	go func() {
		defer close(done)
		defer stopTicks()
		failing := false
		for {
			select {
			case <-n.stop:
				return
			case <-ticks:
			}
			if err := alive(); err != nil {
				if !failing {
					n.log.Error("sdnotify: liveness check failed; watchdog pings stop", "err", err)
				}
				failing = true
				continue
			}
			if failing {
				n.log.Info("sdnotify: liveness check passes again; watchdog pings resume")
			}
			failing = false
			n.notify(daemon.SdNotifyWatchdog)
		}
	}()
}

// Close stops the watchdog and waits for its goroutine. It is idempotent.
func (n *Notifier) Close() {
	n.mu.Lock()
	if !n.stopped {
		n.stopped = true
		close(n.stop)
	}
	done := n.done
	n.mu.Unlock()
	if done != nil {
		<-done
	}
}

// oneLine keeps a status to one line: the protocol separates its
// assignments with newlines.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

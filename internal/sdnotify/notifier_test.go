package sdnotify

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeManager is the service manager's end of NOTIFY_SOCKET: a unixgram
// socket in the test's directory.
type fakeManager struct {
	t    *testing.T
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *fakeManager {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &fakeManager{t: t, conn: conn}
}

// next returns the next datagram; a missing one fails the test after a
// generous deadline (a hang guard, not a timing assertion).
func (m *fakeManager) next() string {
	m.t.Helper()
	buf := make([]byte, 4096)
	if err := m.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		m.t.Fatal(err)
	}
	n, err := m.conn.Read(buf)
	if err != nil {
		m.t.Fatalf("no notify message: %v", err)
	}
	return string(buf[:n])
}

func (m *fakeManager) want(msg string) {
	m.t.Helper()
	if got := m.next(); got != msg {
		m.t.Fatalf("notify message %q, want %q", got, msg)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// The protocol in a daemon's order: READY with a status, a new status,
// watchdog pings only while the liveness check passes, STOPPING.
func TestNotifierProtocol(t *testing.T) {
	m := listenNotify(t)
	n := New(discard())
	defer n.Close()

	n.Status("vhid 1 INIT")
	n.Status("vhid 1 BACKUP") // before READY: only the latest goes out, with it
	n.Ready()
	m.want("READY=1\nSTATUS=vhid 1 BACKUP")

	ticks := make(chan time.Time)
	answers := make(chan error)
	n.startWatchdog(ticks, func() {}, func() error { return <-answers })

	ticks <- time.Time{}
	answers <- nil
	m.want("WATCHDOG=1")

	n.Status("vhid 1 MASTER\nsecond line")
	m.want("STATUS=vhid 1 MASTER second line")

	// A failing check sends nothing: the tick after it is taken only once
	// the failed one is done, and the status sent next arrives first.
	ticks <- time.Time{}
	answers <- errors.New("stuck")
	ticks <- time.Time{}
	n.Status("after the failure")
	answers <- nil
	m.want("STATUS=after the failure")
	m.want("WATCHDOG=1")

	n.Stopping()
	m.want("STOPPING=1")
	n.Close() // idempotent after Stopping
}

// StartWatchdog pings at half of the WatchdogSec that systemd passes in
// WATCHDOG_USEC, and only for the process named by WATCHDOG_PID.
func TestStartWatchdogEnv(t *testing.T) {
	m := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "2000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New(discard())
	n.StartWatchdog(func() error { return nil })
	m.want("WATCHDOG=1")
	m.want("WATCHDOG=1")
	n.Stopping()
	// Pings sent before Stopping may precede it; none follows it.
	for {
		msg := m.next()
		if msg == "STOPPING=1" {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("notify message %q, want WATCHDOG=1 or STOPPING=1", msg)
		}
	}
}

func TestStartWatchdogOff(t *testing.T) {
	for name, pid := range map[string]string{"unset": "", "other process": strconv.Itoa(os.Getpid() + 1)} {
		t.Run(name, func(t *testing.T) {
			listenNotify(t)
			t.Setenv("WATCHDOG_USEC", "2000")
			t.Setenv("WATCHDOG_PID", pid)
			if pid == "" {
				os.Unsetenv("WATCHDOG_USEC")
			}
			n := New(discard())
			n.StartWatchdog(func() error { t.Error("liveness checked without a watchdog"); return nil })
			if n.done != nil {
				t.Fatal("watchdog goroutine started without a watchdog for this process")
			}
			n.Close()
		})
	}
}

// Without NOTIFY_SOCKET (a start by hand) every call is a no-op.
func TestNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	var logged bool
	n := New(slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { logged = true; return len(p), nil }), nil)))
	n.Ready()
	n.Status("y")
	n.Stopping()
	if logged {
		t.Fatal("a notify without NOTIFY_SOCKET logged an error")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

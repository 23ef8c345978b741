package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
)

// TestNotify runs the pair as systemd would with Type=notify and
// WatchdogSec, through a fake NOTIFY_SOCKET both daemons write to: each
// sends READY once its first sync decision is made, with the decision and
// the groups' states (fw1 founds the pair as MASTER, fw2 joins as BACKUP);
// WATCHDOG pings follow while the groups run; SIGTERM sends STOPPING. Not
// parallel: the socket reaches the daemons through the environment.
func TestNotify(t *testing.T) {
	p := newPair(t, "ntf", [3]fwbench.FwpairOptions{1: {StartAsMaster: true}, 2: {}})
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "400000") // no WATCHDOG_PID: any process pings

	buf := make([]byte, 4096)
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notify message: %v", err)
		}
		return string(buf[:n])
	}
	// until reads messages until one satisfies ok; the others must be
	// pings or status lines.
	until := func(what string, ok func(string) bool) string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			msg := next()
			if ok(msg) {
				return msg
			}
			if msg != "WATCHDOG=1" && !strings.HasPrefix(msg, "STATUS=") {
				t.Fatalf("message %q while waiting for %s", msg, what)
			}
		}
		t.Fatalf("no %s within 30s (only pings and other status lines)", what)
		return ""
	}

	p.start(1)
	// fw1's first message is READY: nothing before its decision. A group
	// started a moment before may still read INIT there; its change
	// follows as a STATUS.
	const founder = "STATUS=node 1 (founder): "
	msg := next()
	if !strings.HasPrefix(msg, "READY=1\n"+founder) {
		t.Fatalf("fw1's first message %q, want READY=1 with the founder's status", msg)
	}
	if msg != "READY=1\n"+founder+"lan MASTER, wan MASTER" {
		until("fw1 MASTER of both groups", func(m string) bool { return m == founder+"lan MASTER, wan MASTER" })
	}
	until("fw1's watchdog ping", func(m string) bool { return m == "WATCHDOG=1" })

	p.start(2)
	until("fw2's READY", func(m string) bool {
		return strings.HasPrefix(m, "READY=1\nSTATUS=node 2 (joined): ")
	})
	p.wait(2, "fw2 BACKUP and in sync", 20*time.Second, func(s *Status) bool { return allIn(s, "BACKUP") && s.Sync.BulkDone })
	until("a watchdog ping", func(m string) bool { return m == "WATCHDOG=1" })

	// fw1 stops: STOPPING from it, and fw2's status follows its takeover.
	if err := p.proc[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	until("STOPPING", func(m string) bool { return m == "STOPPING=1" })
	until("fw2's status as MASTER", func(m string) bool {
		return m == "STATUS=node 2 (joined): lan MASTER, wan MASTER"
	})
	<-p.proc[1].Done()
	if err := p.proc[1].Err(); err != nil {
		t.Errorf("fw1 exited with %v", err)
	}
}

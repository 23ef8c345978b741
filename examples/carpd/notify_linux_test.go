package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNotify runs carpd as systemd would with Type=notify and WatchdogSec:
// READY with the group's state, STATUS on the takeover, WATCHDOG pings,
// STOPPING at SIGTERM, through a fake NOTIFY_SOCKET. Not parallel: the
// socket reaches carpd through the environment.
func TestNotify(t *testing.T) {
	tb := newTestbed(t, "a")
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000") // no WATCHDOG_PID: any process pings
	p := tb.carpd("a", false)

	buf := make([]byte, 4096)
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(stateTimeout))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notify message: %v\n%s", err, strings.Join(p.Output(), "\n"))
		}
		return string(buf[:n])
	}
	const prefix = "STATUS=vhid " + testVHID + " on eth0: "
	if msg := next(); !strings.HasPrefix(msg, "READY=1\n"+prefix) {
		t.Fatalf("first message %q, want READY=1 with the status", msg)
	}
	// Alone on the link, the group becomes MASTER after master-down.
	for msg := next(); msg != prefix+"MASTER"; msg = next() {
		if msg != "WATCHDOG=1" && !strings.HasPrefix(msg, prefix) {
			t.Fatalf("unexpected message %q before MASTER", msg)
		}
	}
	if msg := next(); msg != "WATCHDOG=1" {
		t.Fatalf("message %q, want a watchdog ping", msg)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for msg := next(); msg != "STOPPING=1"; msg = next() {
		if msg != "WATCHDOG=1" {
			t.Fatalf("message %q, want WATCHDOG=1 or STOPPING=1", msg)
		}
	}
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Errorf("carpd exited with %v", err)
	}
}

//go:build linux

package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/carp"
)

// lineWatcher is a slog.Handler that hands every logged "script output"
// line to a channel, so a test can wait for a script to reach a point.
type lineWatcher struct{ lines chan string }

func (w lineWatcher) Enabled(context.Context, slog.Level) bool { return true }
func (w lineWatcher) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w lineWatcher) WithGroup(string) slog.Handler            { return w }
func (w lineWatcher) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "line" {
			w.lines <- a.Value.String()
		}
		return true
	})
	return nil
}

// hangingScript writes a script that starts a child in the background,
// prints "child <pid>" and waits for it for ever, like an upscript stuck on
// a command that never returns.
func hangingScript(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hang")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nsleep 1000 &\necho child $!\nwait\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// exited waits until process pid has exited (a zombie counts), through a
// pidfd, which becomes readable then; it reports false if pid still runs
// after bound (the bound only turns a surviving process into a failure).
func exited(t *testing.T, pid int, bound time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(bound.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		return n > 0
	}
}

// childPid waits for the "child <pid>" line of hangingScript.
func childPid(t *testing.T, lines <-chan string, ended <-chan error) int {
	t.Helper()
	var line string
	select {
	case line = <-lines:
	case err := <-ended:
		// Without this case a script killed before it printed would
		// leave the test waiting for ever.
		t.Fatalf("the script ended (%v) before it printed its child's pid", err)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "child "))
	if err != nil {
		t.Fatalf("script printed %q, want \"child <pid>\"", line)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// TestScriptTimeoutKillsProcessGroup: --script-timeout kills the script and
// what it started (its process group), and counts the timeout. Killing the
// shell alone would leave the child running, holding the output open.
func TestScriptTimeoutKillsProcessGroup(t *testing.T) {
	w := lineWatcher{lines: make(chan string, 16)}
	// The timeout is long enough for the shell to start its child and
	// print its pid on a loaded machine (200 ms was not, once).
	s := &scripts{iface: "eth0", addrs: []string{"10.0.0.1"}, timeout: 2 * time.Second, log: slog.New(w)}
	errc := make(chan error, 1)
	go func() { errc <- s.run("up", hangingScript(t), carp.Transition{To: carp.Master}) }()
	pid := childPid(t, w.lines, errc)
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "killed with its process group after 2s (--script-timeout)") {
		t.Errorf("run = %v, want a timeout error", err)
	}
	if !exited(t, pid, 5*time.Second) {
		t.Errorf("the script's child %d survived the timeout", pid)
	}
	if got, want := s.stats(), (scriptStats{Runs: 1, Failures: 1, Timeouts: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// TestScriptsStopAndClose: stop kills the script running at the time with
// its process group, however long its timeout; after stop an upscript no
// longer starts but a downscript (that of --shutdown) still runs; after
// close none starts.
func TestScriptsStopAndClose(t *testing.T) {
	w := lineWatcher{lines: make(chan string, 16)}
	dir := t.TempDir()
	down, record := recordingScript(t, dir, "down", "")
	s := &scripts{iface: "eth0", addrs: []string{"10.0.0.1"}, up: hangingScript(t), down: down, shutdown: true,
		timeout: time.Hour, log: slog.New(w)}
	errc := make(chan error, 1)
	go func() {
		errc <- s.run("up", s.up, carp.Transition{From: carp.Backup, To: carp.Master, Reason: carp.ReasonBowOut})
	}()
	pid := childPid(t, w.lines, errc)
	s.stop()
	if err := <-errc; !errors.Is(err, errShutdown) {
		t.Errorf("run after stop = %v, want %v", err, errShutdown)
	}
	if !exited(t, pid, 5*time.Second) {
		t.Errorf("the script's child %d survived stop", pid)
	}
	if !s.stopped() {
		t.Error("stopped() = false after stop")
	}

	// A promotion still queued runs no upscript any more.
	s.up, _ = recordingScript(t, dir, "up", "")
	s.handle(carp.Transition{From: carp.Backup, To: carp.Master, Reason: carp.ReasonMasterTimedOut})
	if got := s.stats().Runs; got != 1 {
		t.Errorf("%d script runs after a promotion handled after stop, want 1 (the killed one)", got)
	}

	// The group's last transition, as MASTER, with --shutdown.
	last := carp.Transition{From: carp.Master, To: carp.Init, Reason: carp.ReasonClosed}
	s.handle(last)
	if got := readLines(t, record); len(got) != 1 || !strings.HasPrefix(got[0], "down ") {
		t.Errorf("downscript calls after stop: %q, want one", got)
	}
	s.close()
	if err := s.run("down", down, last); !errors.Is(err, errShutdown) {
		t.Errorf("run after close = %v, want %v", err, errShutdown)
	}
	if got := readLines(t, record); len(got) != 1 {
		t.Errorf("downscript calls after close: %q, want still one", got)
	}
	if got, want := s.stats(), (scriptStats{Runs: 2, Failures: 1, Kills: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

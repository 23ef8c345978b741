package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// reasonStartup is the reason given to the downscript carpd runs before
// the group starts (ucarp runs it on its first INIT→BACKUP transition).
const reasonStartup carp.Reason = "start-up"

// scripts runs ucarp's up and down scripts.
//
// A script is called exactly as ucarp calls it: "script <interface> <addr>
// [xparam]" with addr the first --addr. carpd also sets CARPD_VHID,
// CARPD_FROM, CARPD_STATE, CARPD_REASON and CARPD_ADDRS (every --addr,
// space-separated) in its environment, for scripts that manage several
// addresses.
//
// Unlike ucarp, scripts never block the protocol: they run from the group's
// OnTransition goroutine, which is off the protocol loop. They run one at a
// time, in the order of the transitions, and each one is waited for: a
// downscript due while the upscript still runs starts when the upscript
// has finished, so "down" always undoes a completed "up" rather than racing
// it. Their stdout and stderr are logged line by line.
//
// Every script runs in its own process group, so that a timeout or the
// shutdown kills what it started too (a "sleep" in a shell script, a
// pipeline): killing only the shell would leave its children running and,
// holding its output open, keep carpd waiting for them.
type scripts struct {
	vhid     uint8
	up, down string
	iface    string
	addrs    []string
	xparam   string
	shutdown bool          // -z: run the downscript when closing as MASTER
	timeout  time.Duration // --script-timeout; zero means defaultScriptTimeout
	log      *slog.Logger

	mu      sync.Mutex
	phase   scriptPhase
	running context.CancelCauseFunc // of the script running now; nil when none

	runs, failures, timeouts, kills atomic.Uint64
}

// scriptPhase is where carpd's shutdown is, for the scripts.
type scriptPhase int

const (
	scriptsRunning  scriptPhase = iota
	scriptsStopping             // stop was called: the script then running was killed; later ones run
	scriptsClosed               // close was called: no script starts any more
)

// errShutdown is the cause given to a script killed because carpd exits.
var errShutdown = errors.New("carpd is shutting down")

// scriptStats counts script runs, for SIGUSR1 and the final status.
type scriptStats struct {
	Runs     uint64 // scripts started
	Failures uint64 // runs that did not exit 0 (including those killed)
	Timeouts uint64 // killed after --script-timeout
	Kills    uint64 // killed at shutdown
}

func (s *scripts) stats() scriptStats {
	return scriptStats{Runs: s.runs.Load(), Failures: s.failures.Load(),
		Timeouts: s.timeouts.Load(), Kills: s.kills.Load()}
}

// forTransition returns which script (kind "up" or "down" and its path) t
// calls for, or "" when none:
//
//   - entering MASTER runs the upscript;
//   - leaving MASTER runs the downscript (to BACKUP: a faster master, a
//     step-down; to INIT: link lost), except when the group is closed, where
//     it runs only with --shutdown, as ucarp's -z;
//   - the other transitions (INIT↔BACKUP) run nothing: a BACKUP has
//     nothing to undo, and the start-up downscript (startup) already cleared
//     what a crashed run may have left.
func (s *scripts) forTransition(t carp.Transition) (kind, path string) {
	switch {
	case t.To == carp.Master:
		return "up", s.up
	case t.From == carp.Master && t.Reason == carp.ReasonClosed:
		if s.shutdown {
			return "down", s.down
		}
	case t.From == carp.Master:
		return "down", s.down
	}
	return "", ""
}

// handle runs the script t calls for, if any, and waits for it. It has the
// shape of carp.Config.OnTransition's work and is called from it.
func (s *scripts) handle(t carp.Transition) {
	kind, path := s.forTransition(t)
	if path == "" {
		return
	}
	if kind == "up" && s.stopped() {
		// A promotion still queued when carpd is told to exit: the group
		// is closing, and the upscript would only delay the exit and leave
		// something for the downscript to undo.
		s.log.Info("carpd: script not run: carpd is shutting down", "script", kind, "path", path, "state", t.To, "reason", t.Reason)
		return
	}
	if err := s.run(kind, path, t); err != nil {
		s.log.Error("carpd: script failed", "script", kind, "path", path, "err", err)
	}
}

// startup runs the downscript before the group starts, as ucarp does on its
// first transition to BACKUP unless --neutral: it removes a virtual address
// a crashed run left configured (docs/interop.md, "Stale addresses after a crash").
func (s *scripts) startup() {
	if s.down == "" {
		return
	}
	t := carp.Transition{VHID: s.vhid, From: carp.Init, To: carp.Backup, Reason: reasonStartup, At: time.Now()}
	if err := s.run("down", s.down, t); err != nil {
		s.log.Error("carpd: script failed", "script", "down", "path", s.down, "err", err)
	}
}

// limit is the time a script may run.
func (s *scripts) limit() time.Duration {
	if s.timeout <= 0 {
		return defaultScriptTimeout
	}
	return s.timeout
}

// stop is the start of carpd's shutdown: the script running now, if any,
// is killed with its process group (it served a state carpd is leaving, and
// may hang), so that the group's last transition, and the downscript that
// --shutdown runs for it, are not held up behind it. Downscripts that start
// afterwards run as usual, bounded by --script-timeout; upscripts do not
// run any more.
func (s *scripts) stop() { s.kill(scriptsStopping) }

// stopped reports whether stop or close was called.
func (s *scripts) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase != scriptsRunning
}

// close is the end of carpd's shutdown: it kills a script still running
// (the group gave up waiting for it) and starts no more, so that no
// script outlives carpd.
func (s *scripts) close() { s.kill(scriptsClosed) }

func (s *scripts) kill(phase scriptPhase) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = max(s.phase, phase)
	if s.running != nil {
		s.running(errShutdown)
	}
}

// run executes path with ucarp's arguments and waits for it. A script that
// outlives --script-timeout, or runs when stop or close is called, is
// killed with its whole process group (SIGKILL). A script that leaves
// children holding its output open (in another process group) is not waited
// for longer than two seconds after it exits.
func (s *scripts) run(kind, path string, t carp.Transition) error {
	args := []string{s.iface, s.addrs[0]}
	if s.xparam != "" {
		args = append(args, s.xparam)
	}
	// Two contexts, so that the error tells a timeout from a shutdown.
	stopCtx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	timeout := s.limit()
	ctx, cancel := context.WithTimeout(stopCtx, timeout)
	defer cancel()
	s.mu.Lock()
	if s.phase == scriptsClosed {
		s.mu.Unlock()
		return fmt.Errorf("not run for %s (%s): %w", t.To, t.Reason, errShutdown)
	}
	s.running = stop
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
	}()

	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("CARPD_VHID=%d", t.VHID),
		"CARPD_FROM="+t.From.String(),
		"CARPD_STATE="+t.To.String(),
		"CARPD_REASON="+t.Reason.String(),
		"CARPD_ADDRS="+strings.Join(s.addrs, " "),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // process group id = the script's pid
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // the whole group has exited already
		}
		return err
	}
	out := &lineLogger{log: s.log.With("script", kind, "path", path)}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	s.log.Info("carpd: running script", "script", kind, "path", path, "args", strings.Join(args, " "), "state", t.To, "reason", t.Reason)
	s.runs.Add(1)
	start := time.Now()
	err := cmd.Run()
	out.flush()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		s.failures.Add(1)
	}
	switch {
	case err == nil:
	case errors.Is(context.Cause(stopCtx), errShutdown):
		s.kills.Add(1)
		return fmt.Errorf("killed with its process group after %v: %w", took, errShutdown)
	case ctx.Err() != nil:
		s.timeouts.Add(1)
		return fmt.Errorf("killed with its process group after %v (--script-timeout): %w", timeout, err)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("exit status %d after %v", exit.ExitCode(), took)
	}
	if err != nil {
		return err
	}
	s.log.Info("carpd: script done", "script", kind, "path", path, "took", took)
	return nil
}

// lineLogger is the stdout and stderr of a script: it logs every complete
// line. exec.Cmd serialises writes when both streams share one writer.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex // a copy goroutine may outlive Run after WaitDelay
	buf []byte
}

// maxScriptLine bounds a line kept while waiting for its newline.
const maxScriptLine = 4096

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Info("carpd: script output", "line", string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxScriptLine {
		l.flushLocked()
	}
	return len(p), nil
}

// flush logs a last line that has no newline.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *lineLogger) flushLocked() {
	if len(l.buf) > 0 {
		l.log.Info("carpd: script output", "line", string(l.buf))
		l.buf = nil
	}
}

// checkScript verifies at start-up that a configured script can be
// executed, so a typo fails now rather than at the first failover.
func checkScript(flag, path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return usagef("--%s %s: %v", flag, path, err)
	case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
		return usagef("--%s %s: not an executable file", flag, path)
	}
	return nil
}

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
	"time"

	"github.com/gocarp/gocarp/carp"
)

// reasonStartup is the reason given to the downscript carpd runs before
// the group starts (ucarp runs it on its first INIT→BACKUP transition).
const reasonStartup = "start-up"

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
type scripts struct {
	vhid     uint8
	up, down string
	iface    string
	addrs    []string
	xparam   string
	shutdown bool          // -z: run the downscript when closing as MASTER
	timeout  time.Duration // 0: no limit
	log      *slog.Logger
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
	if err := s.run(kind, path, t); err != nil {
		s.log.Error("script failed", "script", kind, "path", path, "err", err)
	}
}

// startup runs the downscript before the group starts, as ucarp does on its
// first transition to BACKUP unless --neutral: it removes a virtual address
// a crashed run left configured (peers.md pitfall 3).
func (s *scripts) startup() {
	if s.down == "" {
		return
	}
	t := carp.Transition{VHID: s.vhid, From: carp.Init, To: carp.Backup, Reason: reasonStartup, At: time.Now()}
	if err := s.run("down", s.down, t); err != nil {
		s.log.Error("script failed", "script", "down", "path", s.down, "err", err)
	}
}

// run executes path with ucarp's arguments and waits for it. A script that
// outlives --script-timeout is killed; a script that leaves children holding
// its output open is not waited for longer than two seconds after it exits.
func (s *scripts) run(kind, path string, t carp.Transition) error {
	args := []string{s.iface, s.addrs[0]}
	if s.xparam != "" {
		args = append(args, s.xparam)
	}
	ctx := context.Background()
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("CARPD_VHID=%d", t.VHID),
		"CARPD_FROM="+t.From.String(),
		"CARPD_STATE="+t.To.String(),
		"CARPD_REASON="+t.Reason,
		"CARPD_ADDRS="+strings.Join(s.addrs, " "),
	)
	out := &lineLogger{log: s.log.With("script", kind, "path", path)}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	s.log.Info("running script", "script", kind, "path", path, "args", strings.Join(args, " "), "state", t.To, "reason", t.Reason)
	start := time.Now()
	err := cmd.Run()
	out.flush()
	took := time.Since(start).Round(time.Millisecond)
	if ctx.Err() != nil {
		return fmt.Errorf("killed after %v (--script-timeout): %w", s.timeout, err)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("exit status %d after %v", exit.ExitCode(), took)
	}
	if err != nil {
		return err
	}
	s.log.Info("script done", "script", kind, "path", path, "took", took)
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
		l.log.Info("script output", "line", string(l.buf[:i]))
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
		l.log.Info("script output", "line", string(l.buf))
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

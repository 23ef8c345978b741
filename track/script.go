package track

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// scriptWaitDelay bounds how long a check waits, after the timeout killed
// the script's process group, for its output pipes to close.
const scriptWaitDelay = time.Second

// Script is a Check that runs a command and is healthy when it exits 0
// (keepalived's track_script). The command runs in its own process group;
// on timeout or Close the whole group is killed with SIGKILL, so a script
// that started children (a shell pipeline, a curl) leaves nothing behind.
type Script struct {
	// Command is the program and its arguments; Command[0] is looked up in
	// PATH. ShellScript builds one that runs a shell command line.
	Command []string
	// Env is the environment (nil: the process's own); Dir the working
	// directory (empty: the process's own).
	Env []string
	Dir string
}

// ShellScript returns a Script running line with /bin/sh -c.
func ShellScript(line string) *Script {
	return &Script{Command: []string{"/bin/sh", "-c", line}}
}

// Check runs the command once.
func (s *Script) Check(ctx context.Context) error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errors.New("track: Script.Command empty")
	}
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	var out bytes.Buffer
	cmd.Stdout = &limited{w: &out, n: 512}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = scriptWaitDelay
	setProcessGroup(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("track: script %q: killed: %w", s.Command[0], ctx.Err())
	}
	if msg := strings.TrimSpace(out.String()); msg != "" {
		return fmt.Errorf("track: script %q: %w: %s", s.Command[0], err, msg)
	}
	return fmt.Errorf("track: script %q: %w", s.Command[0], err)
}

// limited keeps the first n bytes written and drops the rest, so a chatty
// script cannot grow memory.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

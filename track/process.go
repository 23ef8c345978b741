package track

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is a Check that is healthy while a process runs (keepalived's
// track_process), found by PIDFile or by Name; set exactly one. It reads
// /proc, so it works on Linux only. A zombie counts as not running.
type Process struct {
	// PIDFile holds the process id in decimal (a daemon's pid file).
	PIDFile string
	// Name is the process name as in /proc/PID/comm: the kernel keeps the
	// first 15 bytes of the executable's name, and so does the comparison.
	Name string
	// ProcRoot is where procfs is mounted; empty means /proc.
	ProcRoot string
}

// commLen is the kernel's TASK_COMM_LEN less its terminating NUL.
const commLen = 15

// Check looks the process up once.
func (p *Process) Check(ctx context.Context) error {
	root := p.ProcRoot
	if root == "" {
		root = "/proc"
	}
	switch {
	case (p.PIDFile == "") == (p.Name == ""):
		return errors.New("track: Process: set exactly one of PIDFile and Name")
	case p.PIDFile != "":
		b, err := os.ReadFile(p.PIDFile)
		if err != nil {
			return fmt.Errorf("track: process: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return fmt.Errorf("track: process: pid file %s: %q is not a pid", p.PIDFile, strings.TrimSpace(string(b)))
		}
		if !alive(root, strconv.Itoa(pid)) {
			return fmt.Errorf("track: process: pid %d from %s not running", pid, p.PIDFile)
		}
		return nil
	}
	want := p.Name
	if len(want) > commLen {
		want = want[:commLen]
	}
	dirs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("track: process: %w", err)
	}
	for _, d := range dirs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(root, d.Name(), "comm"))
		if err != nil {
			continue // exited while we looked
		}
		if strings.TrimSuffix(string(comm), "\n") == want && alive(root, d.Name()) {
			return nil
		}
	}
	return fmt.Errorf("track: process: no process named %q", p.Name)
}

// alive reports whether /proc/PID exists and is not a zombie. The state is
// the first field after the parenthesised command name in stat, which may
// itself contain spaces and parentheses.
func alive(root, pid string) bool {
	b, err := os.ReadFile(filepath.Join(root, pid, "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	state := s[i+2]
	return state != 'Z' && state != 'X'
}

//go:build linux

package netns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a background program running inside a namespace, with its
// stdout and stderr captured line by line. It is killed and reaped in
// t.Cleanup; its output is logged there if the test failed.
type Process struct {
	// Name is the program name, for messages.
	Name string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and output is drained

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at exit
	waitErr error

	stopOnce sync.Once
}

// Start starts name with args inside the namespace (through ip netns exec,
// which execs the program, so Pid is the program's pid). The program runs in
// its own process group; cleanup kills the whole group with SIGKILL and
// waits until none of its processes is alive (zombies excluded).
func (n *NS) Start(name string, args ...string) *Process {
	n.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		n.t.Fatalf("netns: %v", err)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	p := &Process{Name: name, t: n.t, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		n.t.Fatalf("netns: %s: start %s: %v", n.Name, name, err)
	}
	w.Close()
	go p.collect(r)
	n.t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			n.t.Errorf("netns: %v", err)
		}
		if n.t.Failed() {
			n.t.Logf("output of %s %s (pid %d) in %s:\n%s", name, strings.Join(args, " "), cmd.Process.Pid, n.Name, strings.Join(p.Output(), "\n"))
		}
	})
	return p
}

func (p *Process) collect(r io.ReadCloser) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	r.Close()
	err := p.cmd.Wait()
	p.mu.Lock()
	p.waitErr = err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.done)
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited (and its output is read).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns the exit error once Done is closed (nil before).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Output returns a copy of the lines printed so far.
func (p *Process) Output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Len returns the number of lines printed so far; pass it to WaitLine to
// look only at later lines.
func (p *Process) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// WaitLine waits until a line with index >= from contains substr and
// returns that line and its index. It gives up after timeout, or when the
// process exits without printing such a line, and returns an error that
// includes the output.
func (p *Process) WaitLine(from int, substr string, timeout time.Duration) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i], substr) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
			continue
		case <-p.done:
			// Re-check once: lines may have arrived with the exit.
			p.mu.Lock()
			for i := from; i < len(p.lines); i++ {
				if strings.Contains(p.lines[i], substr) {
					l := p.lines[i]
					p.mu.Unlock()
					return l, i, nil
				}
			}
			p.mu.Unlock()
			return "", -1, fmt.Errorf("netns: %s exited (%v) without printing %q; output:\n%s", p.Name, p.Err(), substr, strings.Join(p.Output(), "\n"))
		case <-deadline.C:
			return "", -1, fmt.Errorf("netns: %s did not print %q within %v; output:\n%s", p.Name, substr, timeout, strings.Join(p.Output(), "\n"))
		}
	}
}

// Count returns how many lines with index >= from contain substr.
func (p *Process) Count(from int, substr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i := from; i < len(p.lines); i++ {
		if strings.Contains(p.lines[i], substr) {
			n++
		}
	}
	return n
}

// Signal sends sig to the process (not to its group).
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Stop kills the process group with SIGKILL, waits for the process to be
// reaped, and then until no other member of its group is alive (a member
// that is a zombie counts as dead: kill -0 would still succeed on it, see
// docs/interop.md, "Zombies"). It is idempotent.
func (p *Process) Stop() error {
	var err error
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
		default:
			if e := syscall.Kill(-pgid, syscall.SIGKILL); e != nil && !errors.Is(e, syscall.ESRCH) {
				err = fmt.Errorf("kill %s group %d: %w", p.Name, pgid, e)
				return
			}
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("%s (pid %d) not reaped 10s after SIGKILL", p.Name, pgid)
			return
		}
		// Children that outlived the leader (keepalived's VRRP child) were in
		// the same group and got the SIGKILL too; wait until they are gone or
		// zombies owned by init.
		for deadline := time.Now().Add(10 * time.Second); ; {
			alive := GroupAlive(pgid)
			if len(alive) == 0 {
				return
			}
			if time.Now().After(deadline) {
				err = fmt.Errorf("processes %v of %s's group still alive 10s after SIGKILL", alive, p.Name)
				return
			}
			// Rare (only with forking daemons) and not a test assertion:
			// polling /proc is the only way to watch a non-child exit.
			time.Sleep(20 * time.Millisecond)
		}
	})
	return err
}

// Alive reports whether pid exists and is neither a zombie nor dead, by
// reading /proc/<pid>/stat.
func Alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z" && state != "X" && state != "x"
}

// GroupAlive returns the pids of live (non-zombie) processes in process
// group pgid.
func GroupAlive(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		g, state, ok := procStat(pid)
		if ok && g == pgid && state != "Z" && state != "X" && state != "x" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat returns the process group and state letter of pid.
func procStat(pid int) (pgid int, state string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid pgrp ...; comm may contain spaces and ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, "", false
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, "", false
	}
	return g, f[0], true
}

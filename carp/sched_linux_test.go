package carp_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// fifoThreads counts this process's threads under SCHED_FIFO (policy 1,
// field 41 of /proc/self/task/<tid>/stat).
func fifoThreads(t *testing.T) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 38 && f[38] == "1" { // field 41 overall
			n++
		}
	}
	return n
}

// syncBuffer is a log destination safe for the group's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLoopRealtime: with Scheduling.RealtimePriority the protocol loop
// runs on a SCHED_FIFO thread of its own while the group runs, and the
// thread is gone after Close; where that is not permitted (an ordinary
// user) the group runs anyway and logs why.
func TestLoopRealtime(t *testing.T) {
	if n := fifoThreads(t); n != 0 {
		t.Skipf("%d SCHED_FIFO threads before the test: cannot tell ours apart", n)
	}
	var logs syncBuffer
	states := make(chan carp.Transition, 4)
	g, err := carp.NewGroup(carp.Config{
		VHID: 1, Addrs: vip4, Password: []byte("secret"), StartAsMaster: true,
		Transport:    carptest.NewSegment(1).Join(carp.IPv4),
		Scheduling:   carp.LoopScheduling{RealtimePriority: 10},
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
		OnTransition: func(tr carp.Transition) { states <- tr },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	if tr := <-states; tr.To != carp.Master {
		t.Fatalf("first transition %+v, want MASTER", tr)
	}
	// The loop set its policy before it entered MASTER.
	got := fifoThreads(t)
	warned := strings.Contains(logs.String(), "carp: protocol loop scheduling not permitted")
	switch {
	case os.Geteuid() == 0 && got != 1:
		t.Errorf("as root: %d SCHED_FIFO threads while the group runs, want 1 (log: %s)", got, logs.String())
	case os.Geteuid() != 0 && got == 0 && !warned:
		t.Errorf("no SCHED_FIFO thread and no warning (log: %s)", logs.String())
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waits for the loop goroutine; its locked thread exits with
	// it, which the kernel may finish a moment later.
	if n := fifoThreads(t); n != 0 {
		t.Logf("%d SCHED_FIFO threads right after Close (exiting)", n)
	}
}

func TestLoopSchedulingValidation(t *testing.T) {
	base := carp.Config{VHID: 1, Addrs: vip4, Transport: carptest.NewSegment(1).Join(carp.IPv4)}
	for _, tt := range []struct {
		s    carp.LoopScheduling
		want string
	}{
		{carp.LoopScheduling{RealtimePriority: 100}, "carp: Config.Scheduling.RealtimePriority 100 out of range 0-99"},
		{carp.LoopScheduling{RealtimePriority: -1}, "carp: Config.Scheduling.RealtimePriority -1 out of range 0-99"},
		{carp.LoopScheduling{Nice: 20}, "carp: Config.Scheduling.Nice 20 out of range -20-19"},
		{carp.LoopScheduling{Nice: -21}, "carp: Config.Scheduling.Nice -21 out of range -20-19"},
	} {
		c := base
		c.Scheduling = tt.s
		if _, err := carp.NewGroup(c); err == nil || err.Error() != tt.want {
			t.Errorf("%+v: error %v, want %q", tt.s, err, tt.want)
		}
	}
	// Fixed at NewGroup: Reconfigure refuses a change.
	g, err := carp.NewGroup(base)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := base
	c.Transport = nil
	c.Scheduling.LockThread = true
	if err := g.Reconfigure(c); err == nil || !strings.Contains(err.Error(), "carp: Config.Scheduling") {
		t.Errorf("Reconfigure with another Scheduling: %v, want an error naming it", err)
	}
}

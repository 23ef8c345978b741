package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/internal/realtime"
)

// threadPolicies returns the scheduling policy (field 41 of stat) of each
// thread of process pid.
func threadPolicies(t *testing.T, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 38 {
			out = append(out, f[38])
		}
	}
	return out
}

// TestSubSecondDaemon: carpd --interval 100ms advertises (it becomes
// MASTER alone), reports what the interval maps to, and with --realtime
// runs every thread under SCHED_FIFO with GOMAXPROCS one below the CPUs
// (as root) or says why not.
func TestSubSecondDaemon(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a")
	p := tb.carpd("a", false, "--interval", "100ms", "--realtime", "5")
	line, _, err := p.WaitLine(0, "carpd: started", stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"interval=100ms", "advbase=0", "advskew=26", "advert_interval=101.5625ms", "master_down=304.6875ms"} {
		if !strings.Contains(line, want) {
			t.Errorf("start-up line lacks %s: %s", want, line)
		}
	}
	tb.waitEvent(0, "a up")
	tb.obs.waitAdverts(t, tb.nodes["a"].ip, 5)
	if os.Geteuid() != 0 {
		if _, _, err := p.WaitLine(0, "carpd: --realtime not permitted", stateTimeout); err != nil {
			t.Error(err)
		}
		return
	}
	if runtime.NumCPU() < 2 {
		if _, _, err := p.WaitLine(0, "carpd: --realtime refused on a single CPU", stateTimeout); err != nil {
			t.Error(err)
		}
		return
	}
	rt, _, err := p.WaitLine(0, "carpd: running under SCHED_FIFO", stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if want := "gomaxprocs=" + strconv.Itoa(realtime.Procs(runtime.NumCPU())); !strings.Contains(rt, want) {
		t.Errorf("real-time line lacks %s: %s", want, rt)
	}
	pols := threadPolicies(t, p.Pid())
	for _, pol := range pols {
		if pol != "1" {
			t.Errorf("thread policies %v, want all 1 (SCHED_FIFO)", pols)
			break
		}
	}
}

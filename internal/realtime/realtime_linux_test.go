package realtime

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFIFORange: a priority outside 1-99 is refused before anything is
// touched.
func TestFIFORange(t *testing.T) {
	for _, p := range []int{0, -1, 100} {
		if _, err := FIFO(p); err == nil || !strings.Contains(err.Error(), "out of range 1-99") {
			t.Errorf("FIFO(%d) = %v; want out of range", p, err)
		}
	}
}

// TestFIFO: as root every thread of the process ends SCHED_FIFO; as an
// ordinary user (no RLIMIT_RTPRIO) the error names the thread. The test
// binary's own threads are switched, so it runs in a child process.
func TestFIFO(t *testing.T) {
	if os.Getenv("REALTIME_CHILD") == "1" {
		n, err := FIFO(1)
		if err != nil {
			if os.Geteuid() == 0 {
				t.Fatalf("FIFO as root: %v", err)
			}
			if !strings.Contains(err.Error(), "realtime: thread ") {
				t.Fatalf("FIFO not permitted: %v; want the thread named", err)
			}
			return
		}
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		if n < 1 {
			t.Fatalf("FIFO switched %d threads", n)
		}
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			attr, err := unix.SchedGetAttr(tid, 0)
			if err != nil {
				continue // the thread ended meanwhile
			}
			if attr.Policy != unix.SCHED_FIFO {
				t.Errorf("thread %d policy %d; want SCHED_FIFO", tid, attr.Policy)
			}
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestFIFO$", "-test.v")
	cmd.Env = append(os.Environ(), "REALTIME_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

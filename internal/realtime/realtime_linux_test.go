package realtime

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
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
		if runtime.NumCPU() < 2 {
			if !errors.Is(err, ErrOneCPU) {
				t.Fatalf("FIFO on one CPU = %v; want ErrOneCPU", err)
			}
			return
		}
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
		if p, want := runtime.GOMAXPROCS(0), Procs(runtime.NumCPU()); p != want {
			t.Errorf("GOMAXPROCS %d after FIFO on %d CPUs; want %d", p, runtime.NumCPU(), want)
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
	runChild(t, "TestFIFO")
}

// TestCheck: a process put under SCHED_FIFO by someone else (here by the
// test itself, as systemd's CPUSchedulingPolicy= would before exec) gets
// its GOMAXPROCS lowered by Check; an ordinary process is left as it is.
func TestCheck(t *testing.T) {
	if os.Getenv("REALTIME_CHILD") == "1" {
		before := runtime.GOMAXPROCS(0)
		_, serr := switchAll(1) // fails for an ordinary user
		rt, err := Check()
		if err != nil {
			t.Fatal(err)
		}
		if rt != (serr == nil) {
			t.Fatalf("Check = %v after switching the threads with error %v", rt, serr)
		}
		want := before
		if rt {
			want = min(before, Procs(runtime.NumCPU()))
		}
		if p := runtime.GOMAXPROCS(0); p != want {
			t.Errorf("GOMAXPROCS %d after Check (real-time %v, %d CPUs, %d before); want %d", p, rt, runtime.NumCPU(), before, want)
		}
		return
	}
	runChild(t, "TestCheck")
}

// TestProcs: one CPU is left over, and a single CPU still runs one.
func TestProcs(t *testing.T) {
	for cpus, want := range map[int]int{1: 1, 2: 1, 3: 2, 64: 63} {
		if got := Procs(cpus); got != want {
			t.Errorf("Procs(%d) = %d; want %d", cpus, got, want)
		}
	}
}

// runChild runs the test named in a child process with REALTIME_CHILD=1:
// switching threads to a real-time policy changes the whole test binary.
func runChild(t *testing.T, name string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), "REALTIME_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestAdopt: a daemon started under a real-time policy logs it with the
// lowered GOMAXPROCS; one at normal priority logs nothing.
func TestAdopt(t *testing.T) {
	if os.Getenv("REALTIME_CHILD") == "1" {
		_, serr := switchAll(1) // fails for an ordinary user
		var buf bytes.Buffer
		Adopt(slog.New(slog.NewTextHandler(&buf, nil)), "daemon")
		out := buf.String()
		switch {
		case serr != nil && out != "":
			t.Errorf("Adopt at normal priority logged %q; want nothing", out)
		case serr == nil && runtime.NumCPU() < 2:
			if !strings.Contains(out, "daemon: started under a real-time policy on a single CPU") {
				t.Errorf("Adopt on one CPU logged %q", out)
			}
		case serr == nil:
			want := "daemon: started under a real-time policy\" gomaxprocs=" + strconv.Itoa(Procs(runtime.NumCPU()))
			if !strings.Contains(out, want) {
				t.Errorf("Adopt logged %q; want %q", out, want)
			}
		}
		return
	}
	runChild(t, "TestAdopt")
}

package realtime

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxPasses bounds the passes over the thread list: each pass catches the
// threads started during the one before; the Go runtime starts only a few.
const maxPasses = 10

// ErrOneCPU is returned by FIFO on a process that may use a single CPU:
// there a real-time Go process can stall itself (see Procs).
var ErrOneCPU = errors.New("realtime: the process may use a single CPU, where a real-time Go process can stall itself")

// FIFO makes every thread of the calling process SCHED_FIFO at prio
// (1-99) and returns how many it switched. It first lowers GOMAXPROCS to
// Procs, and refuses (ErrOneCPU) when the process may use a single CPU.
// Threads started later inherit the policy from the thread that starts
// them; a thread started during a pass by one not yet switched would be
// missed, so passes repeat until one finds nothing new. Not being
// permitted (no CAP_SYS_NICE, RLIMIT_RTPRIO too low, or a unit with
// RestrictRealtime=yes) is an error naming the thread; threads switched
// before it stay switched.
func FIFO(prio int) (int, error) {
	if prio < 1 || prio > 99 {
		return 0, fmt.Errorf("realtime: priority %d out of range 1-99", prio)
	}
	if runtime.NumCPU() < 2 {
		return 0, ErrOneCPU
	}
	limitProcs()
	return switchAll(prio)
}

// switchAll makes every thread of the process SCHED_FIFO at prio.
func switchAll(prio int) (int, error) {
	done := map[int]bool{}
	for range maxPasses {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return len(done), fmt.Errorf("realtime: listing threads: %w", err)
		}
		found := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			found = true
			attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && err != unix.ESRCH {
				return len(done), fmt.Errorf("realtime: thread %d: %w", tid, err)
			}
			done[tid] = true
		}
		if !found {
			break
		}
	}
	return len(done), nil
}

// Check reports whether the calling thread already runs under a real-time
// policy (SCHED_FIFO or SCHED_RR), as systemd's CPUSchedulingPolicy= sets
// before a daemon starts, and if so lowers GOMAXPROCS to Procs as FIFO
// does. A daemon calls it at start; a true rt with a single CPU
// (runtime.NumCPU() == 1) is the case FIFO refuses, for the daemon to warn
// about.
func Check() (rt bool, err error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return false, fmt.Errorf("realtime: reading the scheduling policy: %w", err)
	}
	if attr.Policy != unix.SCHED_FIFO && attr.Policy != unix.SCHED_RR {
		return false, nil
	}
	limitProcs()
	return true, nil
}

func limitProcs() {
	if n := Procs(runtime.NumCPU()); runtime.GOMAXPROCS(0) > n {
		runtime.GOMAXPROCS(n)
	}
}

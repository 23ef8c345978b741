package realtime

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxPasses bounds the passes over the thread list: each pass catches the
// threads started during the one before; the Go runtime starts only a few.
const maxPasses = 10

// FIFO makes every thread of the calling process SCHED_FIFO at prio
// (1-99) and returns how many it switched. Threads started later inherit
// the policy from the thread that starts them; a thread started during a
// pass by one not yet switched would be missed, so passes repeat until one
// finds nothing new. Not being permitted (no CAP_SYS_NICE, RLIMIT_RTPRIO
// too low, or a unit with RestrictRealtime=yes) is an error naming the
// thread; threads switched before it stay switched.
func FIFO(prio int) (int, error) {
	if prio < 1 || prio > 99 {
		return 0, fmt.Errorf("realtime: priority %d out of range 1-99", prio)
	}
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

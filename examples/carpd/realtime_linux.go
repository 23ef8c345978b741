package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setRealtime puts every thread of carpd under SCHED_FIFO at prio
// (--realtime), as systemd's CPUSchedulingPolicy=fifo would. All of them,
// not only the protocol loop's: the runtime notices timers and packets on
// whichever thread polls next, and a loop thread of real-time priority
// still waits for that ordinary thread (docs/sub-second.md). Threads the
// runtime starts later inherit the policy from the thread that starts
// them; so do scripts, which is why they should stay short. Not being
// permitted (no CAP_SYS_NICE or RLIMIT_RTPRIO) is logged, not fatal.
func setRealtime(log *slog.Logger, prio int) {
	done := map[int]bool{}
	// A thread started during a pass is caught by the next one; a pass
	// that finds none new ends it.
	for pass := 0; pass < 5; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			log.Warn("carpd: --realtime: cannot list threads; running at normal priority", "err", err)
			return
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
				log.Warn("carpd: --realtime not permitted; running at normal priority", "realtime", prio,
					"err", fmt.Errorf("thread %d: %w", tid, err))
				return
			}
			done[tid] = true
		}
		if !found {
			break
		}
	}
	log.Info("carpd: running under SCHED_FIFO", "realtime", prio, "threads", len(done))
}

package main

import (
	"errors"
	"log/slog"
	"runtime"

	"github.com/gocarp/gocarp/internal/realtime"
)

// setRealtime puts every thread of carpd under SCHED_FIFO at prio
// (--realtime), as systemd's CPUSchedulingPolicy=fifo would. All of them,
// not only the protocol loop's: the runtime notices timers and packets on
// whichever thread polls next, and a loop thread of real-time priority
// still waits for that ordinary thread (docs/sub-second.md). Threads the
// runtime starts later inherit the policy from the thread that starts
// them; so do scripts, which is why they should stay short. GOMAXPROCS
// is lowered to leave one CPU over (realtime.Procs), without which the
// runtime's threads can stall one another. Not being permitted (no
// CAP_SYS_NICE or RLIMIT_RTPRIO), or a single CPU, is logged, not fatal.
func setRealtime(log *slog.Logger, prio int) {
	n, err := realtime.FIFO(prio)
	switch {
	case errors.Is(err, realtime.ErrOneCPU):
		log.Warn("carpd: --realtime refused on a single CPU; running at normal priority", "realtime", prio, "err", err)
		return
	case err != nil:
		log.Warn("carpd: --realtime not permitted; running at normal priority", "realtime", prio, "err", err)
		return
	}
	log.Info("carpd: running under SCHED_FIFO", "realtime", prio, "threads", n, "gomaxprocs", runtime.GOMAXPROCS(0))
}

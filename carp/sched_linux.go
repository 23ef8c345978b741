package carp

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// applyScheduling locks the calling goroutine (the protocol loop) to its
// thread and sets that thread's policy as Config.Scheduling asks. It never
// unlocks: a thread whose priority was changed must not go back to the
// runtime's pool, so it ends with the loop. Failing to set a priority is
// not an error: the loop runs as it would without, and says so once.
func (r *run) applyScheduling() {
	s := r.g.cfg.Scheduling
	if !s.locked() {
		return
	}
	runtime.LockOSThread()
	var attr unix.SchedAttr
	switch {
	case s.RealtimePriority != 0:
		attr = unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(s.RealtimePriority)}
	case s.Nice != 0:
		attr = unix.SchedAttr{Policy: unix.SCHED_NORMAL, Nice: int32(s.Nice)}
	default:
		return
	}
	// pid 0 is the calling thread.
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		r.g.log.Warn("carp: protocol loop scheduling not permitted; running at normal priority",
			"realtime_priority", s.RealtimePriority, "nice", s.Nice, "err", err)
		return
	}
	r.g.log.Debug("carp: protocol loop scheduling set", "realtime_priority", s.RealtimePriority, "nice", s.Nice)
}

//go:build !linux

package carp

import "runtime"

// applyScheduling locks the loop to its thread if asked; priorities are
// Linux only and are logged as ignored elsewhere.
func (r *run) applyScheduling() {
	s := r.g.cfg.Scheduling
	if !s.locked() {
		return
	}
	runtime.LockOSThread()
	if s.RealtimePriority != 0 || s.Nice != 0 {
		r.g.log.Warn("carp: protocol loop priorities are Linux only; running at normal priority",
			"realtime_priority", s.RealtimePriority, "nice", s.Nice)
	}
}

package carp

import "fmt"

// LoopScheduling asks for operating-system help in keeping the protocol
// loop's timing on a busy host. Every field is opt-in; the zero value
// leaves the loop an ordinary goroutine. What it buys, measured, is in
// BENCHMARKS.md ("Advert timing under load"); docs/sub-second.md says
// when it is worth it.
//
// The protocol loop already allocates nothing per advert sent or received
// (RawTransport included), so the garbage collector never makes it do
// marking work before an advert goes out.
type LoopScheduling struct {
	// LockThread runs the protocol loop on an OS thread of its own
	// (runtime.LockOSThread for its whole life; the thread ends with the
	// loop and never runs other goroutines). Implied by RealtimePriority
	// and Nice, whose settings belong to that thread only.
	LockThread bool
	// RealtimePriority, 1-99, runs the loop's thread under SCHED_FIFO at
	// this priority, ahead of every ordinary process (Linux only). It
	// needs CAP_SYS_NICE or an RLIMIT_RTPRIO allowance; without, the
	// group logs a warning and runs at normal priority. Zero: off.
	RealtimePriority int
	// Nice, -20 to 19, sets the nice value of the loop's thread when
	// RealtimePriority is 0 (Linux only). Lowering it below the process's
	// needs CAP_SYS_NICE or RLIMIT_NICE; without, a warning is logged.
	// Zero: unchanged.
	Nice int
}

// locked reports whether the loop needs a thread of its own.
func (s LoopScheduling) locked() bool {
	return s.LockThread || s.RealtimePriority != 0 || s.Nice != 0
}

// validate checks the ranges.
func (s LoopScheduling) validate() error {
	if s.RealtimePriority < 0 || s.RealtimePriority > 99 {
		return fmt.Errorf("carp: Config.Scheduling.RealtimePriority %d out of range 0-99", s.RealtimePriority)
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fmt.Errorf("carp: Config.Scheduling.Nice %d out of range -20-19", s.Nice)
	}
	return nil
}

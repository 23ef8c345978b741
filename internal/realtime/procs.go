package realtime

// Procs is the largest GOMAXPROCS under which a Go process that may use
// cpus CPUs can run under a real-time policy: one fewer than cpus, at
// least 1.
//
// Why: the Go runtime's threads sometimes wait for one another in short
// busy loops, counting on the thread they wait for to get a CPU soon. Under
// SCHED_FIFO no thread is preempted by another of the same priority, so if
// every CPU is held by a thread of the process that waits this way for a
// third one, the third never runs and the process stops for good (seen
// with GOMAXPROCS at the CPU count: docs/sub-second.md). At most GOMAXPROCS
// threads run Go code at a time, and the others block rather than spin, so
// with one CPU left over the thread waited for always gets one.
func Procs(cpus int) int { return max(1, cpus-1) }

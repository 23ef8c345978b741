// Package realtime puts a whole process under the SCHED_FIFO scheduling
// policy: every thread, as systemd's CPUSchedulingPolicy=fifo does for a
// service. A daemon with sub-second timers uses it so that a busy machine
// cannot delay its adverts (docs/sub-second.md explains why every thread
// and not only the protocol loop's). FIFO and Check (for a policy the
// service manager set) also lower GOMAXPROCS to one below the CPUs
// (Procs): without that, the Go runtime's threads can stall one another
// for good under a real-time policy. It is a runtime helper of the
// daemons and measuring tools, not part of the library's API.
package realtime

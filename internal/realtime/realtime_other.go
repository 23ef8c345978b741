//go:build !linux

package realtime

import "errors"

// ErrOneCPU is returned by FIFO on a process that may use a single CPU.
var ErrOneCPU = errors.New("realtime: the process may use a single CPU, where a real-time Go process can stall itself")

// FIFO is Linux only.
func FIFO(prio int) (int, error) {
	return 0, errors.New("realtime: SCHED_FIFO is supported on Linux only")
}

// Check is Linux only: it reports no real-time policy.
func Check() (bool, error) { return false, nil }

//go:build !linux

package realtime

import "errors"

// FIFO is Linux only.
func FIFO(prio int) (int, error) {
	return 0, errors.New("realtime: SCHED_FIFO is supported on Linux only")
}

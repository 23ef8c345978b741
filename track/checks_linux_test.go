package track

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

func mkfifo(path string) error { return unix.Mkfifo(path, 0o600) }

// watchExit opens a pidfd for pid and returns a function that waits up to
// a bound for the process to exit (the pidfd becomes readable).
func watchExit(pid int) (func(time.Duration) error, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return func(bound time.Duration) error {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, int(bound.Milliseconds()))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("still running after %v", bound)
			}
			return nil
		}
	}, nil
}

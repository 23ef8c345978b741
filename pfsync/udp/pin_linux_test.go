package udp

import (
	"errors"

	"golang.org/x/sys/unix"
)

// pinToOneCPU binds the calling thread to one CPU. Datagrams sent over
// loopback or a veth wait in a queue of the sending CPU: sent from one CPU
// they are delivered in the order sent, so a datagram sent after one that
// must be dropped proves, when it arrives, that the drop was judged. Call it
// only on a locked thread that dies afterwards (netns.Do, or a goroutine
// that never unlocks).
func pinToOneCPU() error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return err
	}
	for cpu := range 8 * 1024 {
		if set.IsSet(cpu) {
			set.Zero()
			set.Set(cpu)
			return unix.SchedSetaffinity(0, &set)
		}
	}
	return errors.New("no CPU in the thread's affinity set")
}

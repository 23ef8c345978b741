//go:build unix

package track

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the command in a new process group and makes the
// context's cancellation kill that group, not only the leader.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

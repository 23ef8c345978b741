//go:build !unix

package track

import "os/exec"

// setProcessGroup leaves the default: the context kills the process only.
func setProcessGroup(cmd *exec.Cmd) {}

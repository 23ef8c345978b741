package main

import (
	"errors"
	"fmt"
	"syscall"
)

// needCap names the capability an operation lacked: opening the raw CARP
// sockets fails with EPERM without CAP_NET_RAW, and the bare "operation not
// permitted" does not say what to grant.
func needCap(err error, capability string) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: carpd needs %s (run it as root, or grant it: setcap cap_net_raw,cap_net_admin+ep, or AmbientCapabilities= in the unit)", err, capability)
	}
	return err
}

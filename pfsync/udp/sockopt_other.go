//go:build !linux

package udp

import (
	"errors"
	"fmt"
	"syscall"
)

func bindControl(ifname string) func(network, address string, c syscall.RawConn) error {
	if ifname == "" {
		return nil
	}
	return func(_, _ string, _ syscall.RawConn) error {
		return fmt.Errorf("udp: binding to interface %q: %w", ifname, errors.ErrUnsupported)
	}
}

func multicastAllOff(syscall.RawConn, bool) error {
	return fmt.Errorf("udp: IP_MULTICAST_ALL: %w", errors.ErrUnsupported)
}

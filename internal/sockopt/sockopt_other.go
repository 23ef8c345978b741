//go:build !linux

package sockopt

import (
	"errors"
	"fmt"
	"syscall"
)

// SetMulticastAll is Linux-only; elsewhere it returns errors.ErrUnsupported.
func SetMulticastAll(c syscall.RawConn, ipv6, on bool) error {
	return fmt.Errorf("sockopt: IP_MULTICAST_ALL: %w", errors.ErrUnsupported)
}

// BindToDevice is Linux-only; elsewhere it returns errors.ErrUnsupported.
func BindToDevice(c syscall.RawConn, ifname string) error {
	return fmt.Errorf("sockopt: SO_BINDTODEVICE: %w", errors.ErrUnsupported)
}

// GetInt is Linux-only; elsewhere it returns errors.ErrUnsupported.
func GetInt(c syscall.RawConn, level, opt int) (int, error) {
	return 0, fmt.Errorf("sockopt: getsockopt: %w", errors.ErrUnsupported)
}

// SetReceiveBuffer returns errors.ErrUnsupported outside Linux.
func SetReceiveBuffer(c syscall.RawConn, n int) error {
	return fmt.Errorf("sockopt: SO_RCVBUF: %w", errors.ErrUnsupported)
}

// Queued returns errors.ErrUnsupported outside Linux.
func Queued(c syscall.RawConn) (int, error) {
	return 0, fmt.Errorf("sockopt: SIOCINQ: %w", errors.ErrUnsupported)
}

package udp

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindControl returns a net.ListenConfig.Control that binds the socket to
// ifname (SO_BINDTODEVICE), or nil when ifname is empty.
func bindControl(ifname string) func(network, address string, c syscall.RawConn) error {
	if ifname == "" {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		return setsockopt(c, func(fd int) error {
			if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); err != nil {
				return fmt.Errorf("udp: SO_BINDTODEVICE %q: %w", ifname, err)
			}
			return nil
		})
	}
}

// multicastAllOff clears IP_MULTICAST_ALL (IPV6_MULTICAST_ALL), so the
// socket receives only the groups it joined itself, not those any other
// socket of the host joined (Linux defaults to all).
func multicastAllOff(c syscall.RawConn, v6 bool) error {
	return setsockopt(c, func(fd int) error {
		level, opt, name := unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, "IP_MULTICAST_ALL"
		if v6 {
			level, opt, name = unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, "IPV6_MULTICAST_ALL"
		}
		if err := unix.SetsockoptInt(fd, level, opt, 0); err != nil {
			return fmt.Errorf("udp: %s 0: %w", name, err)
		}
		return nil
	})
}

// setsockopt runs fn on the socket's descriptor and returns both the
// RawConn's error and fn's.
func setsockopt(c syscall.RawConn, fn func(fd int) error) error {
	var ferr error
	cerr := c.Control(func(fd uintptr) { ferr = fn(int(fd)) })
	if cerr != nil {
		cerr = fmt.Errorf("udp: raw socket: %w", cerr)
	}
	return errors.Join(cerr, ferr)
}

package sockopt

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetMulticastAll sets IP_MULTICAST_ALL (ipv6 false) or IPV6_MULTICAST_ALL
// (ipv6 true, Linux 4.20 or later). Pass false to receive only the groups
// this socket joined itself, on the interfaces it joined them on.
func SetMulticastAll(c syscall.RawConn, ipv6, on bool) error {
	v := 0
	if on {
		v = 1
	}
	if ipv6 {
		return setInt(c, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, v, "IPV6_MULTICAST_ALL")
	}
	return setInt(c, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, v, "IP_MULTICAST_ALL")
}

// BindToDevice sets SO_BINDTODEVICE: the socket only receives packets that
// arrived on ifname and sends out of it. An empty name removes the binding.
func BindToDevice(c syscall.RawConn, ifname string) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
	})
	if err != nil {
		return fmt.Errorf("sockopt: SO_BINDTODEVICE %q: %w", ifname, err)
	}
	if serr != nil {
		return fmt.Errorf("sockopt: SO_BINDTODEVICE %q: %w", ifname, serr)
	}
	return nil
}

// GetInt reads an integer socket option, for tests and diagnostics.
func GetInt(c syscall.RawConn, level, opt int) (int, error) {
	var (
		v    int
		serr error
	)
	err := c.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), level, opt)
	})
	if err != nil {
		return 0, fmt.Errorf("sockopt: getsockopt %d/%d: %w", level, opt, err)
	}
	if serr != nil {
		return 0, fmt.Errorf("sockopt: getsockopt %d/%d: %w", level, opt, serr)
	}
	return v, nil
}

// Queued returns how many bytes wait in the socket's receive queue (for a
// datagram or raw socket, the length of the next datagram; 0 when empty).
func Queued(c syscall.RawConn) (int, error) {
	var (
		n    int
		serr error
	)
	err := c.Control(func(fd uintptr) {
		n, serr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	if err != nil {
		return 0, fmt.Errorf("sockopt: SIOCINQ: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("sockopt: SIOCINQ: %w", serr)
	}
	return n, nil
}

func setInt(c syscall.RawConn, level, opt, v int, name string) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), level, opt, v)
	})
	if err != nil {
		return fmt.Errorf("sockopt: %s=%d: %w", name, v, err)
	}
	if serr != nil {
		return fmt.Errorf("sockopt: %s=%d: %w", name, v, serr)
	}
	return nil
}

// SetReceiveBuffer sizes the socket receive buffer to n bytes. It uses
// SO_RCVBUFFORCE, which may exceed net.core.rmem_max, and falls back to
// SO_RCVBUF (capped by the kernel at rmem_max) without CAP_NET_ADMIN.
func SetReceiveBuffer(c syscall.RawConn, n int) error {
	err := setInt(c, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n, "SO_RCVBUFFORCE")
	if errors.Is(err, unix.EPERM) {
		return setInt(c, unix.SOL_SOCKET, unix.SO_RCVBUF, n, "SO_RCVBUF")
	}
	return err
}

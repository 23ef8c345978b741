package udp

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/gocarp/gocarp/internal/sockopt"
)

// bindControl returns a net.ListenConfig.Control that binds the socket to
// ifname (SO_BINDTODEVICE), or nil when ifname is empty.
func bindControl(ifname string) func(network, address string, c syscall.RawConn) error {
	if ifname == "" {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		if err := sockopt.BindToDevice(c, ifname); err != nil {
			return fmt.Errorf("udp: %w", err)
		}
		return nil
	}
}

// multicastAllOff clears IP_MULTICAST_ALL (IPV6_MULTICAST_ALL), so the
// socket receives only the groups it joined itself, not those any other
// socket of the host joined (Linux defaults to all).
func multicastAllOff(c syscall.RawConn, v6 bool) error {
	if err := sockopt.SetMulticastAll(c, v6, false); err != nil {
		return fmt.Errorf("udp: %w", err)
	}
	return nil
}

// setReadBuffer sizes the receive buffer to n bytes: with SO_RCVBUFFORCE
// where allowed (a bulk sync arrives in bursts far larger than the kernel's
// default of about 200 KiB), else as far as net.core.rmem_max permits.
func setReadBuffer(conn *net.UDPConn, n int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp: receive buffer: %w", err)
	}
	err = sockopt.SetReceiveBuffer(rc, n)
	if errors.Is(err, errors.ErrUnsupported) {
		err = conn.SetReadBuffer(n)
	}
	if err != nil {
		return fmt.Errorf("udp: receive buffer of %d bytes: %w", n, err)
	}
	return nil
}

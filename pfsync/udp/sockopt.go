package udp

import (
	"fmt"
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

package carp

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/internal/sockopt"
)

// openSend opens send-only sockets bound to interface name
// (RawConfig.SendInterface), one per open family. The sources stay the
// transport's: the kernel sends a frame with the send interface's MAC.
// IPv6 adverts to unicast peers keep leaving from the transport's own
// interface: the virtual-MAC link has no IPv6 address and no route, so
// the kernel finds no way to a peer through it. (IPv4 has none either, but
// the kernel takes a destination as on-link when told the interface.)
func (t *RawTransport) openSend(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("carp: RawConfig.SendInterface %q: %w", name, err)
	}
	for i, f := range []Family{IPv4, IPv6} {
		if t.snd[i] == nil {
			continue
		}
		c, rc, err := rawOpenSend(f, ifi)
		if err != nil {
			return err
		}
		t.out = append(t.out, c)
		t.via[i] = newRawSender(f, rc, t.Source(f), ifi.Index)
	}
	return nil
}

// rawOpenSend opens a raw socket that only sends adverts of family f out
// of ifi. It receives nothing: a filter drops every packet, so protocol
// 112 traffic seen on ifi does not queue up unread. The IPv6 socket may
// send from an address ifi does not carry (IPV6_FREEBIND): the source is
// the parent's link-local address, and the virtual-MAC link has none.
func rawOpenSend(f Family, ifi *net.Interface) (net.PacketConn, syscall.RawConn, error) {
	network, addr := "ip4:112", "0.0.0.0"
	if f == IPv6 {
		network, addr = "ip6:112", "::"
	}
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("carp: %v send socket on %s: %w", f, ifi.Name, err)
	}
	fail := func(what string, err error) (net.PacketConn, syscall.RawConn, error) {
		c.Close()
		return nil, nil, fmt.Errorf("carp: %v send socket on %s: %s: %w", f, ifi.Name, what, err)
	}
	rc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		return fail("raw conn", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		// ret #0: accept no packet.
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: 1, Filter: &[]unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K}}[0]})
		if serr == nil && f == IPv6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fail("drop filter / freebind", err)
	}
	if err := sockopt.BindToDevice(rc, ifi.Name); err != nil {
		return fail("bind to device", err)
	}
	if f == IPv4 {
		p := ipv4.NewPacketConn(c)
		for what, set := range map[string]func() error{
			"multicast interface":    func() error { return p.SetMulticastInterface(ifi) },
			"multicast TTL":          func() error { return p.SetMulticastTTL(rawTTL) },
			"TTL":                    func() error { return p.SetTTL(rawTTL) },
			"multicast loopback off": func() error { return p.SetMulticastLoopback(false) },
			"TOS":                    func() error { return p.SetTOS(rawTOS) },
		} {
			if err := set(); err != nil {
				return fail(what, err)
			}
		}
		return c, rc, nil
	}
	p := ipv6.NewPacketConn(c)
	for what, set := range map[string]func() error{
		"multicast interface":    func() error { return p.SetMulticastInterface(ifi) },
		"multicast hop limit":    func() error { return p.SetMulticastHopLimit(rawTTL) },
		"hop limit":              func() error { return p.SetHopLimit(rawTTL) },
		"multicast loopback off": func() error { return p.SetMulticastLoopback(false) },
	} {
		if err := set(); err != nil {
			return fail(what, err)
		}
	}
	return c, rc, nil
}

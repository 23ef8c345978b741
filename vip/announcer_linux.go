//go:build linux

package vip

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// dropAll is a BPF program that accepts no packet: the announcer's sockets
// only send.
var dropAll = []bpf.RawInstruction{{Op: 0x06, K: 0}} // ret #0

// NewPacketAnnouncer opens the AF_PACKET sockets of an announcer on ifi
// (needs CAP_NET_RAW). The sockets live in the network namespace of the
// calling thread. A nil cfg means all defaults.
func NewPacketAnnouncer(ifi *net.Interface, cfg *AnnouncerConfig) (*PacketAnnouncer, error) {
	if ifi == nil {
		return nil, fmt.Errorf("vip: announcer: nil interface")
	}
	pc := &packet.Config{Filter: dropAll}
	arpConn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, pc)
	if err != nil {
		return nil, fmt.Errorf("vip: announcer on %s: ARP socket: %w", ifi.Name, err)
	}
	ip6Conn, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, pc)
	if err != nil {
		err = fmt.Errorf("vip: announcer on %s: IPv6 socket: %w", ifi.Name, err)
		if cerr := arpConn.Close(); cerr != nil {
			err = fmt.Errorf("%w (closing the ARP socket: %v)", err, cerr)
		}
		return nil, err
	}
	a, err := newPacketAnnouncer(ifi, arpConn, ip6Conn, func() (netip.Addr, error) { return linkLocal(ifi) }, cfg)
	if err != nil {
		if cerr := arpConn.Close(); cerr != nil {
			err = fmt.Errorf("%w (closing the ARP socket: %v)", err, cerr)
		}
		if cerr := ip6Conn.Close(); cerr != nil {
			err = fmt.Errorf("%w (closing the IPv6 socket: %v)", err, cerr)
		}
		return nil, err
	}
	return a, nil
}

package vip

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// Ethernet and IPv6 constants of the frames the announcer builds.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	ipv6HeaderLen = 40
	protoICMPv6   = 58
)

// zeroMAC is the target hardware address of a gratuitous ARP request:
// "ignored and SHOULD be set to all zeroes" (RFC 5227 §2.3, ARP
// Announcement); Linux's and OpenBSD's own announcements do the same.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// allNodesMAC is the Ethernet multicast address of ff02::1 (RFC 2464 §7).
var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}

// garpFrame returns a broadcast Ethernet frame carrying a gratuitous ARP
// packet for addr with sender = target = addr.
//
// The request form (RFC 5227 §2.3 "ARP Announcement") has a zero target
// hardware address. The reply form (RFC 5944 §4.6) carries mac as the target
// hardware address too: Linux only treats a reply as gratuitous, and so
// creates or overrides a cache entry with it, when the target hardware
// address equals the sender's (arp_is_garp in net/ipv4/arp.c). Clients
// differ in which form they honour, so the announcer sends both, as MetalLB
// does.
func garpFrame(op arp.Operation, mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	if len(mac) != 6 {
		// arp.NewPacket stores the length in a byte: a 256-byte address
		// would wrap to 0 (found by FuzzFrames, testdata/fuzz).
		return nil, fmt.Errorf("vip: gratuitous ARP for %v: hardware address %v is not 6 bytes", addr, mac)
	}
	tha := zeroMAC
	if op == arp.OperationReply {
		tha = mac
	}
	p, err := arp.NewPacket(op, mac, addr, tha, addr)
	if err != nil {
		return nil, fmt.Errorf("vip: gratuitous ARP %v for %v from %v: %w", op, addr, mac, err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("vip: gratuitous ARP %v for %v: %w", op, addr, err)
	}
	f := ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("vip: gratuitous ARP %v for %v: ethernet frame: %w", op, addr, err)
	}
	return b, nil
}

// naFrame returns a complete Ethernet/IPv6/ICMPv6 frame carrying an
// unsolicited Neighbor Advertisement for target (RFC 4861 §7.2.6): to
// ff02::1 (33:33:00:00:00:01), hop limit 255 (receivers drop anything else,
// RFC 4861 §7.1.2), Solicited clear, Override set so receivers replace the cached
// link-layer address, Router set when router is true (OpenBSD sets it when
// forwarding), and a Target Link-Layer Address option carrying mac.
//
// src is the IPv6 source, normally the interface's link-local address: some
// stacks (OpenBSD's "ND packet from non-neighbor") drop NAs whose source is
// not on-link.
func naFrame(mac net.HardwareAddr, src, target netip.Addr, router bool) ([]byte, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("vip: neighbor advertisement for %v: hardware address %v is not 6 bytes", target, mac)
	}
	if !src.Is6() || src.Is4In6() || !target.Is6() || target.Is4In6() {
		return nil, fmt.Errorf("vip: neighbor advertisement for %v from %v: not IPv6 addresses", target, src)
	}
	src, target = src.WithZone(""), target.WithZone("")
	dst := netip.IPv6LinkLocalAllNodes()
	na := &ndp.NeighborAdvertisement{
		Router:        router,
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      mac,
		}},
	}
	icmp, err := ndp.MarshalMessageChecksum(na, src, dst)
	if err != nil {
		return nil, fmt.Errorf("vip: neighbor advertisement for %v: %w", target, err)
	}

	b := make([]byte, 0, 14+ipv6HeaderLen+len(icmp))
	// Ethernet II header.
	b = append(b, allNodesMAC...)
	b = append(b, mac...)
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
	// IPv6 header (RFC 8200 §3).
	b = append(b, 0x60, 0, 0, 0) // version 6, traffic class 0, flow label 0
	b = binary.BigEndian.AppendUint16(b, uint16(len(icmp)))
	b = append(b, protoICMPv6, ndp.HopLimit)
	s16, d16 := src.As16(), dst.As16()
	b = append(b, s16[:]...)
	b = append(b, d16[:]...)
	// ICMPv6 Neighbor Advertisement, checksum computed over the pseudo-header.
	b = append(b, icmp...)
	return b, nil
}

package carp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Wire constants of the VRRP version 3 advertisement (RFC 5798, section 5).
const (
	// VRRPVersion is the VRRP version this package speaks (high nibble of
	// byte 0). Version 2 (RFC 3768) is recognised and rejected.
	VRRPVersion = 3
	// VRRPHeaderLen is the length of the fixed part of a VRRPv3
	// advertisement, before the addresses.
	VRRPHeaderLen = 8
	// VRRPMaxInterval is the largest advertisement interval, in
	// centiseconds, that fits the 12-bit field (40.95 s).
	VRRPMaxInterval = 0x0fff
	// VRRPPriorityOwner is the priority of the node that owns the virtual
	// addresses: it takes over at once and ignores other masters.
	VRRPPriorityOwner = 255
	// VRRPPriorityStop is the priority a master sends when it stops: the
	// backups take over after their skew time instead of the master-down
	// interval.
	VRRPPriorityStop = 0
)

// Errors reported by [VRRPAdvertisement.Unmarshal]. Decoding errors wrap
// exactly one of them, so a receiver can count each kind with errors.Is.
var (
	// ErrVRRPShort: fewer than 8 bytes, or fewer addresses than the
	// count byte says.
	ErrVRRPShort = errors.New("carp: vrrp advertisement too short")
	// ErrVRRPCount: the length does not match the address count (more
	// bytes than count addresses, a partial address, or a count of 0).
	ErrVRRPCount = errors.New("carp: vrrp address count does not match length")
	// ErrVRRPChecksum: the checksum over the pseudo-header and the
	// message does not fold to zero.
	ErrVRRPChecksum = errors.New("carp: bad vrrp checksum")
	// ErrVRRPv2: the packet is VRRP version 2 (RFC 3768), which a VRRPv3
	// router may be configured to accept but this package does not: it is
	// recognised so that it is counted apart and not obeyed.
	ErrVRRPv2 = errors.New("carp: packet is VRRPv2, not VRRPv3")
	// ErrNotVRRP: the packet is a CARP advertisement (version 2, 36 bytes,
	// byte 3 = 7), which shares IP protocol 112 with VRRP.
	ErrNotVRRP = errors.New("carp: packet is CARP, not VRRP")
	// ErrVRRPVersion: a version nibble other than 2 or 3.
	ErrVRRPVersion = errors.New("carp: bad vrrp version")
	// ErrVRRPType: version 3 with a type other than 1 (advertisement).
	ErrVRRPType = errors.New("carp: bad vrrp message type")
)

// VRRPAdvertisement is a VRRP version 3 advertisement, the payload of an IP
// protocol 112 packet (RFC 5798, section 5.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  |     VRID      |   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      IPvX Address(es)                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Version, type, count and checksum are not fields: they are 3, 1, the
// length of Addrs and computed when encoding, and checked when decoding.
// Unlike CARP's, the checksum covers an IP pseudo-header, so encoding and
// decoding take the packet's IP source and destination. The reserved bits
// are sent as zero and ignored on receive. Like [Advertisement] it is a pure
// value. The zero value encodes as VRID 0, which no receiver accepts.
type VRRPAdvertisement struct {
	VRID uint8 // virtual router id, 1-255
	// Priority is 255 for the owner of the addresses, 1-254 for a backup
	// (100 by default), 0 in the adverts of a master that stops.
	Priority uint8
	// Interval is the Max Adver Int in centiseconds, 1-4095.
	Interval uint16
	// Addrs are the virtual addresses, all of the IP family of the
	// packet; IPv4 in an IPv4 packet, IPv6 in an IPv6 packet. Zones are
	// not sent.
	Addrs []netip.Addr
}

// vrrpAddrLen returns the address length for the family of src, or 0 if src
// is neither IPv4 nor IPv6.
func vrrpAddrLen(src netip.Addr) int {
	switch {
	case src.Unmap().Is4():
		return 4
	case src.Is6():
		return 16
	}
	return 0
}

// Append appends the wire form of a to b, with the checksum computed over
// the pseudo-header of a packet from src to dst. It fails if src and dst are
// not of one family, if an address is not of that family, if there are no
// or more than 255 addresses, or if Interval does not fit 12 bits; b is
// then returned unchanged.
func (a VRRPAdvertisement) Append(b []byte, src, dst netip.Addr) ([]byte, error) {
	alen := vrrpAddrLen(src)
	if alen == 0 || vrrpAddrLen(dst) != alen {
		return b, fmt.Errorf("carp: vrrp source %v and destination %v are not of one IP family", src, dst)
	}
	if len(a.Addrs) == 0 || len(a.Addrs) > 255 {
		return b, fmt.Errorf("carp: vrrp address count %d out of range 1-255", len(a.Addrs))
	}
	if a.Interval > VRRPMaxInterval {
		return b, fmt.Errorf("carp: vrrp interval %d out of range 0-%d", a.Interval, VRRPMaxInterval)
	}
	for _, v := range a.Addrs {
		if vrrpAddrLen(v) != alen {
			return b, fmt.Errorf("carp: vrrp address %v is not of the packet's family (source %v)", v, src)
		}
	}
	n := len(b)
	b = append(b, VRRPVersion<<4|TypeAdvertisement, a.VRID, a.Priority, uint8(len(a.Addrs)))
	b = binary.BigEndian.AppendUint16(b, a.Interval)
	b = append(b, 0, 0)
	for _, v := range a.Addrs {
		if alen == 4 {
			v4 := v.Unmap().As4()
			b = append(b, v4[:]...)
		} else {
			v16 := v.As16()
			b = append(b, v16[:]...)
		}
	}
	binary.BigEndian.PutUint16(b[n+6:], vrrpChecksum(b[n:], src, dst))
	return b, nil
}

// Unmarshal decodes a VRRPv3 advertisement from the IP protocol 112 payload
// b of a packet from src to dst. It returns an error wrapping one of the
// ErrVRRP... sentinels (or ErrNotVRRP) and leaves a unchanged if b is not a
// valid VRRPv3 advertisement. The checks run in this order:
//   - fewer than 8 bytes is ErrVRRPShort;
//   - version 2 is ErrNotVRRP if it has CARP's shape (36 bytes, byte 3 = 7),
//     else ErrVRRPv2; a version other than 2 or 3 is ErrVRRPVersion;
//   - a type other than 1 is ErrVRRPType;
//   - a count of zero, or a length other than 8 + count addresses of the
//     family of src, is ErrVRRPCount (ErrVRRPShort when too short);
//   - a checksum that does not fold to zero is ErrVRRPChecksum.
//
// The addresses returned do not alias b.
func (a *VRRPAdvertisement) Unmarshal(b []byte, src, dst netip.Addr) error {
	if len(b) < VRRPHeaderLen {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrVRRPShort, len(b), VRRPHeaderLen)
	}
	version, typ := b[0]>>4, b[0]&0x0f
	switch version {
	case VRRPVersion:
	case Version:
		if typ == TypeAdvertisement && b[3] == AuthLen && len(b) == AdvertisementLen {
			return fmt.Errorf("%w: version 2, %d bytes", ErrNotVRRP, len(b))
		}
		return fmt.Errorf("%w: vrid %d", ErrVRRPv2, b[1])
	default:
		return fmt.Errorf("%w: %d, want %d", ErrVRRPVersion, version, VRRPVersion)
	}
	if typ != TypeAdvertisement {
		return fmt.Errorf("%w: %d, want %d", ErrVRRPType, typ, TypeAdvertisement)
	}
	alen := vrrpAddrLen(src)
	if alen == 0 || vrrpAddrLen(dst) != alen {
		return fmt.Errorf("%w: source %v and destination %v are not of one IP family", ErrVRRPCount, src, dst)
	}
	count := int(b[3])
	want := VRRPHeaderLen + count*alen
	switch {
	case count == 0:
		return fmt.Errorf("%w: count 0", ErrVRRPCount)
	case len(b) < want:
		return fmt.Errorf("%w: %d bytes for %d addresses, want %d", ErrVRRPShort, len(b), count, want)
	case len(b) > want:
		return fmt.Errorf("%w: %d bytes for %d addresses, want %d", ErrVRRPCount, len(b), count, want)
	}
	if vrrpChecksum(b, src, dst) != 0 {
		return fmt.Errorf("%w: 0x%04x", ErrVRRPChecksum, binary.BigEndian.Uint16(b[6:]))
	}
	addrs := make([]netip.Addr, count)
	for i := range addrs {
		p := b[VRRPHeaderLen+i*alen:]
		if alen == 4 {
			addrs[i] = netip.AddrFrom4([4]byte(p))
		} else {
			addrs[i] = netip.AddrFrom16([16]byte(p))
		}
	}
	*a = VRRPAdvertisement{
		VRID:     b[1],
		Priority: b[2],
		Interval: binary.BigEndian.Uint16(b[4:]) & VRRPMaxInterval,
		Addrs:    addrs,
	}
	return nil
}

// vrrpShaped reports whether b has the shape of a VRRPv3 advert of family f:
// version 3 and a length that matches the address count. Transports use it
// to refuse payloads that are neither CARP nor VRRP.
func vrrpShaped(f Family, b []byte) bool {
	if len(b) < VRRPHeaderLen || b[0]>>4 != VRRPVersion || b[3] == 0 {
		return false
	}
	alen := 4
	if f == IPv6 {
		alen = 16
	}
	return len(b) == VRRPHeaderLen+int(b[3])*alen
}

// vrrpChecksum returns the Internet checksum of b preceded by the IPv4 or
// IPv6 pseudo-header of a protocol 112 packet from src to dst (the one TCP
// and UDP use, RFC 768 and RFC 8200 section 8.1). Over a message whose
// checksum field is zero it is the value to store; over a message with a
// valid checksum it is zero.
func vrrpChecksum(b []byte, src, dst netip.Addr) uint16 {
	var sum uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(p[0])<<8 | uint32(p[1])
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	if src.Unmap().Is4() {
		s, d := src.Unmap().As4(), dst.Unmap().As4()
		add(s[:])
		add(d[:])
	} else {
		s, d := src.As16(), dst.As16()
		add(s[:])
		add(d[:])
	}
	// IPv4: zero, protocol, 16-bit length; IPv6: 32-bit length, three
	// zero bytes, next header. Both sum to protocol + length for the
	// lengths that fit an IP packet.
	sum += 112 + uint32(len(b)&0xffff) + uint32(len(b)>>16)
	add(b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// vrrpRetarget returns a copy of the VRRPv3 advert b with its checksum
// computed for a packet from src to dst: a transport that sends one
// advert to several unicast peers sends each a checksum of its own.
func vrrpRetarget(b []byte, src, dst netip.Addr) []byte {
	c := append([]byte(nil), b...)
	if len(c) < VRRPHeaderLen {
		return c
	}
	c[6], c[7] = 0, 0
	binary.BigEndian.PutUint16(c[6:], vrrpChecksum(c, src, dst))
	return c
}

package carp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants of the CARP version 2 advertisement (OpenBSD ip_carp.h).
const (
	// AdvertisementLen is the length of a CARP advertisement: the whole IP
	// payload of an IP protocol 112 CARP packet.
	AdvertisementLen = 36
	// Version is the only CARP version (high nibble of byte 0).
	Version = 2
	// TypeAdvertisement is the only CARP message type (low nibble of byte 0).
	TypeAdvertisement = 1
	// AuthLen is the length of counter and HMAC in 32-bit words (byte 3).
	// Every implementation sends 7; it is also what tells CARP apart from
	// VRRPv2, which has the address count in that byte.
	AuthLen = 7
	// DigestLen is the length of the HMAC-SHA1 digest at offset 16.
	DigestLen = 20
)

// Errors reported by [Advertisement.UnmarshalBinary] and the receive path.
// Decoding errors wrap exactly one of them, so a caller can count each kind
// with errors.Is, as carp(4) counts them in carpstats.
var (
	// ErrShort: fewer than 36 bytes (carpstats badlen).
	ErrShort = errors.New("carp: advertisement too short")
	// ErrLength: more than 36 bytes and not a VRRPv2 packet (carpstats badlen).
	ErrLength = errors.New("carp: advertisement too long")
	// ErrChecksum: the Internet checksum over the 36 bytes does not fold to
	// zero (carpstats badsum).
	ErrChecksum = errors.New("carp: bad checksum")
	// ErrVersion: version nibble neither 2 (CARP) nor 3 (VRRPv3) (carpstats badver).
	ErrVersion = errors.New("carp: bad version")
	// ErrType: version 2 but the type nibble is not 1 (advertisement).
	ErrType = errors.New("carp: bad message type")
	// ErrVRRP: the packet is VRRPv2 (RFC 3768) or VRRPv3 (RFC 5798), which
	// share IP protocol 112 with CARP. It is not malformed; a receiver should
	// count and ignore it without logging an error per packet.
	ErrVRRP = errors.New("carp: packet is VRRP, not CARP")
	// ErrAuth: the HMAC-SHA1 digest does not match (carpstats badauth).
	ErrAuth = errors.New("carp: bad authentication digest")
)

// Advertisement is a CARP version 2 advertisement, the 36-byte payload of an
// IP protocol 112 packet (OpenBSD/FreeBSD struct carp_header):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  |     VHID      |    AdvSkew    |  AuthLen (7)  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Demote     |    AdvBase    |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Counter (64 bits)                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  HMAC-SHA1 digest (160 bits)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Version, type, authlen and checksum are not fields: they are always 2, 1,
// 7 and computed when encoding, and checked when decoding. Advertisement is
// a pure value: it has no sockets, clocks or logging. The zero value encodes
// as vhid 0, which no receiver accepts.
type Advertisement struct {
	VHID    uint8 // virtual host id, 1-255
	AdvSkew uint8 // skew in 1/256 s; 255 only in a bow-out advert
	// Demote is OpenBSD's demotion counter (sum of interface-group
	// demotions, capped at 255). FreeBSD and ucarp send 0 ("reserved").
	Demote  uint8
	AdvBase uint8 // base interval in seconds; 255 with AdvSkew 255 is a bow-out
	// Counter is the 8 bytes at offset 8 read as a big-endian integer:
	// FreeBSD/ucarp's incrementing counter or OpenBSD's random cookie. It is
	// input to the HMAC exactly as on the wire.
	Counter uint64
	Digest  [DigestLen]byte // HMAC-SHA1, see [Authenticator]
}

// Timing returns the advertisement's interval as the integer
// advbase·256 + advskew, the quantity CARP elections compare (comparing (seconds,
// microseconds) as the BSDs do is equivalent; docs/interop.md, "Timing").
func (a Advertisement) Timing() int { return int(a.AdvBase)<<8 | int(a.AdvSkew) }

// IsBowOut reports whether a is an OpenBSD bow-out advert (advbase 255,
// advskew 255), sent by a master that is shutting down so that a backup
// takes over at once.
func (a Advertisement) IsBowOut() bool { return a.AdvBase == 255 && a.AdvSkew == 255 }

// AppendBinary appends the 36-byte wire form of a to b, computing the
// checksum. It does not allocate when b has 36 bytes of spare capacity.
// It never fails; the error is there to satisfy encoding.BinaryAppender.
func (a Advertisement) AppendBinary(b []byte) ([]byte, error) {
	n := len(b)
	b = append(b,
		Version<<4|TypeAdvertisement, a.VHID, a.AdvSkew, AuthLen,
		a.Demote, a.AdvBase, 0, 0)
	b = binary.BigEndian.AppendUint64(b, a.Counter)
	b = append(b, a.Digest[:]...)
	binary.BigEndian.PutUint16(b[n+6:], checksum(b[n:]))
	return b, nil
}

// MarshalBinary returns the 36-byte wire form of a.
func (a Advertisement) MarshalBinary() ([]byte, error) {
	return a.AppendBinary(make([]byte, 0, AdvertisementLen))
}

// UnmarshalBinary decodes a CARP advertisement from an IP protocol 112
// payload. It returns an error wrapping one of the package's sentinels and
// leaves a unchanged if b is not a valid CARP advertisement.
//
// The checks follow carp(4)'s receive order (length, checksum, version,
// type), except that VRRP is recognised first, because VRRP packets have
// other lengths and checksums and must not be counted as malformed CARP:
//   - version nibble 3 is VRRPv3 (ErrVRRP);
//   - version 2, type 1 with byte 3 (CARP authlen, VRRPv2 address count)
//     other than 7 is VRRPv2 (ErrVRRP), as is a VRRPv2-sized packet
//     (16 + 4·count bytes) of 7 addresses;
//   - then fewer than 36 bytes is ErrShort, more is ErrLength, a checksum
//     that does not fold to zero is ErrChecksum, a version other than 2 is
//     ErrVersion and a type other than 1 is ErrType.
//
// The authlen byte of a CARP packet is therefore always 7; like every CARP
// implementation, UnmarshalBinary does not check the HMAC (see
// [Authenticator.Verify]).
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: 0 bytes, want %d", ErrShort, AdvertisementLen)
	}
	version, typ := b[0]>>4, b[0]&0x0f
	if version == 3 {
		return fmt.Errorf("%w: version 3", ErrVRRP)
	}
	if version == Version && typ == TypeAdvertisement && len(b) >= 4 {
		if b[3] != AuthLen {
			return fmt.Errorf("%w: version 2 with %d addresses", ErrVRRP, b[3])
		}
		if len(b) == 16+4*AuthLen {
			return fmt.Errorf("%w: version 2 with %d addresses", ErrVRRP, b[3])
		}
	}
	if len(b) < AdvertisementLen {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShort, len(b), AdvertisementLen)
	}
	if len(b) > AdvertisementLen {
		return fmt.Errorf("%w: %d bytes, want %d", ErrLength, len(b), AdvertisementLen)
	}
	if checksum(b) != 0 {
		return fmt.Errorf("%w: 0x%04x", ErrChecksum, binary.BigEndian.Uint16(b[6:]))
	}
	if version != Version {
		return fmt.Errorf("%w: %d, want %d", ErrVersion, version, Version)
	}
	if typ != TypeAdvertisement {
		return fmt.Errorf("%w: %d, want %d", ErrType, typ, TypeAdvertisement)
	}
	*a = Advertisement{
		VHID:    b[1],
		AdvSkew: b[2],
		Demote:  b[4],
		AdvBase: b[5],
		Counter: binary.BigEndian.Uint64(b[8:]),
	}
	copy(a.Digest[:], b[16:AdvertisementLen])
	return nil
}

// checksum returns the RFC 1071 Internet checksum of b. Over a header whose
// checksum field is zero it is the value to store; over a header with a
// valid checksum it is zero. CARP uses no pseudo-header (unlike VRRPv3).
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

package carp

import (
	"net/netip"
	"strconv"
)

// Family is an address family of the CARP transport. A dual-stack group
// sends one advertisement per family per interval and runs one master-down
// timer per family (OpenBSD, FreeBSD).
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "family(" + strconv.Itoa(int(f)) + ")"
}

// Packet is one received IP protocol 112 payload with the metadata a CARP
// receiver checks. Payload is everything after the IP header: for CARP
// exactly 36 bytes, but VRRP and garbage arrive on the same protocol number
// and must be rejected by the codec, not by the transport.
type Packet struct {
	Family  Family
	Payload []byte     // IP payload, owned by the receiver until the next Receive
	Src     netip.Addr // IP source address
	Dst     netip.Addr // IP destination address (224.0.0.18, ff02::12 or a unicast address)
	TTL     int        // IPv4 TTL or IPv6 hop limit as received; -1 if unknown
	IfIndex int        // index of the arrival interface; 0 if unknown
}

// Transport moves CARP advertisements for one group on one interface.
//
// The Linux implementation uses raw IP protocol 112 sockets; package
// carptest provides an in-memory segment for tests.
//
// Contract:
//   - Send transmits payload (the 36-byte CARP advertisement, or a VRRPv3
//     advertisement of 8 bytes plus its addresses) once on the
//     given family: to 224.0.0.18 / ff02::12 in multicast mode, to the
//     configured peer in unicast mode, always with TTL / hop limit 255.
//     Send must not block for longer than a socket write; it returns an error
//     if the family is not configured or the write fails. Callers may reuse
//     payload after Send returns.
//   - Receive blocks until a packet arrives and returns it. It may return
//     packets of any content; it need not filter TTL or interface (the
//     Group checks and counts them) but it must fill TTL and IfIndex when it
//     can. After Close, a blocked or later Receive returns an error wrapping
//     net.ErrClosed.
//   - Families reports which families this transport can send and receive.
//   - Close releases the sockets and unblocks Receive. It is idempotent.
//
// Send and Receive may be called concurrently from different goroutines.
type Transport interface {
	Send(f Family, payload []byte) error
	Receive() (Packet, error)
	Families() []Family
	Close() error
}

// A PendingReporter is a Transport that can tell whether it has received
// packets that Receive has not returned yet (queued in a socket, or held
// by a reader goroutine). A Group asks when its master-down timer expires:
// if adverts wait unread, it reads them before it takes over, so a backup
// that resumes from a stop (SIGSTOP, a paused virtual machine, CPU
// starvation) does not take over from a master whose adverts queued up
// meanwhile. Pending is called from the protocol loop and must not block.
// RawTransport and carptest's Port implement it.
type PendingReporter interface {
	Pending() bool
}

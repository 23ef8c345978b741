package udp

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Defaults; see the package documentation.
const (
	DefaultGroup4 = "224.0.0.240"
	DefaultGroup6 = "ff12::f0"
	DefaultPort   = 7240

	// DefaultReadBuffer is the default socket receive buffer: room for a
	// few thousand full frames of a bulk sync.
	DefaultReadBuffer = 4 << 20

	// DefaultMTU4 and DefaultMTU6 are the largest UDP payloads that fit a
	// 1500-byte link over IPv4 and IPv6.
	DefaultMTU4 = 1500 - 20 - 8
	DefaultMTU6 = 1500 - 40 - 8

	minMTU  = 64
	maxMTU4 = 65535 - 20 - 8
	maxMTU6 = 65535 - 8
)

// Stats are a transport's counters, all monotonic.
type Stats struct {
	Sent          uint64 // datagrams sent
	SendErrors    uint64 // datagrams the kernel refused
	Received      uint64 // datagrams returned by Receive
	UnknownSource uint64 // dropped: source not a configured peer (Unicast) or outside the allowed sources (Multicast)
	Oversize      uint64 // dropped: larger than MTU
	BadTTL        uint64 // dropped (Multicast): TTL or hop limit not 255, or not reported
	BadInterface  uint64 // dropped (Multicast): arrived on another interface
}

type counters struct {
	sent, sendErrors, received, unknown, oversize, badTTL, badIf atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Sent:          c.sent.Load(),
		SendErrors:    c.sendErrors.Load(),
		Received:      c.received.Load(),
		UnknownSource: c.unknown.Load(),
		Oversize:      c.oversize.Load(),
		BadTTL:        c.badTTL.Load(),
		BadInterface:  c.badIf.Load(),
	}
}

// mtuFor validates mtu for the family of a, or returns the default. cfg
// names the configuration struct in errors.
func mtuFor(cfg string, mtu int, v6 bool) (int, error) {
	def, hi := DefaultMTU4, maxMTU4
	if v6 {
		def, hi = DefaultMTU6, maxMTU6
	}
	if mtu == 0 {
		return def, nil
	}
	if mtu < minMTU || mtu > hi {
		return 0, fmt.Errorf("udp: %s.MTU %d out of range %d-%d (0 means %d)", cfg, mtu, minMTU, hi, def)
	}
	return mtu, nil
}

// readBufferFor validates a configured receive buffer size, or returns the
// default. cfg names the configuration struct in errors.
func readBufferFor(cfg string, n int) (int, error) {
	switch {
	case n == 0:
		return DefaultReadBuffer, nil
	case n < minMTU || n > maxReadBuffer:
		return 0, fmt.Errorf("udp: %s.ReadBuffer %d out of range %d-%d", cfg, n, minMTU, maxReadBuffer)
	}
	return n, nil
}

// maxReadBuffer bounds ReadBuffer (1 GiB) so that a typo cannot ask the
// kernel for absurd amounts of memory.
const maxReadBuffer = 1 << 30

// peerKey normalises an address for matching received sources: IPv4-mapped
// IPv6 unmapped, zone dropped (the socket is bound to one link).
func peerKey(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

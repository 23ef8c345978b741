package carp

import (
	"log/slog"
	"net/netip"
)

// RawConfig configures a [RawTransport]. A nil *RawConfig means defaults:
// both families, multicast, addresses taken from the interface.
type RawConfig struct {
	// Families to open. Nil or empty means IPv4 and IPv6; the constructor
	// then fails if the interface lacks a usable source address for either
	// (set Families explicitly for a single-family interface).
	Families []Family

	// Peer4 and Peer6 switch a family to unicast mode (FreeBSD "peer" /
	// "peer6", OpenBSD "carppeer"): adverts go to the peer instead of
	// 224.0.0.18 / ff02::12. Multicast adverts are still received and
	// still joined, so a mixed segment keeps working. The zero Addr means
	// multicast. Peers must be reachable through the interface. A peer
	// set here is the first of Peers4 / Peers6.
	Peer4, Peer6 netip.Addr

	// Peers4 and Peers6 list several unicast peers per family
	// (keepalived's unicast_peer block): each advert is sent once to
	// every peer. Adverts are received from any source, listed or not,
	// as in multicast mode. Empty (and no Peer4 / Peer6) means multicast.
	// RawTransport.SetPeers changes them while the transport runs.
	Peers4, Peers6 []netip.Addr

	// Src4 overrides the IPv4 source address of adverts (ucarp --srcip).
	// It must be assigned to an interface of the host (checked by
	// NewRawTransport). The zero Addr means the interface's first primary
	// IPv4 address; set Src4 if virtual addresses may be configured on the
	// interface before the transport starts, so a VIP is never the source. The IPv6 source is always
	// the interface's link-local address, as RFC 5798 and carp(4) require.
	Src4 netip.Addr

	// SendInterface names another interface to send adverts from while
	// receiving stays on the transport's own interface: the macvlan
	// carrying the virtual MAC (vip.VirtualMAC), so that the master's
	// adverts leave with the virtual MAC as Ethernet source as VRRPv3
	// wants and switches learn the virtual MAC's port from them. The
	// sources stay those of the transport's interface (the IPv6 one is
	// its link-local address, which the send interface need not carry).
	// IPv6 adverts to unicast peers still leave from the transport's
	// interface: the kernel has no route to a peer through a link without
	// IPv6 addresses. Empty means send from the transport's interface. Linux only.
	SendInterface string

	// Logger receives debug messages about dropped packets (nil discards).
	Logger *slog.Logger
}

// RawStats counts packets the transport dropped before the Group saw them.
type RawStats struct {
	// OtherInterface counts packets that arrived on another interface
	// than the configured one (carpstats badif).
	OtherInterface uint64
	// OwnSource counts packets whose source is an address of the
	// interface: our own adverts looped back (e.g. a unicast peer address
	// that routes back to us).
	OwnSource uint64
}

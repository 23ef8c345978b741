package vip

import (
	"log/slog"
	"net"
)

// VirtualMACConfig holds the optional settings of a VirtualMAC. A nil
// *VirtualMACConfig means all defaults.
type VirtualMACConfig struct {
	// Name of the macvlan link. Empty means "carp<vhid>", in the spirit of
	// OpenBSD's carpN interfaces, or "carp<vhid>v6" when MAC is VRRP's IPv6
	// virtual MAC (so a node can run a VRRP router of each family with
	// the same VRID); set it when one node runs the same vhid on two
	// parents. At most 15 bytes (IFNAMSIZ).
	Name string

	// MAC is the link's address. Nil means CARP's VirtualMACAddr(vhid),
	// which is also VRRP's IPv4 virtual MAC; a VRRPv3 group of IPv6
	// addresses sets VRRPVirtualMACAddr(vrid, true). It must be a
	// 6-byte unicast address.
	MAC net.HardwareAddr

	// Logger receives a note when a stale link from an earlier run is
	// replaced. Nil discards.
	Logger *slog.Logger
}

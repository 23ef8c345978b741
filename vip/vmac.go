package vip

import "log/slog"

// VirtualMACConfig holds the optional settings of a VirtualMAC. A nil
// *VirtualMACConfig means all defaults.
type VirtualMACConfig struct {
	// Name of the macvlan link. Empty means "carp<vhid>", in the spirit of
	// OpenBSD's carpN interfaces; set it when one node runs the same vhid
	// on two parents. At most 15 bytes (IFNAMSIZ).
	Name string

	// Logger receives a note when a stale link from an earlier run is
	// replaced. Nil discards.
	Logger *slog.Logger
}

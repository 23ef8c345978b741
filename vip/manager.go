package vip

import (
	"errors"
	"log/slog"
	"net/netip"
)

// ManagerConfig holds the optional settings of a NetlinkManager. A nil
// *ManagerConfig means all defaults.
type ManagerConfig struct {
	// Logger receives the failure of the notification socket. Nil discards.
	Logger *slog.Logger
}

// checkPrefix rejects what no interface address can be.
func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("invalid prefix")
	}
	if p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return errors.New("address must be plain IPv4 or IPv6 without zone")
	}
	return nil
}

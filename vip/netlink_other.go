//go:build !linux

package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// NetlinkManager is the Linux AddrManager; elsewhere every method fails with
// errors.ErrUnsupported.
type NetlinkManager struct{}

// NewNetlinkManager is only implemented on Linux.
func NewNetlinkManager(ifi *net.Interface, cfg *ManagerConfig) (*NetlinkManager, error) {
	return nil, fmt.Errorf("vip: address manager: %w", errors.ErrUnsupported)
}

// Add fails with errors.ErrUnsupported.
func (m *NetlinkManager) Add(p netip.Prefix) error { return errors.ErrUnsupported }

// Remove fails with errors.ErrUnsupported.
func (m *NetlinkManager) Remove(p netip.Prefix) error { return errors.ErrUnsupported }

// List fails with errors.ErrUnsupported.
func (m *NetlinkManager) List() ([]netip.Prefix, error) { return nil, errors.ErrUnsupported }

// Changes returns nil.
func (m *NetlinkManager) Changes() <-chan struct{} { return nil }

// Close does nothing.
func (m *NetlinkManager) Close() error { return nil }

//go:build !linux

package vip

import (
	"errors"
	"fmt"
	"net"
)

// VirtualMAC is a macvlan link carrying CARP's virtual MAC; Linux only.
type VirtualMAC struct{}

// NewVirtualMAC is only implemented on Linux.
func NewVirtualMAC(parent *net.Interface, vhid uint8, cfg *VirtualMACConfig) (*VirtualMAC, error) {
	return nil, fmt.Errorf("vip: virtual MAC: %w", errors.ErrUnsupported)
}

// Interface returns nil.
func (v *VirtualMAC) Interface() *net.Interface { return nil }

// HardwareAddr returns nil.
func (v *VirtualMAC) HardwareAddr() net.HardwareAddr { return nil }

// Close does nothing.
func (v *VirtualMAC) Close() error { return nil }

//go:build !linux

package carp

import (
	"errors"
	"fmt"
	"net/netip"
)

// RawTransport is the raw-socket [Transport]. It is implemented on Linux
// only; elsewhere NewRawTransport returns errors.ErrUnsupported.
type RawTransport struct{}

var _ Transport = (*RawTransport)(nil)

// NewRawTransport returns an error wrapping errors.ErrUnsupported: raw
// CARP sockets are implemented on Linux only.
func NewRawTransport(ifname string, cfg *RawConfig) (*RawTransport, error) {
	return nil, fmt.Errorf("carp: raw transport on %s: %w", ifname, errors.ErrUnsupported)
}

// Families returns nil.
func (t *RawTransport) Families() []Family { return nil }

// Interface returns the zero values.
func (t *RawTransport) Interface() (name string, index int) { return "", 0 }

// Source returns the zero Addr.
func (t *RawTransport) Source(f Family) netip.Addr { return netip.Addr{} }

// Destination returns the zero Addr.
func (t *RawTransport) Destination(f Family) netip.Addr { return netip.Addr{} }

// Stats returns zero counts.
func (t *RawTransport) Stats() RawStats { return RawStats{} }

// Send returns errors.ErrUnsupported.
func (t *RawTransport) Send(f Family, payload []byte) error {
	return fmt.Errorf("carp: send: %w", errors.ErrUnsupported)
}

// Receive returns errors.ErrUnsupported.
func (t *RawTransport) Receive() (Packet, error) {
	return Packet{}, fmt.Errorf("carp: receive: %w", errors.ErrUnsupported)
}

// Close does nothing.
func (t *RawTransport) Close() error { return nil }

// SetPeers returns errors.ErrUnsupported.
func (t *RawTransport) SetPeers(f Family, peers []netip.Addr) error {
	return errors.ErrUnsupported
}

//go:build !linux

package vip

import (
	"errors"
	"fmt"
	"net"
)

// NewPacketAnnouncer is only implemented on Linux.
func NewPacketAnnouncer(ifi *net.Interface, cfg *AnnouncerConfig) (*PacketAnnouncer, error) {
	return nil, fmt.Errorf("vip: announcer: %w", errors.ErrUnsupported)
}

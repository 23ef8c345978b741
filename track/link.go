package track

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Interface is a Check that is healthy while a network interface is up
// and has carrier (IFF_UP and IFF_RUNNING; keepalived's track_interface).
// It polls, every Interval; a group's own interface is better followed
// with carp.LinkWatcher feeding Group.SetLinkState, which reacts to the
// kernel's notification at once. Interface is for the others: the uplink a
// LAN group depends on, a bond member.
//
// The lookup is made in the network namespace of the tracker's goroutine,
// which is the process's.
type Interface struct {
	Name string
}

// Check reads the interface's flags once.
func (c *Interface) Check(ctx context.Context) error {
	if c.Name == "" {
		return errors.New("track: Interface.Name empty")
	}
	ifi, err := net.InterfaceByName(c.Name)
	if err != nil {
		return fmt.Errorf("track: interface %s: %w", c.Name, err)
	}
	switch {
	case ifi.Flags&net.FlagUp == 0:
		return fmt.Errorf("track: interface %s: administratively down", c.Name)
	case ifi.Flags&net.FlagRunning == 0:
		return fmt.Errorf("track: interface %s: no carrier", c.Name)
	}
	return nil
}

package carp_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// TestUnicastThreeNodes runs three nodes that reach each other by unicast
// only, each with a list of peers. A node missing from the master's list
// hears nobody and takes over; added to the list while everything runs,
// it yields; and when the master dies, the better backup takes over and
// the third node follows it.
func TestUnicastThreeNodes(t *testing.T) {
	for _, proto := range []carp.Protocol{carp.ProtocolCARP, carp.ProtocolVRRPv3} {
		t.Run(proto.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				cfg := func(rank int) carp.Config {
					c := carp.Config{VHID: 1, Addrs: vip4, Protocol: proto, StartAsMaster: rank == 0}
					if proto == carp.ProtocolCARP {
						c.Password = []byte("pw")
						c.AdvSkew = uint8(50 * rank)
					} else {
						c.Password = []byte{}
						c.Priority = uint8(200 - 50*rank)
					}
					return c
				}
				a := newNode(t, seg, "a", cfg(0))
				b := newNode(t, seg, "b", cfg(1))
				c := newNode(t, seg, "c", cfg(2))
				addr := func(n *node) netip.Addr { return n.port.Addr(carp.IPv4) }
				a.port.SetPeers(carp.IPv4, []netip.Addr{addr(b)}) // c missing
				b.port.SetPeers(carp.IPv4, []netip.Addr{addr(a), addr(c)})
				c.port.SetPeers(carp.IPv4, []netip.Addr{addr(a), addr(b)})
				a.start(t)
				b.start(t)
				c.start(t)
				sleep(10 * time.Second)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				wantState(t, c, carp.Master) // it hears nobody
				if got := a.g.Stats().Ipackets; got == 0 {
					t.Errorf("a received nothing from c, want c's adverts")
				}

				a.port.SetPeers(carp.IPv4, []netip.Addr{addr(b), addr(c)})
				sleep(3 * time.Second)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				wantState(t, c, carp.Backup)

				a.port.Crash()
				sleep(10 * time.Second)
				wantState(t, b, carp.Master)
				wantState(t, c, carp.Backup)
				if got := b.last().Reason; got != carp.ReasonMasterTimedOut {
					t.Errorf("b became master because %v, want the master timing out", got)
				}
			})
		})
	}
}

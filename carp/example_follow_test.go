package carp_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// A firewall's LAN and WAN groups fail over together. The FollowGroup is
// also the node-wide demotion counter: a sync engine that is still fetching
// state demotes every group through it.
func ExampleFollowGroup() {
	follow, err := carp.NewFollowGroup(&carp.FollowConfig{Hold: 10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	lanSeg, wanSeg := carptest.NewSegment(1), carptest.NewSegment(2) // or carp.NewRawTransport
	var groups []*carp.Group
	for i, seg := range []*carptest.Segment{lanSeg, wanSeg} {
		g, err := carp.NewGroup(carp.Config{
			VHID:      uint8(i + 1),
			Addrs:     []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)})},
			Preempt:   true,
			Transport: seg.Join(carp.IPv4),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		// Add before Start: the FollowGroup then sees every state change.
		if err := follow.Add(g); err != nil {
			fmt.Println(err)
			return
		}
		groups = append(groups, g)
	}
	lan, wan := groups[0], groups[1]

	follow.SetDemotion("pfsync-bulk", 32) // e.g. as pfsync.Config.Demoter
	fmt.Println("bulk sync running:", lan.Demotion(), wan.Demotion())
	follow.SetDemotion("pfsync-bulk", 0)

	// A carp.LinkWatcher reports the LAN link down: the WAN group is
	// demoted as well, so a peer takes both.
	lan.SetLinkState(false)
	fmt.Println("LAN link down:", lan.Demotion(), wan.Demotion(), follow.Status().LinkDown)
	lan.SetLinkState(true)
	fmt.Println("LAN link up:", lan.Demotion(), wan.Demotion(), follow.Status().LinkDown)

	for _, g := range groups {
		g.Close()
	}
	follow.Close()
	// Output:
	// bulk sync running: 32 32
	// LAN link down: 2 1 true
	// LAN link up: 0 0 false
}

package carptest_test

import (
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// Two groups on one simulated segment: the one started as master keeps the
// role, the other stays backup. Run this inside testing/synctest to test
// failover timing without waiting.
func ExampleSegment() {
	seg := carptest.NewSegment(1) // the seed fixes loss and duplication
	states := make(chan string, 8)
	var groups []*carp.Group
	for i, master := range []bool{true, false} {
		g, err := carp.NewGroup(carp.Config{
			VHID:          1,
			AdvSkew:       uint8(100 * i),
			Addrs:         []netip.Addr{netip.MustParseAddr("192.0.2.254")},
			StartAsMaster: master,
			Transport:     seg.Join(carp.IPv4),
			OnTransition: func(t carp.Transition) {
				states <- fmt.Sprintf("node %d: %v", i, t.To)
			},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		groups = append(groups, g)
	}
	for _, g := range groups {
		if err := g.Start(); err != nil {
			fmt.Println(err)
		}
	}
	got := map[string]bool{<-states: true, <-states: true}
	fmt.Println(got["node 0: MASTER"], got["node 1: BACKUP"])
	for _, g := range groups {
		g.Close()
	}
	// Output: true true
}

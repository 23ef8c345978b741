package carp_test

import (
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// Run a group on an in-memory segment. A real program passes a Linux
// transport (NewRawTransport) instead and adds or removes the virtual
// addresses in OnTransition.
func ExampleNewGroup() {
	seg := carptest.NewSegment(1)
	changes := make(chan carp.Transition, 4)
	g, err := carp.NewGroup(carp.Config{
		VHID:          1,
		Password:      []byte("secret"),
		Addrs:         []netip.Addr{netip.MustParseAddr("192.0.2.254")},
		StartAsMaster: true,
		Transport:     seg.Join(carp.IPv4),
		OnTransition:  func(t carp.Transition) { changes <- t },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := g.Start(); err != nil {
		fmt.Println(err)
		return
	}
	t := <-changes
	fmt.Printf("vhid %d: %v -> %v (%s)\n", t.VHID, t.From, t.To, t.Reason)
	fmt.Println("advert every", g.AdvertInterval(), "backups wait", g.MasterDownInterval())

	if err := g.Close(); err != nil { // sends a bow-out advert first
		fmt.Println(err)
	}
	t = <-changes
	fmt.Printf("vhid %d: %v -> %v (%s)\n", t.VHID, t.From, t.To, t.Reason)
	// Output:
	// vhid 1: INIT -> MASTER (configured to start as master)
	// advert every 1s backups wait 3s
	// vhid 1: MASTER -> INIT (group closed)
}

// Lower the node's priority while a health check fails: the master hands
// over at once, even to backups without preemption.
func ExampleGroup_SetDemotion() {
	seg := carptest.NewSegment(1)
	g, err := carp.NewGroup(carp.Config{
		VHID:      1,
		Addrs:     []netip.Addr{netip.MustParseAddr("192.0.2.254")},
		Transport: seg.Join(carp.IPv4),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	g.SetDemotion("health", 1)
	g.SetDemotion("pfsync", 32)
	fmt.Println(g.Demotion())
	g.SetDemotion("health", 0)
	g.SetDemotion("pfsync", 0)
	fmt.Println(g.Demotion())
	// Output:
	// 33
	// 0
}

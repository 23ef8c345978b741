package vip_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
)

// announced wraps a fake Announcer to signal the first round, so the
// example can wait for the Follower's goroutine.
type announced struct {
	*viptest.Announcer
	done chan struct{}
}

func (a announced) Announce(addrs []netip.Addr) error {
	err := a.Announcer.Announce(addrs)
	select {
	case a.done <- struct{}{}:
	default:
	}
	return err
}

// A Follower driven by synthetic transitions, over the viptest fakes. On
// Linux, Manager and Announcer would be vip.NewNetlinkManager and
// vip.NewPacketAnnouncer on the interface, and Handle would be
// carp.Config.OnTransition.
func ExampleFollower() {
	rec := &viptest.Recorder{}
	ann := announced{viptest.NewAnnouncer(rec), make(chan struct{}, 1)}
	f, err := vip.NewFollower(vip.Config{
		VHID:      10,
		Addrs:     vip.Host(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")),
		Manager:   viptest.NewAddrManager(rec, netip.MustParsePrefix("192.0.2.1/24")),
		Announcer: ann,
		BeforeInstall: func(ctx context.Context, t carp.Transition) error {
			rec.Record(viptest.Call{Op: "commit state"}) // e.g. conntrackd -c
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := f.Start(); err != nil {
		fmt.Println(err)
		return
	}
	f.Handle(carp.Transition{VHID: 10, From: carp.Backup, To: carp.Master, Reason: "master timed out"})
	<-ann.done
	if err := f.Close(); err != nil { // withdraws what it installed
		fmt.Println(err)
	}
	for _, s := range rec.Strings() {
		fmt.Println(s)
	}
	// Output:
	// list
	// commit state
	// add 192.0.2.10/24
	// add 2001:db8::10/128
	// announce [192.0.2.10 2001:db8::10]
	// remove 192.0.2.10/24
	// remove 2001:db8::10/128
}

// The announcement schedules.
func ExampleSchedule() {
	fmt.Printf("%+v\n", vip.Schedule{})                                     // OpenBSD: now and 2 advert intervals later
	fmt.Printf("%+v\n", vip.BurstSchedule())                                // MetalLB: every 1.1 s for 5 s
	fmt.Printf("%+v\n", vip.Schedule{Repeats: vip.NoRepeats, Refresh: 3e9}) // once, then every 3 s
	// Output:
	// {Interval:0s Repeats:0 Refresh:0s}
	// {Interval:1.1s Repeats:4 Refresh:0s}
	// {Interval:0s Repeats:-1 Refresh:3s}
}

package gocarp_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
)

// Example wires one node the way the package documentation describes, on
// the in-memory twins of the real transports so that it runs anywhere: on a
// real appliance the CARP transport is carp.NewRawTransport, the sync
// transport pfsync/udp and the vip fakes vip.NewNetlinkManager and
// vip.NewPacketAnnouncer. The node is the first of its cluster, so it starts
// as master; the vip fakes record that it committed the replicated state
// before it installed and announced the address.
func Example() {
	vipAddr := netip.MustParseAddr("192.0.2.100")
	segment := carptest.NewSegment(1)   // the LAN
	network, err := pfsynctest.New(nil) // the sync link
	if err != nil {
		log.Fatal(err)
	}
	calls := &viptest.Recorder{}   // what happens to the interface, in order
	psk, err := seal.GenerateKey() // the cluster key, from seal.LoadKeyFile in real life
	if err != nil {
		log.Fatal(err)
	}

	// 1. The dataplane's connection table.
	table := &pfsync.MemTable{}

	// 2. The CARP group; its transitions (and contests) go to the Follower of
	// step 4.
	var follower *vip.Follower
	group, err := carp.NewGroup(carp.Config{
		VHID:          1,
		AdvBase:       1,
		AdvSkew:       0,
		Password:      []byte("secret"),
		Addrs:         []netip.Addr{vipAddr},
		Preempt:       true,
		StartAsMaster: true, // the first node of a new cluster
		Transport:     segment.Join(carp.IPv4),
		OnTransition:  func(t carp.Transition) { follower.Handle(t) },
		// Announce again when, as master, it out-ranks another node
		// that claimed the group (a split brain healing).
		OnContested: func(c carp.Contest) { follower.HandleContest(c) },
	})
	if err != nil {
		log.Fatal(err)
	}

	// 3. The sync engine, which holds the group demoted until it is in sync.
	sealer, err := seal.New(seal.Config{Node: 1, Boot: 1, Keys: []seal.Key{{ID: 1, Secret: psk}}, SendKeyID: 1})
	if err != nil {
		log.Fatal(err)
	}
	engine, err := pfsync.New(pfsync.Config{
		Node:      1,
		Transport: network.Attach(1),
		Sealer:    sealer,
		Table:     table,
		Commit:    pfsync.CommitOnTakeover,
		Demoter:   group,
	})
	if err != nil {
		log.Fatal(err)
	}

	// 4. The Follower: on MASTER, commit the replicated state, then install
	// and announce the address.
	follower, err = vip.NewFollower(vip.Config{
		VHID:           1,
		Addrs:          vip.Host(vipAddr),
		Manager:        viptest.NewAddrManager(calls, netip.MustParsePrefix("192.0.2.1/24")),
		Announcer:      viptest.NewAnnouncer(calls),
		AdvertInterval: group.AdvertInterval(),
		BeforeInstall: func(ctx context.Context, _ carp.Transition) error {
			_, err := engine.PrepareTakeover(ctx)
			calls.Record(viptest.Call{Op: "commit", Err: err})
			return err
		},
	})
	if err == nil {
		err = follower.Start()
	}
	if err != nil {
		log.Fatal(err)
	}

	// 5. The engine first, then the group.
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	if err := group.Start(); err != nil {
		log.Fatal(err)
	}

	// 6. The dataplane reports its connections to the engine.
	orig := record.Tuple{
		Src: netip.MustParseAddrPort("198.18.0.1:40000"),
		Dst: netip.MustParseAddrPort("203.0.113.80:443"),
	}
	conn := record.Record{
		ID:    engine.NewID(),
		Key:   record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]record.Peer{{Level: record.TCPEstablished}, {Level: record.TCPEstablished}},
	}
	if err := table.Insert(&conn); err != nil {
		log.Fatal(err)
	}
	if err := engine.Upsert(conn); err != nil {
		log.Fatal(err)
	}

	// The Follower works on its own goroutine; wait for its announcement.
	for deadline := time.Now().Add(5 * time.Second); len(calls.Strings(viptest.OpAnnounce)) == 0; {
		if time.Now().After(deadline) {
			log.Fatal("no announcement within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Println(group.State())
	for _, c := range calls.Strings("commit", viptest.OpAdd, viptest.OpAnnounce) {
		fmt.Println(c)
	}

	// 7. Shut down: the group first (a master bows out), then the Follower
	// (it withdraws the address), then the engine.
	group.Close()
	follower.Close()
	engine.Close()

	// Output:
	// MASTER
	// commit
	// add 192.0.2.100/24
	// announce [192.0.2.100]
}

package carp_test

import (
	"log"
	"log/slog"
	"net/netip"

	"github.com/gocarp/gocarp/carp"
)

// A CARP group on eth0 with the Linux raw transport, fed by a link watcher
// so a lost carrier puts the group into INIT as carp(4) does.
func ExampleNewRawTransport() {
	logger := slog.Default()
	tr, err := carp.NewRawTransport("eth0", &carp.RawConfig{
		Families: []carp.Family{carp.IPv4},
		Logger:   logger,
	})
	if err != nil {
		log.Fatal(err) // e.g. no CAP_NET_RAW, or eth0 has no IPv4 address
	}
	_, ifindex := tr.Interface()
	g, err := carp.NewGroup(carp.Config{
		VHID:      1,
		Password:  []byte("secret"),
		Addrs:     []netip.Addr{netip.MustParseAddr("192.0.2.254")},
		Transport: tr, // the group owns it from here on
		IfIndex:   ifindex,
		Logger:    logger,
		OnTransition: func(t carp.Transition) {
			logger.Info("carp", "from", t.From, "to", t.To, "reason", t.Reason)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	w, err := carp.NewLinkWatcher("eth0", g.SetLinkState, logger)
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	// ... run until shutdown, then:
	w.Close()
	g.Close() // a MASTER sends a bow-out advert first
}

// Unicast mode (FreeBSD "peer"): adverts go to the other node instead of
// 224.0.0.18, for networks that filter multicast.
func ExampleRawConfig_unicast() {
	tr, err := carp.NewRawTransport("eth0", &carp.RawConfig{
		Families: []carp.Family{carp.IPv4},
		Peer4:    netip.MustParseAddr("192.0.2.2"),
		Src4:     netip.MustParseAddr("192.0.2.1"), // like ucarp --srcip
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	log.Println("adverts go to", tr.Destination(carp.IPv4), "from", tr.Source(carp.IPv4))
}

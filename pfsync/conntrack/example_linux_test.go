package conntrack_test

import (
	"context"
	"log"
	"net/netip"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/conntrack"
)

// Example wires the conntrack backend to a pfsync engine: the backend is
// the engine's Table (peers' flows go into the kernel) and the engine is
// the backend's Sink (this node's flows go to the peers).
func Example() {
	var transport pfsync.Transport // pfsync/udp on the dedicated sync link
	var sealer pfsync.Sealer       // pfsync/seal

	ct, err := conntrack.New(conntrack.Config{
		Filter: conntrack.Filter{
			AssuredOnly: true,
			Ignore: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/32"),   // own address
				netip.MustParsePrefix("203.0.113.1/32"), // VIP
				netip.MustParsePrefix("10.255.0.0/30"),  // sync link
				netip.MustParsePrefix("127.0.0.0/8"),    // loopback
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ct.Close()

	eng, err := pfsync.New(pfsync.Config{
		Node:      1,
		Transport: transport,
		Sealer:    sealer,
		Table:     ct,
		Commit:    pfsync.CommitOnTakeover, // conntrackd's external cache
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Start(); err != nil {
		log.Fatal(err)
	}
	if err := ct.Start(eng); err != nil {
		log.Fatal(err)
	}

	// On BACKUP -> MASTER, before the VIPs are announced:
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := eng.PrepareTakeover(ctx); err != nil {
		log.Printf("takeover commit incomplete after %d flows: %v", n, err)
	}
}

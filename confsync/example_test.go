package confsync_test

import (
	"fmt"
	"log"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// A primary publishes its ruleset; the secondary applies it.
func Example() {
	psk, err := seal.GenerateKey() // in production: seal.LoadKeyFile
	if err != nil {
		log.Fatal(err)
	}
	key, err := confsync.Key(psk)
	if err != nil {
		log.Fatal(err)
	}
	sealer := func(node pfsync.NodeID) *seal.Sealer {
		// Boot: seal.BootCounter(path), read once per start.
		s, err := seal.New(seal.Config{Node: node, Boot: 1, Keys: []seal.Key{{ID: 1, Secret: key}}, SendKeyID: 1})
		if err != nil {
			log.Fatal(err)
		}
		return s
	}
	network, err := pfsynctest.New(nil) // in production: pfsync/udp
	if err != nil {
		log.Fatal(err)
	}

	primary, err := confsync.New(confsync.Config{
		Node: 1, Transport: network.Attach(1), Sealer: sealer(1),
		Publish: []string{"ruleset"},
	})
	if err != nil {
		log.Fatal(err)
	}
	applied := make(chan string, 1)
	secondary, err := confsync.New(confsync.Config{
		Node: 2, Transport: network.Attach(2), Sealer: sealer(2),
		Subscribe: map[string]pfsync.NodeID{"ruleset": 1},
		Apply: func(name string, version uint64, data []byte) error {
			// Check and install atomically (nft -c, then nft -f).
			applied <- fmt.Sprintf("%s version %d: %s", name, version, data)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	primary.Start()
	secondary.Start()
	defer primary.Close()
	defer secondary.Close()

	if err := primary.Publish("ruleset", 1, []byte("table inet fw { }")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-applied)
	// Output: ruleset version 1: table inet fw { }
}

package udp_test

import (
	"log"
	"net/netip"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/udp"
)

// A node of a two-node cluster on a dedicated sync link, using the
// link-local IPv6 group. (Not run: it needs the interface.)
func ExampleNewMulticast() {
	tr, err := udp.NewMulticast(udp.MulticastConfig{
		Interface: "sync0",
		Group:     netip.MustParseAddr(udp.DefaultGroup6),
		Peers:     map[pfsync.NodeID]netip.Addr{2: netip.MustParseAddr("fe80::2")},
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer tr.Close()
	// Hand tr to the pfsync engine together with a seal.Sealer.
}

// Unicast to a static peer list, bound to the sync interface. (Not run: it
// needs the addresses.)
func ExampleNewUnicast() {
	tr, err := udp.NewUnicast(udp.UnicastConfig{
		Local:     netip.MustParseAddrPort("192.0.2.1:7240"),
		Interface: "sync0",
		Peers: map[pfsync.NodeID]netip.AddrPort{
			2: netip.MustParseAddrPort("192.0.2.2:7240"),
			3: netip.MustParseAddrPort("192.0.2.3:7240"),
		},
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer tr.Close()
	// tr.Send(pfsync.Broadcast, frame) reaches nodes 2 and 3.
}

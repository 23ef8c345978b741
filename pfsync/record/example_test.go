package record_test

import (
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Two firewalls saw different halves of the same connection (asymmetric
// routing). Each direction is merged on its own: the result keeps the most
// advanced state of both, and the outcome tells the receiver its own reply
// direction was ahead, so it sends its copy back.
func ExampleMerge() {
	orig := record.Tuple{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:443")}
	local := record.Record{
		ID:  record.ID{Creator: 1, Num: 1},
		Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: 1000},
			{Level: record.TCPEstablished, SeqLo: 9000},
		},
	}
	remote := local
	remote.Peers = [2]record.Peer{
		{Level: record.TCPEstablished, SeqLo: 5000},
		{Level: record.TCPEstablished, SeqLo: 8000}, // behind: never rolls ours back
	}
	merged, out := record.Merge(&local, &remote)
	fmt.Println(merged.Peers[record.Orig].SeqLo, merged.Peers[record.Reply].SeqLo, out, out.Stale())
	// Output:
	// 5000 9000 changed|stale-reply true
}

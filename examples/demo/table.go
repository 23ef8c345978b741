package main

import (
	"net/netip"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/record"
)

// The toy dataplane: every node's connection table is a pfsync.MemTable, the
// in-memory pfsync.Table (a real appliance has Linux conntrack or its own Go
// flow table there). The master creates connections in it and reports each
// to its sync engine; a backup's engine keeps what it receives and commits it
// into the table when the node becomes master.

// server is the web server behind the appliance (TEST-NET-3).
var server = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 80}), 443)

// demoKey returns the key of the i-th connection of the demo: a client in
// 198.18.0.0/15 (RFC 2544 benchmarking space) talking HTTPS to the server.
func demoKey(i int) record.Key {
	client := netip.AddrPortFrom(
		netip.AddrFrom4([4]byte{198, 18 + byte(i>>24&1), byte(i >> 16), byte(i >> 8)}),
		10000+uint16(i&0xff))
	orig := record.Tuple{Src: client, Dst: server}
	return record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()}
}

// established returns an established TCP connection with key k, as the
// dataplane of the creating node would report it.
func established(id record.ID, k record.Key, i int) record.Record {
	isn := uint32(i) * 7919
	return record.Record{
		ID:  id,
		Key: k,
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: isn + 1000, SeqHi: isn + 1000 + 65535, MaxWin: 65535, WScale: 7, Scaled: true},
			{Level: record.TCPEstablished, SeqLo: isn + 5000, SeqHi: isn + 5000 + 65535, MaxWin: 65535, WScale: 7, Scaled: true},
		},
		Expire:  86400, // pf's tcp.established timeout
		Timeout: 2,
		Packets: [2]uint64{12, 10},
		Bytes:   [2]uint64{1800, 24000},
	}
}

// holds counts how many of the demo's connections table holds: the
// connection with ids[i] must be there with the key of connection i.
func holds(table *pfsync.MemTable, ids []record.ID) int {
	count := 0
	for i, id := range ids {
		if r, ok := table.Get(id); ok && r.Key == demoKey(i) {
			count++
		}
	}
	return count
}

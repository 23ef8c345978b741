package pfsync_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
)

// notifyTable is a MemTable that reports every insert on a channel, so
// the example can wait for replication without sleeping.
type notifyTable struct {
	pfsync.MemTable
	inserted chan record.ID
}

func (t *notifyTable) Insert(r *record.Record) error {
	if err := t.MemTable.Insert(r); err != nil {
		return err
	}
	t.inserted <- r.ID
	return nil
}

// Two engines replicate a flow over the in-memory network: the firewall
// that sees a new connection reports it with Upsert, the other one finds
// it in its table.
func Example() {
	network, err := pfsynctest.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	var tableA pfsync.MemTable
	tableB := &notifyTable{inserted: make(chan record.ID, 1)}

	a, err := pfsync.New(pfsync.Config{
		Node: 1, Transport: network.Attach(1), Table: &tableA,
		Insecure: true, // a real cluster sets Sealer (pfsync/seal)
	})
	if err != nil {
		log.Fatal(err)
	}
	b, err := pfsync.New(pfsync.Config{Node: 2, Transport: network.Attach(2), Table: tableB, Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range []*pfsync.Engine{a, b} {
		if err := e.Start(); err != nil {
			log.Fatal(err)
		}
		defer e.Close()
	}

	orig := record.Tuple{
		Src: netip.MustParseAddrPort("198.51.100.7:50123"),
		Dst: netip.MustParseAddrPort("192.0.2.10:443"),
	}
	flow := record.Record{
		ID:  a.NewID(),
		Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: 1000, SeqHi: 66535, MaxWin: 64240},
			{Level: record.TCPEstablished, SeqLo: 5000, SeqHi: 70535, MaxWin: 65535},
		},
		Expire: 86400,
	}
	if err := a.Upsert(flow); err != nil {
		log.Fatal(err)
	}

	id := <-tableB.inserted
	got, _ := tableB.Get(id)
	fmt.Println("node 2 holds", got.Key.Orig.Src, "->", got.Key.Orig.Dst, "created by node", got.ID.Creator)
	// Output:
	// node 2 holds 198.51.100.7:50123 -> 192.0.2.10:443 created by node 1
}

// inSync is a Demoter that closes a channel when the engine's bulk-sync
// demotion clears: the node holds the table of every peer up.
type inSync chan struct{}

func (c inSync) SetDemotion(source string, n int) {
	if source == pfsync.DemoteSourceBulk && n == 0 {
		close(c)
	}
}

// A dataplane that defers a new flow's first packet (pfsync's defer, for
// active-active pairs) reports the flow with UpsertSync and forwards the
// packet once it returns: the peer already holds the flow, so the reply may
// come back through it.
func ExampleEngine_UpsertSync() {
	network, err := pfsynctest.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	synced := make(inSync)
	a, err := pfsync.New(pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, Demoter: synced})
	if err != nil {
		log.Fatal(err)
	}
	b, err := pfsync.New(pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range []*pfsync.Engine{a, b} {
		if err := e.Start(); err != nil {
			log.Fatal(err)
		}
		defer e.Close()
	}
	<-synced // node 1 has node 2's table: node 2 is up

	orig := record.Tuple{
		Src: netip.MustParseAddrPort("198.51.100.7:50124"),
		Dst: netip.MustParseAddrPort("192.0.2.10:443"),
	}
	flow := record.Record{
		ID:     a.NewID(),
		Key:    record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers:  [2]record.Peer{{Level: record.TCPSynSent}},
		Expire: 30,
	}
	// pfsync holds a deferred packet at most 20 ms; the bound is the
	// dataplane's to choose.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.UpsertSync(ctx, flow); err != nil {
		log.Println("forwarding anyway:", err) // a peer was too slow
	}
	_, ok := b.Get(flow.ID)
	fmt.Println("node 2 holds the flow before its first packet leaves:", ok)
	// Output:
	// node 2 holds the flow before its first packet leaves: true
}

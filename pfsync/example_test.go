package pfsync_test

import (
	"fmt"
	"log"
	"net/netip"

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

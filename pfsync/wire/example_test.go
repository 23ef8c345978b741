package wire_test

import (
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// A sender fills MTU-sized frames with compressed updates; a receiver walks
// them without allocating.
func Example() {
	orig := record.Tuple{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:443")}
	r := record.Record{
		ID:      record.ID{Creator: 1, Num: 1},
		Version: 7,
		Key:     record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers:   [2]record.Peer{{Level: record.TCPEstablished, SeqLo: 1000, SeqHi: 66535, MaxWin: 65535}},
		Expire:  86400,
	}

	var b wire.Builder
	buf := make([]byte, 0, 1400)
	if err := b.Reset(buf, 1400, wire.Header{Sender: 1, Epoch: 0x5eed, Seq: 1}); err != nil {
		fmt.Println(err)
		return
	}
	if err := b.AddInsert(&r); err != nil {
		fmt.Println(err)
		return
	}
	r.Version++
	r.Peers[record.Orig].SeqLo += 1448
	d := r.Delta(record.FieldOrig | record.FieldLifetime)
	if err := b.AddDelta(&d); err != nil { // err == wire.ErrFull: send and start a new frame
		fmt.Println(err)
		return
	}
	frame := b.Bytes()
	fmt.Printf("frame: %d bytes, %d elements\n", len(frame), b.Elements())

	var (
		rd    wire.Reader
		rec   record.Record
		delta record.Delta
	)
	if err := rd.Reset(frame); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("from node", rd.Header().Sender, "seq", rd.Header().Seq)
	for rd.Next() {
		switch rd.Kind() {
		case wire.KindInsert:
			if err := rd.Record(&rec); err != nil {
				fmt.Println(err)
				continue
			}
			fmt.Println("insert", rec.ID, rec.Key.Orig.Src, "->", rec.Key.Orig.Dst)
		case wire.KindUpdateC:
			if err := rd.Delta(&delta); err != nil {
				fmt.Println(err)
				continue
			}
			merged, out := record.MergeDelta(&rec, &delta)
			fmt.Println("update-c version", delta.Version, "seqlo", merged.Peers[record.Orig].SeqLo, out)
		}
	}
	// Output:
	// frame: 111 bytes, 2 elements
	// from node 1 seq 1
	// insert 00000001/0000000000000001 10.0.0.1:40000 -> 192.0.2.10:443
	// update-c version 8 seqlo 2448 changed
}

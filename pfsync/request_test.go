package pfsync_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestRequestByID: a compressed update for a record the engine does not
// hold makes it ask for the record (pfsync UPD_REQ), and a request makes
// it send the full record.
func TestRequestByID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		var tab pfsync.MemTable
		e := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, Table: &tab})
		own := testRecord(e.NewID(), 9)
		if err := e.Upsert(own); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // announced (to nobody yet)
		peer := network.Attach(3)
		handshake(t, peer, 1, 3, 5)
		unknown := testRecord(record.ID{Creator: 3, Num: 42}, 10)
		d := unknown.Delta(record.FieldsAll)
		var b wire.Builder
		if err := b.Reset(nil, 1500, wire.Header{Sender: 3, Epoch: 5, Seq: 1}); err != nil {
			t.Fatal(err)
		}
		if err := b.AddDelta(&d); err != nil {
			t.Fatal(err)
		}
		if err := b.AddRequest(wire.Request{ID: own.ID}); err != nil {
			t.Fatal(err)
		}
		if err := peer.Send(1, b.Frame()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()

		var asked, answered bool
		for {
			d, ok := tryReceive(peer)
			if !ok {
				break
			}
			var rd wire.Reader
			if err := rd.Reset(d.Payload); err != nil {
				t.Fatal(err)
			}
			for rd.Next() {
				switch rd.Kind() {
				case wire.KindRequest:
					r, err := rd.Request()
					asked = asked || err == nil && r.ID == unknown.ID
				case wire.KindUpdate: // the first announcement was an INSERT
					var r record.Record
					answered = answered || rd.Record(&r) == nil && r.ID == own.ID
				}
			}
		}
		if !asked {
			t.Error("no request for the record of the compressed update")
		}
		if !answered {
			t.Error("the request was not answered with the full record")
		}
		if s := e.Stats(); s.RequestsSent != 1 || s.RequestsAnswered != 1 {
			t.Errorf("RequestsSent, RequestsAnswered = %d, %d; want 1, 1", s.RequestsSent, s.RequestsAnswered)
		}
	})
}

// handshake makes the node at ep (id from, epoch) a confirmed peer of
// engine node to: it says hello, reads the engine's Hello that echoes its
// epoch, and echoes the engine's epoch back, as an engine would.
func handshake(t *testing.T, ep *pfsynctest.Endpoint, to, from pfsync.NodeID, epoch uint64) {
	t.Helper()
	send := func(h wire.Hello) {
		var b wire.Builder
		if err := b.Reset(nil, 1500, wire.Header{Sender: uint32(from), Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
		b.SetFlags(wire.FlagUnsequenced)
		if err := b.AddHello(h); err != nil {
			t.Fatal(err)
		}
		if err := ep.Send(to, b.Frame()); err != nil {
			t.Fatal(err)
		}
	}
	send(wire.Hello{Node: uint32(from), Epoch: epoch, MinVersion: wire.Version, MaxVersion: wire.Version})
	for {
		d, ok := tryReceive(ep)
		if !ok {
			t.Fatal("the engine sent no Hello echoing our epoch")
		}
		var rd wire.Reader
		if err := rd.Reset(d.Payload); err != nil {
			t.Fatal(err)
		}
		for rd.Next() {
			if rd.Kind() != wire.KindHello {
				continue
			}
			hl, err := rd.Hello()
			if err != nil || hl.Echo != epoch {
				continue
			}
			send(wire.Hello{Node: uint32(from), Epoch: epoch, MinVersion: wire.Version, MaxVersion: wire.Version,
				Flags: wire.HelloReply, Echo: hl.Epoch})
			return
		}
	}
}

// TestRequestDeduplicated: many compressed updates of one record the
// engine misses, before its request left, draw one request, not one each;
// a later miss asks again.
func TestRequestDeduplicated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		e := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		peer := network.Attach(3)
		handshake(t, peer, 1, 3, 5)
		unknown := testRecord(record.ID{Creator: 3, Num: 42}, 10)
		send := func(seq uint64, copies int) {
			var b wire.Builder
			if err := b.Reset(nil, 1500, wire.Header{Sender: 3, Epoch: 5, Seq: seq}); err != nil {
				t.Fatal(err)
			}
			for i := range copies {
				unknown.Packets[0] = uint64(i)
				d := unknown.Delta(record.FieldsAll)
				if err := b.AddDelta(&d); err != nil {
					t.Fatal(err)
				}
			}
			if err := peer.Send(1, b.Frame()); err != nil {
				t.Fatal(err)
			}
		}
		send(1, 30)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if got := e.Stats().RequestsSent; got != 1 {
			t.Errorf("30 compressed updates of one missing record drew %d requests, want 1", got)
		}
		send(2, 1)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if got := e.Stats().RequestsSent; got != 2 {
			t.Errorf("a miss after the request left: %d requests in all, want 2", got)
		}
	})
}

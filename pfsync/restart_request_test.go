package pfsync_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// kernelTable is a MemTable that remembers every Delete it was asked for:
// a kernel entry removed.
type kernelTable struct {
	pfsync.MemTable
	mu      sync.Mutex
	deleted []record.ID
}

func (k *kernelTable) Delete(id record.ID) error {
	k.mu.Lock()
	k.deleted = append(k.deleted, id)
	k.mu.Unlock()
	return k.MemTable.Delete(id)
}

func (k *kernelTable) deletes() []record.ID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]record.ID(nil), k.deleted...)
}

// deletesIn returns the IDs of the Delete elements in the frames waiting at
// *ep, node id of network, and drains them; *ep is attached again
// (tryReceive closes it once it is empty).
func deletesIn(t *testing.T, network *pfsynctest.Network, id pfsync.NodeID, ep **pfsynctest.Endpoint) map[record.ID]bool {
	t.Helper()
	got := map[record.ID]bool{}
	for {
		d, ok := tryReceive(*ep)
		if !ok {
			*ep = network.Attach(id)
			return got
		}
		var rd wire.Reader
		if rd.Reset(d.Payload) != nil {
			continue
		}
		for rd.Next() {
			if rd.Kind() == wire.KindDelete {
				if del, err := rd.Delete(); err == nil {
					got[del.ID] = true
				}
			}
		}
	}
}

// TestRestartRequestForPreviousLife: node 1 restarts and, before the
// bulk sync brings its previous life's records back, a third node asks it
// for one of them — once before node 1 confirmed that node (as a recording
// replayed into the restart window would) and once after. Not holding a
// record of an earlier life does not mean it was deleted: node 1 must
// neither tombstone it nor tell anyone to delete it. Node 2, master, keeps
// every record in its engine and in its kernel table, and node 1 gets
// them all back.
func TestRestartRequestForPreviousLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		var tab1 pfsync.MemTable
		e1 := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, Table: &tab1})
		var kernel2 kernelTable
		e2 := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true, Table: &kernel2})
		third := network.Attach(3)
		const n = 20
		var ids []record.ID
		for i := range n {
			r := testRecord(e1.NewID(), uint16(i+1))
			if err := tab1.Insert(&r); err != nil {
				t.Fatal(err)
			}
			if err := e1.Upsert(r); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if e2.Len() != n || kernel2.Len() != n {
			t.Fatalf("node 2 holds %d records, %d in its kernel; want %d", e2.Len(), kernel2.Len(), n)
		}

		// Node 1 restarts with an empty dataplane; node 2 (now master)
		// cannot reach it yet, the third node can.
		if err := e1.Close(); err != nil {
			t.Fatal(err)
		}
		network.Partition([]pfsync.NodeID{1, 3}, []pfsync.NodeID{2})
		time.Sleep(time.Second)
		var tab1b pfsync.MemTable
		e1b := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, Table: &tab1b})
		deletesIn(t, network, 3, &third) // what the first life sent

		request := func(seq uint64, id record.ID) {
			var b wire.Builder
			if err := b.Reset(nil, 1500, wire.Header{Sender: 3, Epoch: 7, Seq: seq}); err != nil {
				t.Fatal(err)
			}
			if err := b.AddRequest(wire.Request{ID: id}); err != nil {
				t.Fatal(err)
			}
			if err := third.Send(1, b.Frame()); err != nil {
				t.Fatal(err)
			}
		}
		// Before node 1 confirmed the third node.
		request(1, ids[0])
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if st := e1b.Stats(); st.Peers[3].Confirmed {
			t.Fatal("the third node is confirmed before the handshake")
		}
		// After.
		handshake(t, third, 1, 3, 7)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if st := e1b.Stats(); !st.Peers[3].Confirmed {
			t.Fatal("the third node is not confirmed after the handshake")
		}
		request(1, ids[1])
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if got := deletesIn(t, network, 3, &third); len(got) > 0 {
			t.Errorf("the restarted node sent deletes for %d records of its previous life: %v", len(got), got)
		}
		if got := e1b.Stats().RequestsIgnored; got != 2 {
			t.Errorf("RequestsIgnored = %d, want 2", got)
		}

		// Node 2 reaches node 1: nothing is lost anywhere.
		network.Heal()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := kernel2.deletes(); len(got) > 0 {
			t.Errorf("node 2's kernel entries were removed: %v", got)
		}
		for _, id := range ids {
			if _, ok := e2.Get(id); !ok {
				t.Errorf("node 2 lost record %v", id)
			}
			if _, ok := kernel2.Get(id); !ok {
				t.Errorf("node 2's kernel lost record %v", id)
			}
			if _, ok := e1b.Get(id); !ok {
				t.Errorf("the restarted node did not get record %v back", id)
			}
			if _, ok := tab1b.Get(id); !ok {
				t.Errorf("the restarted node's table did not get record %v back", id)
			}
		}
		if st := e1b.Stats(); st.Suppressed != 0 || st.Tombstones != 0 {
			t.Errorf("the restarted node refused records of its previous life: Suppressed %d, Tombstones %d", st.Suppressed, st.Tombstones)
		}
	})
}

// TestClearOnlyByCreator: a Clear wipes the records of one creator, so only
// that creator may send it. A peer's Clear naming this node's records (or
// a third node's) would remove live flows, from this node's own table too;
// it is refused and counted.
func TestClearOnlyByCreator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		var kernel kernelTable
		e := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, Table: &kernel})
		const n = 10
		for i := range n {
			r := testRecord(e.NewID(), uint16(i+1))
			if err := kernel.Insert(&r); err != nil {
				t.Fatal(err)
			}
			if err := e.Upsert(r); err != nil {
				t.Fatal(err)
			}
		}
		peer := network.Attach(3)
		handshake(t, peer, 1, 3, 5)
		var b wire.Builder
		if err := b.Reset(nil, 1500, wire.Header{Sender: 3, Epoch: 5, Seq: 1}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []uint32{1, 2} {
			if err := b.AddClear(wire.Clear{Creator: c}); err != nil {
				t.Fatal(err)
			}
		}
		before := e.Stats().BadValue
		if err := peer.Send(1, b.Frame()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if e.Len() != n || kernel.Len() != n || len(kernel.deletes()) != 0 {
			t.Errorf("a peer's Clear of our records: engine holds %d, kernel %d (deletes %v); want %d", e.Len(), kernel.Len(), kernel.deletes(), n)
		}
		if got := e.Stats().BadValue - before; got != 2 {
			t.Errorf("BadValue grew by %d, want 2 (one per refused Clear)", got)
		}
	})
}

// TestForgedSendersBounded: without a Sealer anyone on the link can name
// any sender. Frames from thousands of invented senders must not cost a
// peer's state each for the engine's life: at most a few unconfirmed
// peers are remembered, the rest are refused and counted, silent
// unconfirmed peers are forgotten, and a real node still gets in.
func TestForgedSendersBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		// A transport that cannot tell who sent a datagram (multicast
		// without a table of peer addresses) leaves From 0: the header
		// alone names the sender.
		e := mustEngine(t, pfsync.Config{Node: 1, Transport: anonymous{network.Attach(1)}, Insecure: true})
		attacker := network.Attach(99)
		const forged = 2000
		for i := range forged {
			var b wire.Builder
			sender := uint32(1000 + i)
			if err := b.Reset(nil, 1500, wire.Header{Sender: sender, Epoch: 5}); err != nil {
				t.Fatal(err)
			}
			b.SetFlags(wire.FlagUnsequenced)
			if err := b.AddHeartbeat(wire.Heartbeat{Interval: time.Second}); err != nil {
				t.Fatal(err)
			}
			if err := attacker.Send(1, b.Frame()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		st := e.Stats()
		if len(st.Peers) > 16 || st.PeersRefused != forged-uint64(len(st.Peers)) {
			t.Errorf("%d forged senders: %d peers remembered (want at most 16), %d refused", forged, len(st.Peers), st.PeersRefused)
		}
		time.Sleep(4 * time.Second) // DeadAfter heartbeats
		synctest.Wait()
		if n := len(e.Stats().Peers); n != 0 {
			t.Errorf("%d silent unconfirmed peers still remembered", n)
		}
		peer := network.Attach(3)
		handshake(t, peer, 1, 3, 5)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if !e.Stats().Peers[3].Confirmed {
			t.Error("a real node could not get in after the flood")
		}
	})
}

// anonymous is a Transport that does not know who sent what it receives.
type anonymous struct{ pfsync.Transport }

func (a anonymous) Receive() (pfsync.Datagram, error) {
	d, err := a.Transport.Receive()
	d.From = 0
	return d, err
}

package pfsync_test

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// element is what an observer decoded for one record.
type element struct {
	kind wire.Kind
	rec  record.Record
}

// observe decodes the record elements of every frame queued for ep.
func observe(t *testing.T, ep *pfsynctest.Endpoint) map[record.ID][]element {
	t.Helper()
	got := map[record.ID][]element{}
	for {
		d, ok := tryReceive(ep)
		if !ok {
			return got
		}
		var rd wire.Reader
		if err := rd.Reset(d.Payload); err != nil {
			t.Fatalf("engine sent a malformed frame: %v", err)
		}
		for rd.Next() {
			switch rd.Kind() {
			case wire.KindInsert, wire.KindUpdate:
				var r record.Record
				if err := rd.Record(&r); err != nil {
					t.Fatal(err)
				}
				got[r.ID] = append(got[r.ID], element{rd.Kind(), r.Clone()})
			case wire.KindUpdateC:
				var d record.Delta
				if err := rd.Delta(&d); err != nil {
					t.Fatal(err)
				}
				got[d.ID] = append(got[d.ID], element{wire.KindUpdateC, record.Record{ID: d.ID, Version: d.Version, Peers: d.Peers, Packets: d.Packets}})
			case wire.KindDelete:
				d, err := rd.Delete()
				if err != nil {
					t.Fatal(err)
				}
				got[d.ID] = append(got[d.ID], element{kind: wire.KindDelete, rec: record.Record{ID: d.ID, Version: d.Version}})
			}
		}
	}
}

func tryReceive(ep *pfsynctest.Endpoint) (pfsync.Datagram, bool) {
	ch := make(chan pfsync.Datagram, 1)
	go func() {
		d, err := ep.Receive()
		if err == nil {
			ch <- d
		}
		close(ch)
	}()
	synctest.Wait()
	select {
	case d, ok := <-ch:
		return d, ok
	default:
		ep.Close() // unblock the goroutine; the caller attaches again
		<-ch
		return pfsync.Datagram{}, false
	}
}

// TestCoalescingProperty runs random changes against an engine within one
// flush interval and checks what leaves: at most one element per record,
// carrying its last state; nothing for a record inserted and deleted
// before any peer heard of it; a delete for a record deleted after peers
// heard of it.
func TestCoalescingProperty(t *testing.T) {
	for seed := range uint64(50) {
		synctest.Test(t, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			network, err := pfsynctest.New(&pfsynctest.Config{MTU: 9000})
			if err != nil {
				t.Fatal(err)
			}
			e := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, AntiEntropy: -1})
			live := map[record.ID]record.Record{}
			announced := map[record.ID]bool{}
			var ids []record.ID
			for round := range 4 {
				observer := network.Attach(2)
				last := map[record.ID]string{}
				deleted := map[record.ID]bool{} // deleted since peers last heard of it
				for id := range announced {
					if _, ok := live[id]; !ok {
						deleted[id] = true
					}
				}
				for range 40 {
					if len(ids) == 0 || rng.IntN(3) == 0 {
						id := e.NewID()
						ids = append(ids, id)
					}
					id := ids[rng.IntN(len(ids))]
					if _, ok := live[id]; ok && rng.IntN(3) == 0 {
						if err := e.Delete(id); err != nil {
							t.Fatal(err)
						}
						delete(live, id)
						deleted[id] = true
						last[id] = "delete"
						continue
					}
					r, ok := live[id]
					if !ok {
						r = testRecord(id, uint16(rng.IntN(60000)+1))
					}
					r.Peers[0].SeqLo += uint32(rng.IntN(1000) + 1)
					r.Packets[0]++
					live[id] = r
					if err := e.Upsert(r); err != nil {
						t.Fatal(err)
					}
					last[id] = "upsert"
				}
				time.Sleep(150 * time.Millisecond) // one FlushDelay and some
				got := observe(t, observer)
				for id, change := range last {
					els := got[id]
					switch {
					case change == "upsert":
						if len(els) != 1 {
							t.Fatalf("round %d: record %v changed, sent %d elements, want 1", round, id, len(els))
						}
						wantKind := wire.KindInsert
						switch {
						case announced[id] && deleted[id]:
							wantKind = wire.KindUpdate // re-created: peers hold a tombstone
						case announced[id]:
							wantKind = wire.KindUpdateC // only dynamic fields changed
						}
						if els[0].kind != wantKind {
							t.Errorf("round %d: record %v sent as %v, want %v", round, id, els[0].kind, wantKind)
						}
						w := live[id]
						if g := els[0].rec; g.Peers != w.Peers || g.Packets != w.Packets {
							t.Errorf("round %d: record %v sent %+v, want the last change %+v", round, id, g.Peers, w.Peers)
						}
						announced[id] = true
					case announced[id]:
						if len(els) != 1 || els[0].kind != wire.KindDelete {
							t.Errorf("round %d: announced record %v deleted, sent %v, want one delete", round, id, els)
						}
					default:
						if len(els) != 0 {
							t.Errorf("round %d: record %v inserted and deleted before a flush, sent %v, want nothing", round, id, els)
						}
					}
				}
			}
		})
	}
}

// TestPeerChangeFlushesAtOnce: a node that changes a record a peer changed
// less than 2 s ago sends it at once (pfsync's rule for states both
// firewalls see), not after FlushDelay; other changes wait for FlushDelay.
func TestPeerChangeFlushesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := func(id pfsync.NodeID) pfsync.Config {
			return pfsync.Config{Node: id, Transport: network.Attach(id), Insecure: true, FlushDelay: time.Second}
		}
		a, b := mustEngine(t, cfg(1)), mustEngine(t, cfg(2))
		time.Sleep(10 * time.Second) // both in sync, idle
		shared, quiet := testRecord(a.NewID(), 1), testRecord(b.NewID(), 2)
		for _, u := range []struct {
			e *pfsync.Engine
			r record.Record
		}{{a, shared}, {b, quiet}} {
			if err := u.e.Upsert(u.r); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Second) // both replicated, more than 2 s ago

		// a changes shared; b receives it (after a's FlushDelay) and
		// changes it too, within 2 s: b's change must reach a at once.
		shared.Peers[0].Level = 3
		if err := a.Upsert(shared); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		got, ok := b.Get(shared.ID)
		if !ok || got.Peers[0].Level != 3 {
			t.Fatalf("b did not get a's change within FlushDelay: %+v", got.Peers[0])
		}
		got.Packets[0] = 99
		if err := b.Upsert(got); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // no time passes
		if r, _ := a.Get(shared.ID); r.Packets[0] != 99 {
			t.Errorf("b's change of a record a changed 0.1 s before did not leave at once")
		}
		if s := b.Stats(); s.PeerFlushes != 1 {
			t.Errorf("PeerFlushes = %d, want 1", s.PeerFlushes)
		}

		// b changes a record nobody else touched: it waits for FlushDelay.
		quiet.Packets[0] = 7
		if err := b.Upsert(quiet); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if r, _ := a.Get(quiet.ID); r.Packets[0] == 7 {
			t.Errorf("a change no peer made recently left before FlushDelay")
		}
		time.Sleep(1100 * time.Millisecond)
		if r, _ := a.Get(quiet.ID); r.Packets[0] != 7 {
			t.Errorf("the quiet change did not arrive after FlushDelay")
		}

		// More than 2 s after a's change, b's next change of shared waits too.
		time.Sleep(3 * time.Second)
		got, _ = b.Get(shared.ID)
		got.Packets[0] = 100
		if err := b.Upsert(got); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if r, _ := a.Get(shared.ID); r.Packets[0] == 100 {
			t.Errorf("a change 4 s after the peer's left at once")
		}
	})
}

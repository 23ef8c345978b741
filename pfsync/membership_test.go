package pfsync_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// syncTrio starts three engines on a network with a one-way delay of 1 ms
// and waits until each is in sync.
func syncTrio(t *testing.T) (*pfsynctest.Network, [3]*pfsync.Engine) {
	t.Helper()
	network, err := pfsynctest.New(&pfsynctest.Config{Faults: pfsynctest.Faults{Delay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var es [3]*pfsync.Engine
	for i := range es {
		id := pfsync.NodeID(i + 1)
		es[i] = mustEngine(t, pfsync.Config{Node: id, Transport: network.Attach(id), Insecure: true})
	}
	waitFor(t, 10*time.Second, "all three in sync", func() bool {
		for _, e := range es {
			if s := e.Stats(); !s.BulkDone || s.PeersUp != 2 {
				return false
			}
		}
		return true
	})
	return network, es
}

// TestRemovePeer: a peer removed at run time leaves nothing behind — no
// entry in Stats.Peers, no frame held for its ack, no UpsertSync waiting
// for it — and its frames are ignored until it is added back; added back,
// it is greeted at once and gets what it missed.
func TestRemovePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, es := syncTrio(t)
		a, c := es[0], es[2]
		// The transport no longer reaches node 3 (what udp.Unicast.SetPeers
		// does); node 3 keeps running.
		network.Partition([]pfsync.NodeID{1, 2})
		known, err := a.RemovePeer(3)
		if err != nil || !known {
			t.Fatalf("RemovePeer(3) = %v, %v; want true, nil", known, err)
		}
		if known, err := a.RemovePeer(3); err != nil || known {
			t.Errorf("RemovePeer(3) again = %v, %v; want false, nil", known, err)
		}
		if _, ok := a.Stats().Peers[3]; ok {
			t.Error("Stats.Peers still has the removed peer")
		}

		// Within the dead interval node 3 would still count as up; removed,
		// it no longer holds back UpsertSync nor the resend queue.
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		var ids []record.ID
		for i := range 20 {
			rec := testRecord(a.NewID(), uint16(i+1))
			ids = append(ids, rec.ID)
			if err := a.UpsertSync(ctx, rec); err != nil {
				t.Fatalf("UpsertSync with the removed peer silent: %v", err)
			}
		}
		synctest.Wait()
		if s := a.Stats(); s.ResendQueue != 0 || s.PeersUp != 1 {
			t.Errorf("after node 2 acked: ResendQueue %d, PeersUp %d; want 0, 1", s.ResendQueue, s.PeersUp)
		}

		// Node 3 is reachable again but not added back: its frames are
		// dropped and it stays out of the peer set.
		network.Heal()
		refused := a.Stats().PeersRefused
		time.Sleep(3 * time.Second)
		synctest.Wait()
		s := a.Stats()
		if _, ok := s.Peers[3]; ok || s.PeersRefused <= refused {
			t.Errorf("removed peer heard again: in Stats.Peers %v, PeersRefused %d -> %d; want absent, growing", ok, refused, s.PeersRefused)
		}

		// Added back (to the transport, then the engine): greeted at
		// once, it holds every record of node 1 within a few round trips.
		network.Partition([]pfsync.NodeID{1, 2})
		time.Sleep(4 * time.Second) // node 3 sees node 1 down
		network.Heal()
		if err := a.AddPeer(3); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 100*time.Millisecond, "node 3 confirmed by node 1 and holding its records", func() bool {
			p, ok := a.Stats().Peers[3]
			if !ok || !p.Confirmed {
				return false
			}
			for _, id := range ids {
				if _, ok := c.Get(id); !ok {
					return false
				}
			}
			return true
		})
	})
}

// TestAddPeerGreetsAtOnce: a node that joins after the others and that
// they add at run time is confirmed, and has asked for and received its
// bulk sync, within a few round trips, not after a heartbeat.
func TestAddPeerGreetsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(&pfsynctest.Config{Faults: pfsynctest.Faults{Delay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		for i := range 100 {
			if err := a.Upsert(testRecord(a.NewID(), uint16(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second) // founder
		// Node 2 starts while the network does not carry its frames to
		// node 1 (node 1's peer list does not have it yet): its Hello is
		// lost. Then node 1 adds it, between two heartbeats.
		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2})
		b := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true})
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		network.Heal()
		start := time.Now()
		if err := a.AddPeer(2); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, "node 2 in sync", func() bool { return b.Stats().BulkDone && b.Len() == 100 })
		// Greeting, echo, bulk request, bulk: a few 1 ms hops; the next
		// heartbeat would have come up to 1 s later.
		if took := time.Since(start); took > 50*time.Millisecond {
			t.Errorf("node 2 in sync %v after AddPeer, want a few round trips", took)
		}
	})
}

func TestPeerIDErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true})
		for _, tt := range []struct {
			name string
			err  error
			want string
		}{
			{"add 0", a.AddPeer(0), "pfsync: AddPeer node id 0 out of range 1-4294967295"},
			{"add self", a.AddPeer(1), "pfsync: AddPeer node id 1 is this node's own (Config.Node)"},
			{"remove 0", second(a.RemovePeer(0)), "pfsync: RemovePeer node id 0 out of range 1-4294967295"},
			{"remove self", second(a.RemovePeer(1)), "pfsync: RemovePeer node id 1 is this node's own (Config.Node)"},
		} {
			if tt.err == nil || tt.err.Error() != tt.want {
				t.Errorf("%s: error %v, want %q", tt.name, tt.err, tt.want)
			}
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := a.RemovePeer(2); err != pfsync.ErrClosed {
			t.Errorf("RemovePeer after Close = %v, want ErrClosed", err)
		}
		if err := a.AddPeer(2); err != pfsync.ErrClosed {
			t.Errorf("AddPeer after Close = %v, want ErrClosed", err)
		}
	})
}

func second[T any](_ T, err error) error { return err }

// TestReaddedPeerResync: a peer removed and added back while it kept
// running sees this node back after a silence. In the same instant it
// asks for this node's whole-table digest (a resync) and answers the
// greeting; this node, confirming it, asks it for a bulk sync. Whatever
// order those frames arrive in, the peer gets the records it missed
// within a few round trips, not when its resync times out
// (Config.BulkTimeout) and falls back to a whole bulk.
func TestReaddedPeerResync(t *testing.T) {
	for _, tt := range []struct {
		name string
		// delay is how late a frame of node 1 (from1) or node 3 leaves.
		delay func(from1 bool, frame []byte) time.Duration
	}{
		// The digest request arrives first, while node 1 has not
		// confirmed node 3: it must be answered all the same.
		{"request before the echo", func(bool, []byte) time.Duration { return 0 }},
		// The echo arrives first; node 1's answer to the digest request
		// overtakes its bulk request, sent just before it: node 3 must
		// compare the answer though a frame before it is missing.
		{"answer ahead of the stream", func(from1 bool, frame []byte) time.Duration {
			switch {
			case !from1 && hasKind(frame, wire.KindDigest):
				return time.Millisecond
			case from1 && isSequenced(frame):
				return 2 * time.Millisecond
			}
			return 0
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testReaddedPeerResync(t, tt.delay) })
		})
	}
}

func testReaddedPeerResync(t *testing.T, delay func(from1 bool, frame []byte) time.Duration) {
	// No delay but the one chosen: frames arrive in the order they leave.
	network, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr1 := &delayTransport{Transport: network.Attach(1)}
	tr3 := &delayTransport{Transport: network.Attach(3)}
	a := mustEngine(t, pfsync.Config{Node: 1, Transport: tr1, Insecure: true})
	c := mustEngine(t, pfsync.Config{Node: 3, Transport: tr3, Insecure: true})
	waitFor(t, 10*time.Second, "both in sync", func() bool {
		sa, sc := a.Stats(), c.Stats()
		return sa.BulkDone && sc.BulkDone && sa.PeersUp == 1 && sc.PeersUp == 1
	})

	// Node 3 leaves the transport and the engine of node 1, which goes
	// on creating records; node 3 sees node 1 go down.
	network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{3})
	if _, err := a.RemovePeer(3); err != nil {
		t.Fatal(err)
	}
	var ids []record.ID
	for i := range 20 {
		rec := testRecord(a.NewID(), uint16(i+1))
		ids = append(ids, rec.ID)
		if err := a.Upsert(rec); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second)
	synctest.Wait()
	if s := c.Stats(); s.PeersUp != 0 {
		t.Fatalf("node 3: PeersUp %d after 4 s of silence, want 0", s.PeersUp)
	}

	network.Heal()
	tr1.setDelay(func(frame []byte) time.Duration { return delay(true, frame) })
	tr3.setDelay(func(frame []byte) time.Duration { return delay(false, frame) })
	if err := a.AddPeer(3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 100*time.Millisecond, "node 3 holding the records node 1 created meanwhile", func() bool {
		for _, id := range ids {
			if _, ok := c.Get(id); !ok {
				return false
			}
		}
		return true
	})
	if s := c.Stats(); s.Resyncs != 1 || s.ResyncTimeouts != 0 {
		t.Errorf("node 3: Resyncs %d, ResyncTimeouts %d; want 1, 0", s.Resyncs, s.ResyncTimeouts)
	}
}

// delayTransport sends each frame as late as its delay function says
// (none while it has none), so that a test can make frames overtake
// frames sent before them.
type delayTransport struct {
	pfsync.Transport
	mu    sync.Mutex
	delay func(frame []byte) time.Duration
}

func (t *delayTransport) setDelay(f func(frame []byte) time.Duration) {
	t.mu.Lock()
	t.delay = f
	t.mu.Unlock()
}

func (t *delayTransport) Send(to pfsync.NodeID, frame []byte) error {
	t.mu.Lock()
	f := t.delay
	t.mu.Unlock()
	var d time.Duration
	if f != nil {
		d = f(frame)
	}
	if d == 0 {
		return t.Transport.Send(to, frame)
	}
	p := bytes.Clone(frame) // the engine reuses its buffer
	time.AfterFunc(d, func() { t.Transport.Send(to, p) })
	return nil
}

// hasKind reports whether frame holds an element of kind.
func hasKind(frame []byte, kind wire.Kind) bool {
	var rd wire.Reader
	if rd.Reset(frame) != nil {
		return false
	}
	for rd.Next() {
		if rd.Kind() == kind {
			return true
		}
	}
	return false
}

// isSequenced reports whether frame belongs to its sender's reliable
// stream.
func isSequenced(frame []byte) bool {
	_, seqd, _ := frameInfo(frame)
	return seqd
}

//go:build linux

package udp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/pfsync/udp"
)

// TestEngineMembershipOverLoopback: a third node joins two running ones
// over UDP unicast on loopback (each node on its own 127.0.0.x, so that
// sources are told apart by address): the running nodes add it to their
// transports and engines, and it gets node 1's table by bulk sync. Then
// node 1 removes it: node 1 forgets it, no longer sends to it, and drops
// what it still sends. Runs as any user.
func TestEngineMembershipOverLoopback(t *testing.T) {
	psk, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var aps [3]netip.AddrPort
	for i := range aps {
		a := netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
		aps[i] = netip.AddrPortFrom(a, freePort(t, a))
	}
	peersOf := func(ids ...int) map[pfsync.NodeID]netip.AddrPort {
		m := map[pfsync.NodeID]netip.AddrPort{}
		for _, id := range ids {
			m[pfsync.NodeID(id)] = aps[id-1]
		}
		return m
	}
	var (
		trs    [3]*udp.Unicast
		es     [3]*pfsync.Engine
		tables [3]*pfsync.MemTable
	)
	open := func(id int, peers map[pfsync.NodeID]netip.AddrPort) {
		u, err := udp.NewUnicast(udp.UnicastConfig{Local: aps[id-1], Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		trs[id-1], tables[id-1] = u, new(pfsync.MemTable)
		es[id-1] = engStart(t, pfsync.NodeID(id), u, engSealer(t, pfsync.NodeID(id), 1, psk), tables[id-1])
	}
	open(1, peersOf(2))
	open(2, peersOf(1))
	for i := range 200 {
		if err := es[0].Upsert(engRecord(es[0].NewID(), i)); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, es[0], tables[1])

	// Node 3 joins: it knows both; they learn of it.
	open(3, peersOf(1, 2))
	for i, others := range [][]int{{2, 3}, {1, 3}} {
		if err := trs[i].SetPeers(peersOf(others...)); err != nil {
			t.Fatal(err)
		}
		if err := es[i].AddPeer(3); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, es[0], tables[2])
	waitUntil(t, "node 1 sees node 3 confirmed", func() bool { return es[0].Stats().Peers[3].Confirmed })

	// Node 1 removes node 3 (node 3 still lists node 1).
	if err := trs[0].SetPeers(peersOf(2)); err != nil {
		t.Fatal(err)
	}
	if known, err := es[0].RemovePeer(3); err != nil || !known {
		t.Fatalf("RemovePeer(3) = %v, %v", known, err)
	}
	dropped := trs[0].Stats().UnknownSource
	for i := range 10 {
		if err := es[0].Upsert(engRecord(es[0].NewID(), 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, es[0], tables[1])
	waitUntil(t, "node 3's frames dropped by node 1's transport", func() bool { return trs[0].Stats().UnknownSource > dropped })
	s := es[0].Stats()
	if _, ok := s.Peers[3]; ok {
		t.Error("node 1 still lists node 3 in Stats.Peers")
	}
	if got := tables[2].Len(); got != 200 {
		t.Errorf("the removed node holds %d records, want the 200 from before its removal", got)
	}
	waitUntil(t, "node 1's resend queue released", func() bool { return es[0].Stats().ResendQueue == 0 })
}

// freePort returns a UDP port free on addr at the time of the call.
func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	u, err := udp.NewUnicast(udp.UnicastConfig{Local: netip.AddrPortFrom(addr, 0), Peers: map[pfsync.NodeID]netip.AddrPort{9: netip.AddrPortFrom(addr, 9)}})
	if err != nil {
		t.Skipf("no UDP on %v: %v", addr, err)
	}
	port := u.LocalAddr().Port()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// waitUntil polls cond until it holds; the deadline only catches hangs.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(engDeadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, engDeadline)
		}
		<-tick.C
	}
}

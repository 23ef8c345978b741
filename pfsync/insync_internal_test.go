package pfsync

import (
	"testing"
	"time"
)

// TestSyncStateCheck: the verdicts of syncState.check, and the demotion
// each leaves.
func TestSyncStateCheck(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const window = 5 * time.Second
	up := func(synced, failed bool) *peer {
		return &peer{up: true, confirmed: true, synced: synced, bulkFailed: failed}
	}
	for _, tt := range []struct {
		name  string
		peers map[NodeID]*peer
		at    time.Duration
		want  syncVerdict
		dem   int
	}{
		{"alone, window open", nil, time.Second, notYet, 32},
		{"alone, window over: founder", nil, window, founder, 0},
		{"a peer still sending its bulk", map[NodeID]*peer{2: up(false, false)}, window, notYet, 32},
		{"every peer up synced", map[NodeID]*peer{2: up(true, false), 3: up(true, false)}, time.Second, synced, 0},
		{"one bulk failed every retry", map[NodeID]*peer{2: up(true, false), 3: up(false, true)}, time.Second, degraded, 1},
		{"a down peer is not required", map[NodeID]*peer{2: up(true, false), 3: {confirmed: true}}, time.Second, synced, 0},
		{"every peer went silent mid-bulk", map[NodeID]*peer{2: {confirmed: true}}, window, notYet, 32},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := syncState{startedAt: t0}
			if got := s.check(tt.peers, t0.Add(tt.at), window); got != tt.want {
				t.Errorf("check = %d, want %d", got, tt.want)
			}
			if got := s.demotion(32, 1); got != tt.dem {
				t.Errorf("demotion = %d, want %d", got, tt.dem)
			}
			if tt.want != notYet && s.check(nil, t0, window) != notYet {
				t.Error("a second check reported the verdict again")
			}
		})
	}
}

// TestPeerSetCounts: what the engine asks of all its peers at once.
func TestPeerSetCounts(t *testing.T) {
	ps := peerSet{
		2: {up: true, confirmed: true, acked: 5},
		3: {up: true, acked: 2},        // not confirmed: never waited for
		4: {confirmed: true, acked: 1}, // down: neither
		5: {up: true, confirmed: true, acked: 9},
	}
	if n := ps.up(); n != 3 {
		t.Errorf("up = %d, want 3", n)
	}
	if n := ps.unconfirmed(); n != 1 {
		t.Errorf("unconfirmed = %d, want 1", n)
	}
	if n := ps.unacked(7); n != 1 {
		t.Errorf("unacked(7) = %d, want 1 (peer 2)", n)
	}
	if m := ps.minAcked(8); m != 2 {
		t.Errorf("minAcked(8) = %d, want 2 (peer 3 is up)", m)
	}
	if m := (peerSet{}).minAcked(8); m != 8 {
		t.Errorf("no peer: minAcked(8) = %d, want 8", m)
	}
}

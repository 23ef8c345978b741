package pfsync

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
)

func testRecords(t0 time.Time) records {
	return newRecords(1, t0, 30*time.Second, slog.New(slog.DiscardHandler))
}

// TestRecordsCounts: adding, flagging and removing entries keeps local
// (records this node created) and external (dirty entries) exact.
func TestRecordsCounts(t *testing.T) {
	s := testRecords(time.Now())
	put := func(id record.ID, flags eflag) {
		ent := entry{ver: 1, flags: flags}
		s.setData(&ent, []byte{byte(id.Num), 2, 3})
		s.created(id)
		s.dirtied(0, ent.flags)
		s.store[id] = ent
	}
	own, other := record.ID{Creator: 1, Num: 1}, record.ID{Creator: 2, Num: 1}
	put(own, fCommitted)
	put(other, fDirty)
	if s.local != 1 || s.external != 1 {
		t.Fatalf("after two adds: local %d external %d, want 1 1", s.local, s.external)
	}
	if got := s.data(s.store[other]); !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Errorf("data = %x", got)
	}
	s.remove(other, s.store[other])
	s.remove(own, s.store[own])
	if s.local != 0 || s.external != 0 || len(s.store) != 0 || s.arena.live != 0 {
		t.Errorf("after removing both: local %d external %d len %d live %d, want all 0", s.local, s.external, len(s.store), s.arena.live)
	}
}

// TestRecordsCompaction: once garbage outweighs the live encodings the
// arena is rebuilt, and every entry still reads its own encoding.
func TestRecordsCompaction(t *testing.T) {
	s := testRecords(time.Now())
	want := map[record.ID][]byte{}
	for i := range 100 {
		id := record.ID{Creator: 2, Num: uint64(i)}
		b := bytes.Repeat([]byte{byte(i)}, 10+i)
		ent := entry{}
		s.setData(&ent, b)
		s.store[id] = ent
		want[id] = b
	}
	big := make([]byte, 64<<10)
	id := record.ID{Creator: 2, Num: 1000}
	ent := entry{}
	for s.compactions == 0 {
		s.setData(&ent, big) // each replaces the last: garbage grows
		s.store[id] = ent
		s.maybeCompact()
		ent = s.store[id]
	}
	want[id] = big
	for id, b := range want {
		if got := s.data(s.store[id]); !bytes.Equal(got, b) {
			t.Fatalf("%v after compaction: %d bytes, want %d", id, len(got), len(b))
		}
	}
	if s.arena.total != s.arena.live {
		t.Errorf("after compaction: total %d, live %d", s.arena.total, s.arena.live)
	}
}

// TestTombCovers: a delete with version v suppresses every copy ≤ v and
// nothing newer; a second delete keeps the higher version and the later
// expiry; expireTombs forgets only what is due.
func TestTombCovers(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	rng := rand.New(rand.NewPCG(7, 8))
	for range 1000 {
		v, u := rng.Uint64N(10), rng.Uint64N(20)
		if got, want := (tomb{ver: v}).covers(u), u <= v; got != want {
			t.Fatalf("delete v%d, copy v%d: covered=%v, want %v", v, u, got, want)
		}
	}
	s := testRecords(t0)
	id := record.ID{Creator: 7, Num: 1}
	s.addTomb(id, 5, t0)
	s.addTomb(id, 3, t0.Add(10*time.Second))
	if got, want := s.tombs[id], (tomb{ver: 5, expires: t0.Add(40 * time.Second).UnixNano()}); got != want {
		t.Errorf("second delete: %+v, want %+v", got, want)
	}
	s.addTomb(record.ID{Creator: 7, Num: 2}, 1, t0)
	s.expireTombs(t0.Add(35 * time.Second))
	if _, ok := s.tombs[id]; !ok || len(s.tombs) != 1 {
		t.Errorf("expireTombs at +35s left %d tombstones (want only the one due at +40s)", len(s.tombs))
	}
}

// TestRecordsClock: lifetimes age by whole seconds of the store's clock,
// never below 1, and 0 (no lifetime) stays 0.
func TestRecordsClock(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	s := testRecords(t0)
	ent := entry{at: s.clock(t0.Add(2 * time.Second))}
	for _, tt := range []struct {
		at     time.Duration
		expire uint32
		want   uint32
	}{
		{time.Second, 60, 60},                          // before the entry's time: not aged
		{2*time.Second + 999*time.Millisecond, 60, 60}, // same second
		{12 * time.Second, 60, 50},
		{100 * time.Second, 60, 1},
		{100 * time.Second, 0, 0},
	} {
		if got := aged(tt.expire, s.elapsed(ent, t0.Add(tt.at))); got != tt.want {
			t.Errorf("expire %d at +%v: %d, want %d", tt.expire, tt.at, got, tt.want)
		}
	}
	s.peerChanged(&ent, t0.Add(10*time.Second))
	if !s.peerRecently(ent, t0.Add(11*time.Second)) || s.peerRecently(ent, t0.Add(12*time.Second)) {
		t.Errorf("peerRecently: want true 1 s after, false 2 s after")
	}
}

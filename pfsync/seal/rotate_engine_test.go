package seal

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
)

// flow returns a valid TCP record with the given id.
func flow(id record.ID, port uint16) record.Record {
	orig := record.Tuple{
		Src: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port),
		Dst: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 80),
	}
	return record.Record{ID: id, Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()}}
}

// TestRotateRunningEngines: two engines exchange records all along a key
// rotation done in the documented three steps, with the nodes taking each
// step in a different order (in step 2, node 2 seals under the new key
// while node 1 still seals under the old one). No frame is refused and no
// record is lost; once the old key is removed, a frame sealed under it is
// refused and counted.
func TestRotateRunningEngines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(&pfsynctest.Config{Faults: pfsynctest.Faults{Delay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		oldK, newK := Key{ID: 1, Secret: testKey(1)}, Key{ID: 2, Secret: testKey(2)}
		var sealers [2]*Sealer
		var engines [2]*pfsync.Engine
		for i := range 2 {
			id := pfsync.NodeID(i + 1)
			sealers[i] = newSealer(t, id, 1, []Key{oldK}, 1)
			e, err := pfsync.New(pfsync.Config{Node: id, Transport: network.Attach(id), Sealer: sealers[i]})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			engines[i] = e
		}
		var ids []record.ID
		traffic := func() {
			// Both nodes report new flows, one each per 10 ms for 200 ms.
			for range 20 {
				for _, e := range engines {
					rec := flow(e.NewID(), uint16(len(ids)+1))
					ids = append(ids, rec.ID)
					if err := e.Upsert(rec); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		rotate := func(node int, keys []Key, send uint8) {
			t.Helper()
			if err := sealers[node-1].Rotate(keys, send); err != nil {
				t.Fatal(err)
			}
			traffic()
		}
		traffic()
		time.Sleep(time.Second) // both in sync, every frame so far acknowledged
		var before [2]pfsync.Stats
		for i, e := range engines {
			before[i] = e.Stats()
		}
		rotate(1, []Key{oldK, newK}, 1) // step 1: both keys accepted
		rotate(2, []Key{oldK, newK}, 1)
		rotate(2, []Key{oldK, newK}, 2) // step 2: seal under the new key, node 2 first
		rotate(1, []Key{oldK, newK}, 2)
		rotate(1, []Key{newK}, 2) // step 3: the old key removed
		rotate(2, []Key{newK}, 2)
		time.Sleep(time.Second)
		synctest.Wait()

		for i, e := range engines {
			for _, id := range ids {
				if _, ok := e.Get(id); !ok {
					t.Errorf("node %d lacks record %v", i+1, id)
				}
			}
			s, b := e.Stats(), before[i]
			if s.AuthFailures != 0 || s.Retransmits != b.Retransmits || s.NacksSent != b.NacksSent || s.GapsGivenUp != 0 || s.BulkStarted != b.BulkStarted {
				t.Errorf("node %d during the rotation: %d frames refused, %d records retransmitted, %d nacks sent, %d gaps given up, %d bulk syncs started: frames were lost",
					i+1, s.AuthFailures, s.Retransmits-b.Retransmits, s.NacksSent-b.NacksSent, s.GapsGivenUp, s.BulkStarted-b.BulkStarted)
			}
			if acc, send := sealers[i].KeyIDs(); !cmp.Equal(acc, []uint8{2}) || send != 2 {
				t.Errorf("node %d KeyIDs = %v, %d; want [2], 2", i+1, acc, send)
			}
		}

		// A node still on the old key alone is refused, and counted.
		stale := newSealer(t, 3, 1, []Key{oldK}, 1)
		tr := network.Attach(3)
		defer tr.Close()
		frame, err := stale.Seal(nil, []byte("anything"))
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(pfsync.Broadcast, frame); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		for i, e := range engines {
			if got := e.Stats().UnknownKey; got != 1 {
				t.Errorf("node %d: Stats.UnknownKey = %d, want 1 (the frame under the removed key)", i+1, got)
			}
			if got := sealers[i].Stats().UnknownKey; got != 1 {
				t.Errorf("node %d: Sealer Stats.UnknownKey = %d, want 1", i+1, got)
			}
		}
	})
}

// TestRotateWithoutOverlap shows why the steps matter: a node sealing under
// a key its peer was not given yet is refused until the peer has it.
func TestRotateWithoutOverlap(t *testing.T) {
	a := newSealer(t, 1, 1, oneKey(1, 1), 1)
	b := newSealer(t, 2, 1, oneKey(1, 1), 1)
	if err := a.Rotate(oneKey(2, 2), 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(nil, seal(t, a, "early")); err == nil {
		t.Fatal("a frame under a key the receiver does not hold was accepted")
	}
	if err := b.Rotate([]Key{{ID: 1, Secret: testKey(1)}, {ID: 2, Secret: testKey(2)}}, 1); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, b, seal(t, a, "after"), 1, "after")
}

func TestLoadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, key []byte) string {
		p := filepath.Join(dir, name)
		if err := WriteKeyFile(p, key); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k1, k2 := write("k1", testKey(1)), write("k2", testKey(2))
	same := write("same", testKey(1))
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, testKey(3), 0o644); err != nil {
		t.Fatal(err)
	}

	keys, err := LoadKeyFiles([]KeyFile{{ID: 1, Path: k1}, {ID: 2, Path: k2}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{ID: 1, Secret: testKey(1)}, {ID: 2, Secret: testKey(2)}}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	s := newSealer(t, 1, 1, keys, 1)
	if acc, send := s.KeyIDs(); !cmp.Equal(acc, []uint8{1, 2}) || send != 1 {
		t.Errorf("KeyIDs = %v, %d; want [1 2], 1", acc, send)
	}

	derived, err := DeriveKeys(keys, func(psk []byte) ([]byte, error) { return testKey(psk[0]), nil })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Key{{ID: 1, Secret: testKey(keys[0].Secret[0])}, {ID: 2, Secret: testKey(keys[1].Secret[0])}}, derived); diff != "" {
		t.Errorf("DeriveKeys (-want +got):\n%s", diff)
	}
	_, err = DeriveKeys(keys, func(psk []byte) ([]byte, error) { return nil, errors.New("no") })
	if want := "seal: keys[0] (id 1): no"; err == nil || err.Error() != want {
		t.Errorf("DeriveKeys error %v, want %q", err, want)
	}

	for _, tt := range []struct {
		files []KeyFile
		want  string
	}{
		{nil, "seal: key files empty; want at least one"},
		{[]KeyFile{{ID: 1, Path: k1}, {ID: 1, Path: k2}}, "seal: key files[1] (id 1): duplicate key id, also key files[0] " + k1},
		{[]KeyFile{{ID: 1, Path: k1}, {ID: 2, Path: same}}, "seal: key files[1] (id 2): same key as key files[0] (id 1)"},
		{[]KeyFile{{ID: 1, Path: k1}, {ID: 3, Path: loose}}, "seal: key files[1] (id 3): seal: key file " + loose + " is accessible by group or others (mode 0644); make it 0600 or 0400"},
	} {
		if _, err := LoadKeyFiles(tt.files); err == nil || err.Error() != tt.want {
			t.Errorf("LoadKeyFiles(%v) = %v, want %q", tt.files, err, tt.want)
		}
	}
}

package pfsync_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

// tagSealer is a stand-in Sealer: "S", the sender id, the plaintext.
// It authenticates nothing; it lets the test drive every Open error.
type tagSealer struct{ node pfsync.NodeID }

func (s tagSealer) Overhead() int { return 5 }

func (s tagSealer) Seal(dst, pt []byte) ([]byte, error) {
	dst = append(dst, 'S')
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.node))
	return append(dst, pt...), nil
}

func (s tagSealer) Open(dst, frame []byte) (pfsync.NodeID, []byte, error) {
	switch {
	case len(frame) < 5:
		return 0, nil, fmt.Errorf("tag: %w", pfsync.ErrTruncated)
	case frame[0] == 'R':
		return 0, nil, fmt.Errorf("tag: %w", pfsync.ErrReplay)
	case frame[0] == 'K':
		return 0, nil, fmt.Errorf("tag: %w", pfsync.ErrUnknownKey)
	case frame[0] != 'S':
		return 0, nil, fmt.Errorf("tag: %w", pfsync.ErrBadAuth)
	}
	return pfsync.NodeID(binary.BigEndian.Uint32(frame[1:])), append(dst, frame[5:]...), nil
}

func TestSealedEngines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		var tabB pfsync.MemTable
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Sealer: tagSealer{1}})
		b := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Sealer: tagSealer{2}, Table: &tabB})
		id := a.NewID()
		if err := a.Upsert(testRecord(id, 7)); err != nil {
			t.Fatal(err)
		}
		// An intruder on the sync link.
		x := network.Attach(3)
		for _, f := range []string{"Xgarbage", "S", "Rreplayed", "Kkey!"} {
			if err := x.Send(2, []byte(f)); err != nil {
				t.Fatal(err)
			}
		}
		// Authenticated as node 9 but claiming to be node 3 in the header.
		hdr := []byte{1, 0, 0, 0, 0, 3}              // version 1, no flags, sender 3
		hdr = binary.BigEndian.AppendUint64(hdr, 42) // epoch
		hdr = binary.BigEndian.AppendUint64(hdr, 1)  // seq
		forged, _ := tagSealer{9}.Seal(nil, hdr)
		if err := x.Send(2, forged); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := tabB.Get(id); !ok {
			t.Error("record not replicated between sealed engines")
		}
		s := b.Stats()
		got := [6]uint64{s.AuthFailures, s.BadAuth, s.Truncated, s.Replay, s.UnknownKey, s.BadValue}
		want := [6]uint64{4, 1, 1, 1, 1, 1}
		if got != want {
			t.Errorf("auth failures, bad auth, truncated, replay, unknown key, bad value = %v, want %v", got, want)
		}
	})
}

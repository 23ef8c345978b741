package pfsync

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/wire"
)

// TestElementTableCoversWire: every kind package wire knows has a handler
// here, and no handler waits for a kind it does not know: adding a kind
// to wire without deciding how the engine reads it fails this test.
func TestElementTableCoversWire(t *testing.T) {
	for k := range 256 {
		kind := wire.Kind(k)
		has := k < len(elementHandlers) && elementHandlers[k].handle != nil
		if has != kind.Known() {
			t.Errorf("%v: handler %v, known to wire %v", kind, has, kind.Known())
		}
	}
	for _, k := range []wire.Kind{wire.KindHello, wire.KindRequest, wire.KindBulkRequest} {
		if !elementHandlers[k].unconfirmed {
			t.Errorf("%v is not read from an unconfirmed peer", k)
		}
	}
}

// TestBadElementCountedAndLogged: a malformed or forbidden element is
// counted each time and logged once per interval and kind, with the peer
// and the reason; the elements after it are still read.
func TestBadElementCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	e, err := New(Config{Node: 1, Transport: discard{}, Insecure: true,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	e.started = true
	now := time.Now()
	confirm(t, e, 2, 9, now)
	var b wire.Builder
	if err := b.Reset(nil, 1500, wire.Header{Sender: 2, Epoch: 9, Seq: 1, Flags: wire.FlagUnsequenced}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []wire.Clear{{Creator: 1}, {Creator: 3}} { // not 2's records
		if err := b.AddClear(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddHeartbeat(wire.Heartbeat{Interval: time.Second}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	before := e.stats.BadValue
	e.input(Datagram{Payload: b.Frame()}, now)
	got := e.stats.BadValue - before
	e.mu.Unlock()
	if got != 2 {
		t.Errorf("BadValue rose by %d, want 2", got)
	}
	if n := strings.Count(logs.String(), "pfsync: bad element"); n != 1 {
		t.Errorf("%d log lines for two bad clears in one interval, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "peer=2") || !strings.Contains(logs.String(), "kind=clear") {
		t.Errorf("log line without peer or kind: %s", logs.String())
	}
}

package pfsynctest

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/google/go-cmp/cmp"
)

func mustNew(t *testing.T, cfg *Config) *Network {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// drain returns the payloads queued for ep without blocking.
func drain(ep *Endpoint) []string {
	var got []string
	for {
		select {
		case d := <-ep.inbox:
			got = append(got, string(d.Payload))
		default:
			return got
		}
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"mtu", Config{MTU: 10}, "pfsynctest: Config.MTU 10 out of range 64-1048576"},
		{"queue", Config{QueueLen: -1}, "pfsynctest: Config.QueueLen -1 out of range 1-16777216"},
		{"loss", Config{Faults: Faults{Loss: 1.5}}, "pfsynctest: Config.Faults.Loss 1.5 out of range 0-1"},
		{"delay", Config{Faults: Faults{Delay: -1}}, "pfsynctest: Config.Faults.Delay -1ns out of range (0 or more)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(&tt.cfg)
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnicastBroadcastMTU(t *testing.T) {
	n := mustNew(t, &Config{MTU: 100})
	a, b, c := n.Attach(1), n.Attach(2), n.Attach(3)
	if err := a.Send(2, []byte("to-b")); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(pfsync.Broadcast, []byte("all")); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(2, make([]byte, 101)); err == nil {
		t.Error("Send accepted a frame above the MTU")
	}
	if diff := cmp.Diff([]string{"to-b", "all"}, drain(b)); diff != "" {
		t.Errorf("b got (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"all"}, drain(c)); diff != "" {
		t.Errorf("c got (-want +got):\n%s", diff)
	}
	if got := drain(a); len(got) != 0 {
		t.Errorf("sender received its own frames: %q", got)
	}
	d, err := func() (pfsync.Datagram, error) { a.Send(3, []byte("x")); return c.Receive() }()
	if err != nil || d.From != 1 || string(d.Payload) != "x" {
		t.Errorf("Receive = %+v, %v; want frame x from 1", d, err)
	}
	want := Stats{Sent: 3, Delivered: 4, TooBig: 1}
	if diff := cmp.Diff(want, n.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := mustNew(t, nil)
	a, b, c := n.Attach(1), n.Attach(2), n.Attach(3)
	n.Partition([]pfsync.NodeID{1, 2}, []pfsync.NodeID{3})
	a.Send(pfsync.Broadcast, []byte("p"))
	if got := drain(b); len(got) != 1 {
		t.Errorf("b in the same group got %q", got)
	}
	if got := drain(c); len(got) != 0 {
		t.Errorf("c across the partition got %q", got)
	}
	n.Heal()
	a.Send(3, []byte("h"))
	if diff := cmp.Diff([]string{"h"}, drain(c)); diff != "" {
		t.Errorf("after heal (-want +got):\n%s", diff)
	}
	if got := n.Stats().Partitioned; got != 1 {
		t.Errorf("Partitioned = %d, want 1", got)
	}
}

// TestDeterministic checks that the same seed gives the same losses and
// duplicates, and that the fault rates are roughly what was asked.
func TestDeterministic(t *testing.T) {
	run := func(seed uint64) []string {
		n := mustNew(t, &Config{Seed: seed, QueueLen: 10000, Faults: Faults{Loss: 0.3, Duplicate: 0.1}})
		a, b := n.Attach(1), n.Attach(2)
		for i := range 1000 {
			a.Send(2, []byte{byte(i), byte(i >> 8)})
		}
		return drain(b)
	}
	x, y := run(7), run(7)
	if diff := cmp.Diff(x, y); diff != "" {
		t.Errorf("same seed, different deliveries (-first +second):\n%s", diff)
	}
	if z := run(8); cmp.Equal(x, z) {
		t.Error("different seeds gave identical deliveries")
	}
	// 1000 frames, 30 % loss, 10 % of the rest duplicated: about 770.
	if len(x) < 650 || len(x) > 900 {
		t.Errorf("delivered %d frames, want about 770", len(x))
	}
}

func TestDelayAndReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, &Config{Seed: 1, Faults: Faults{Delay: 10 * time.Millisecond, Reorder: 0.5}})
		a, b := n.Attach(1), n.Attach(2)
		for i := range 100 {
			a.Send(2, []byte{byte(i)})
		}
		synctest.Wait()
		if got := drain(b); len(got) != 0 {
			t.Fatalf("%d frames arrived before the delay", len(got))
		}
		time.Sleep(time.Second)
		got := drain(b)
		if len(got) != 100 {
			t.Fatalf("got %d frames, want 100", len(got))
		}
		inOrder := true
		for i := range got {
			if got[i][0] != byte(i) {
				inOrder = false
			}
		}
		if inOrder {
			t.Error("Reorder 0.5 delivered 100 frames in order")
		}
	})
}

func TestCloseAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, nil)
		a, b := n.Attach(1), n.Attach(2)
		errc := make(chan error, 1)
		go func() { _, err := b.Receive(); errc <- err }()
		synctest.Wait()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Receive after Close = %v, want net.ErrClosed", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := b.Send(1, []byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Send after Close = %v, want net.ErrClosed", err)
		}
		a.Send(2, []byte("lost"))
		b2 := n.Attach(2)
		a.Send(2, []byte("new"))
		if diff := cmp.Diff([]string{"new"}, drain(b2)); diff != "" {
			t.Errorf("restarted node got (-want +got):\n%s", diff)
		}
		// Attaching an id that is attached closes the old endpoint.
		b3 := n.Attach(2)
		if _, err := b2.Receive(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("replaced endpoint Receive = %v, want net.ErrClosed", err)
		}
		a.Send(2, []byte("newest"))
		if diff := cmp.Diff([]string{"newest"}, drain(b3)); diff != "" {
			t.Errorf("re-attached node got (-want +got):\n%s", diff)
		}
	})
}

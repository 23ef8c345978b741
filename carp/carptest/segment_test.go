package carptest_test

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/google/go-cmp/cmp"
)

// drain returns every packet queued at p without blocking (call after
// synctest.Wait).
func drain(t *testing.T, p *carptest.Port) []carp.Packet {
	t.Helper()
	var out []carp.Packet
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			pkt, err := p.Receive()
			if err != nil {
				return
			}
			out = append(out, pkt)
		}
	}()
	synctest.Wait() // the reader is now blocked on an empty queue
	p.Close()
	<-done
	return out
}

func TestDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := seg.Join(carp.IPv4, carp.IPv6)
		b := seg.Join(carp.IPv4)
		c := seg.Join(carp.IPv6)
		if err := a.Send(carp.IPv4, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(carp.IPv6, []byte{2}); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(carp.IPv6, []byte{3}); err == nil {
			t.Error("b sent on a family it does not have")
		}
		synctest.Wait()
		wantB := []carp.Packet{{Family: carp.IPv4, Payload: []byte{1}, Src: a.Addr(carp.IPv4),
			Dst: mustAddr("224.0.0.18"), TTL: 255, IfIndex: 2}}
		if diff := cmp.Diff(wantB, drain(t, b), cmpAddr); diff != "" {
			t.Errorf("b (-want +got):\n%s", diff)
		}
		wantC := []carp.Packet{{Family: carp.IPv6, Payload: []byte{2}, Src: a.Addr(carp.IPv6),
			Dst: mustAddr("ff02::12"), TTL: 255, IfIndex: 3}}
		if diff := cmp.Diff(wantC, drain(t, c), cmpAddr); diff != "" {
			t.Errorf("c (-want +got):\n%s", diff)
		}
		if got := drain(t, a); len(got) != 0 {
			t.Errorf("a received its own packets: %v", got)
		}
	})
}

func TestLinkControls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(7)
		a, b, c := seg.Join(carp.IPv4), seg.Join(carp.IPv4), seg.Join(carp.IPv4)
		seg.SetLink(a, b, carptest.Link{Delay: 10 * time.Millisecond, TTL: 64, IfIndex: 9})
		seg.SetLink(a, c, carptest.Link{Duplicate: 1})
		t0 := time.Now()
		a.Send(carp.IPv4, []byte{1})
		var at time.Time
		pkt, err := b.Receive()
		at = time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if at.Sub(t0) != 10*time.Millisecond || pkt.TTL != 64 || pkt.IfIndex != 9 {
			t.Errorf("b got %+v after %v", pkt, at.Sub(t0))
		}
		synctest.Wait()
		if got := len(drain(t, c)); got != 2 {
			t.Errorf("c got %d copies, want 2", got)
		}
	})
}

func TestPartitionCrashInject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a, b, c := seg.Join(carp.IPv4), seg.Join(carp.IPv4), seg.Join(carp.IPv4)
		seg.Partition([]*carptest.Port{a, b}, []*carptest.Port{c})
		a.Send(carp.IPv4, []byte{1})
		c.Send(carp.IPv4, []byte{2})
		seg.Heal()
		b.Crash()
		a.Send(carp.IPv4, []byte{3}) // b crashed: lost for b
		if err := b.Send(carp.IPv4, []byte{4}); err != nil {
			t.Errorf("crashed Send: %v", err)
		}
		b.Revive()
		c.Inject(carp.Packet{Family: carp.IPv4, Payload: []byte{5}, TTL: 1})
		synctest.Wait()
		payloads := func(ps []carp.Packet) []byte {
			var out []byte
			for _, p := range ps {
				out = append(out, p.Payload...)
			}
			return out
		}
		if diff := cmp.Diff([]byte{1}, payloads(drain(t, b))); diff != "" {
			t.Errorf("b (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]byte{3, 5}, payloads(drain(t, c))); diff != "" {
			t.Errorf("c (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]byte(nil), payloads(drain(t, a))); diff != "" {
			t.Errorf("a (-want +got):\n%s", diff)
		}
	})
}

// TestLossDeterministic: the same seed loses the same packets.
func TestLossDeterministic(t *testing.T) {
	run := func(seed uint64) []byte {
		var got []byte
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(seed)
			seg.SetDefaultLink(carptest.Link{Loss: 0.5})
			a, b := seg.Join(carp.IPv4), seg.Join(carp.IPv4)
			for i := range 100 {
				a.Send(carp.IPv4, []byte{byte(i)})
			}
			synctest.Wait()
			for _, p := range drain(t, b) {
				got = append(got, p.Payload...)
			}
		})
		return got
	}
	first := run(3)
	if len(first) < 30 || len(first) > 70 {
		t.Errorf("%d of 100 delivered at 50%% loss", len(first))
	}
	if diff := cmp.Diff(first, run(3)); diff != "" {
		t.Errorf("same seed, different losses (-first +second):\n%s", diff)
	}
	if cmp.Equal(first, run(4)) {
		t.Error("different seeds, same losses")
	}
}

func TestSendErrorAndClose(t *testing.T) {
	seg := carptest.NewSegment(1)
	a := seg.Join(carp.IPv4)
	a.SetSendError(carptest.ErrSend)
	if err := a.Send(carp.IPv4, []byte{1}); !errors.Is(err, carptest.ErrSend) {
		t.Errorf("Send = %v", err)
	}
	a.SetSendError(nil)
	if err := a.Send(carp.IPv4, []byte{1}); err != nil {
		t.Errorf("Send = %v", err)
	}
	if diff := cmp.Diff([]byte{1}, a.LastSent(carp.IPv4)); diff != "" {
		t.Errorf("LastSent (-want +got):\n%s", diff)
	}
	a.Close()
	a.Close()
	if _, err := a.Receive(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive after Close = %v", err)
	}
	if err := a.Send(carp.IPv4, []byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
}

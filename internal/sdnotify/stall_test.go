package sdnotify

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// stuckTransport is a carp.Transport whose Send can be made to block,
// as a protocol loop hung in the kernel would.
type stuckTransport struct {
	*carptest.Port
	block   chan struct{} // closed: Send blocks until release
	release chan struct{}
}

func (s *stuckTransport) Send(f carp.Family, p []byte) error {
	select {
	case <-s.block:
		<-s.release
	default:
	}
	return s.Port.Send(f, p)
}

func TestStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		tr := &stuckTransport{Port: seg.Join(carp.IPv4), block: make(chan struct{}), release: make(chan struct{})}
		g, err := carp.NewGroup(carp.Config{
			VHID: 7, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			StartAsMaster: true, Transport: tr,
		})
		if err != nil {
			t.Fatal(err)
		}
		s := NewStall(time.Now(), g)
		limit := 3*g.MasterDownInterval() + stepDownMargin

		// Not started: INIT, never a stall.
		time.Sleep(2 * limit)
		if err := s.Check(time.Now()); err != nil {
			t.Fatalf("group in INIT: %v", err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		// Keep the checks half an interval off the adverts' instants: an
		// advert due at the very instant the test wakes may run before or
		// after the test's next step (the bubble orders neither), and one
		// sent just after a check counts as progress at the check after.
		time.Sleep(g.AdvertInterval() / 2)
		for range 3 {
			time.Sleep(limit)
			if err := s.Check(time.Now()); err != nil {
				t.Fatalf("running master: %v", err)
			}
		}
		close(tr.block) // the next advert hangs the loop
		time.Sleep(g.AdvertInterval() + limit/2)
		s.Check(time.Now())
		time.Sleep(limit)
		if err := s.Check(time.Now()); err == nil {
			t.Fatal("a hung protocol loop passed the check")
		}
		close(tr.release)
		synctest.Wait()
		time.Sleep(2 * g.AdvertInterval())
		if err := s.Check(time.Now()); err != nil {
			t.Fatalf("loop running again: %v", err)
		}
		g.Close()
	})
}

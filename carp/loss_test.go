package carp_test

import (
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// recorder wraps a transport and records when each packet was handed to
// the group, and from whom.
type recorder struct {
	carp.Transport
	mu   sync.Mutex
	from map[netip.Addr][]time.Time
}

func (r *recorder) Receive() (carp.Packet, error) {
	p, err := r.Transport.Receive()
	if err == nil {
		r.mu.Lock()
		r.from[p.Src] = append(r.from[p.Src], time.Now())
		r.mu.Unlock()
	}
	return p, err
}

func (r *recorder) deliveries(src netip.Addr) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.from[src]...)
}

// lossRun runs a preferred master a (advskew 0) and a backup b (advskew
// 100) for d on a segment losing the given fraction of packets in both
// directions, then checks what the backup did:
//   - every takeover happened exactly one master-down interval after the
//     last advert of a that b received (it really missed that much);
//   - every spurious mastership of b ended at the first advert of a that
//     reached b afterwards;
//   - after the loss stops, a is the only master.
//
// It returns the number of takeovers by b.
func lossRun(t *testing.T, profile carp.Profile, loss float64, d time.Duration) int {
	seg := carptest.NewSegment(42)
	seg.SetDefaultLink(carptest.Link{Loss: loss})
	pa, pb := seg.Join(carp.IPv4), seg.Join(carp.IPv4)
	rec := &recorder{Transport: pb, from: map[netip.Addr][]time.Time{}}
	var mu sync.Mutex
	var trB []carp.Transition
	ga, err := carp.NewGroup(carp.Config{VHID: 1, Addrs: vip4, Transport: pa, StartAsMaster: true, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	gb, err := carp.NewGroup(carp.Config{VHID: 1, AdvSkew: 100, Addrs: vip4, Transport: rec, Profile: profile,
		OnTransition: func(tr carp.Transition) {
			mu.Lock()
			trB = append(trB, tr)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	defer gb.Close()
	if err := gb.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ga.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	synctest.Wait()

	fromA := rec.deliveries(pa.Addr(carp.IPv4))
	mu.Lock()
	trs := append([]carp.Transition(nil), trB...)
	mu.Unlock()
	mdi := gb.MasterDownInterval()
	takeovers := 0
	var longest time.Duration
	quick := 0 // spurious masterships undone within one advert interval of a
	for i, tr := range trs {
		if tr.To != carp.Master {
			continue
		}
		takeovers++
		// The last advert from a before the takeover. (Adverts arriving
		// at the instant of the takeover are a's answer to b's advert.)
		var last time.Time
		for _, at := range fromA {
			if !at.Before(tr.At) {
				break
			}
			last = at
		}
		if gap := tr.At.Sub(last); gap != mdi {
			t.Errorf("takeover at %v: %v after the last advert received, want exactly %v", tr.At, gap, mdi)
		}
		// The first advert from a after it must end the mastership.
		var next time.Time
		for _, at := range fromA {
			if !at.Before(tr.At) {
				next = at
				break
			}
		}
		if i+1 < len(trs) && !next.IsZero() {
			longest = max(longest, trs[i+1].At.Sub(tr.At))
			if trs[i+1].At.Sub(tr.At) <= ga.AdvertInterval() {
				quick++
			}
			if end := trs[i+1]; end.To != carp.Backup || !end.At.Equal(next) {
				t.Errorf("spurious master at %v ended %+v, want BACKUP at a's next advert %v", tr.At, end, next)
			}
		}
	}
	// Stop the loss: the preferred node must end as the only master.
	seg.SetDefaultLink(carptest.Link{})
	time.Sleep(10 * time.Second)
	synctest.Wait()
	if ga.State() != carp.Master || gb.State() != carp.Backup {
		t.Errorf("after the loss: a %v, b %v; want MASTER and BACKUP", ga.State(), gb.State())
	}
	t.Logf("%d adverts from a reached b, %d takeovers by b, %d undone within %v, longest spurious mastership %v",
		len(fromA), takeovers, quick, ga.AdvertInterval(), longest)
	return takeovers
}

// TestLoss5 runs 10,000 adverts at 5 % loss. With the OpenBSD profile the
// backup's master-down interval is 4.17 s, so a takeover needs 4
// consecutive losses (p = 6.25e-6 per advert, 0.06 expected in 10,000):
// there must be none. (With the FreeBSD profile 3 losses suffice, p =
// 1.25e-4, and about one justified takeover is expected; TestLoss30 checks
// that every takeover is justified.)
func TestLoss5(t *testing.T) {
	t.Run("openbsd", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			if n := lossRun(t, carp.ProfileOpenBSD, 0.05, 10000*time.Second); n != 0 {
				t.Errorf("%d takeovers at 5%% loss, want 0", n)
			}
		})
	})
	t.Run("freebsd", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lossRun(t, carp.ProfileFreeBSD, 0.05, 10000*time.Second) // every takeover justified
		})
	})
}

// TestLoss30 runs the default profile at 30 % loss, where spurious
// takeovers (3 adverts lost in a row, p = 2.7 %) are frequent.
func TestLoss30(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if n := lossRun(t, carp.ProfileFreeBSD, 0.30, 2000*time.Second); n == 0 {
			t.Errorf("no takeover at 30%% loss: the test does not exercise the recovery")
		}
	})
}

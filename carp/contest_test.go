package carp_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/google/go-cmp/cmp"
)

// events records what one group's hooks delivered, transitions and
// contests in one list, in the order the hooks ran.
type events struct {
	mu  sync.Mutex
	log []string
	c   []carp.Contest
}

func (e *events) hook(cfg *carp.Config) {
	cfg.OnTransition = func(tr carp.Transition) {
		e.mu.Lock()
		e.log = append(e.log, fmt.Sprintf("%v->%v", tr.From, tr.To))
		e.mu.Unlock()
	}
	cfg.OnContested = func(c carp.Contest) {
		e.mu.Lock()
		e.log = append(e.log, "contested "+c.Peer.String())
		e.c = append(e.c, c)
		e.mu.Unlock()
	}
}

func (e *events) contests() []carp.Contest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]carp.Contest(nil), e.c...)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// TestContestedAfterSplitBrain: two nodes partitioned both become MASTER;
// when the partition heals, the better one hears the other's advert,
// answers it and tells its embedder once (OnContested, in order after its
// transitions), the worse one yields and is told nothing. Neither sees a
// transition for it.
func TestContestedAfterSplitBrain(t *testing.T) {
	for _, proto := range []string{"carp", "vrrp3"} {
		t.Run(proto, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				var ea, eb events
				ca, cb := carp.Config{}, carp.Config{AdvSkew: 100}
				mk := newNode
				if proto == "vrrp3" {
					ca, cb = carp.Config{Priority: 200}, carp.Config{Priority: 100}
					mk = newVRRPNode
				}
				ea.hook(&ca)
				eb.hook(&cb)
				a := mk(t, seg, "a", ca).start(t)
				b := mk(t, seg, "b", cb).start(t)
				sleep(10 * time.Second)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				seg.Partition([]*carptest.Port{a.port}, []*carptest.Port{b.port})
				sleep(10 * time.Second)
				wantState(t, b, carp.Master)
				if got := ea.contests(); len(got) != 0 {
					t.Fatalf("a contested while partitioned: %+v", got)
				}
				// Heal just before b's next advert, so that a hears b
				// before b hears a (otherwise b simply yields to a's
				// periodic advert and a never hears it: no contest).
				for n := b.port.SentCount(); b.port.SentCount() == n; {
					sleep(time.Millisecond)
				}
				sleep(b.g.AdvertInterval() - time.Millisecond)
				seg.Heal()
				healed := time.Now()
				sleep(30 * time.Second)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				got := ea.contests()
				if len(got) != 1 {
					t.Fatalf("a: %d contests after healing, want 1: %+v", len(got), got)
				}
				c := got[0]
				if c.VHID != 1 || c.Family != carp.IPv4 || c.Peer != b.port.Addr(carp.IPv4) || c.At.Before(healed) || c.At.After(healed.Add(time.Millisecond)) {
					t.Errorf("a: contest %+v, want vhid 1 ipv4 from %v 1ms after %v", c, b.port.Addr(carp.IPv4), healed)
				}
				wantA := []string{"INIT->BACKUP", "BACKUP->MASTER", "contested " + b.port.Addr(carp.IPv4).String()}
				if diff := cmp.Diff(wantA, ea.all()); diff != "" {
					t.Errorf("a's hooks (-want +got):\n%s", diff)
				}
				if got := eb.contests(); len(got) != 0 {
					t.Errorf("b (the worse master) contested: %+v", got)
				}
				if st := a.g.Stats(); st.Contested != 1 {
					t.Errorf("a: Stats.Contested %d, want 1", st.Contested)
				}
				if st := b.g.Stats(); st.Contested != 0 {
					t.Errorf("b: Stats.Contested %d, want 0", st.Contested)
				}
				for _, tc := range a.g.Transitions() {
					if tc.To == carp.Master && tc.N != 1 {
						t.Errorf("a: %+v, want one change to MASTER", tc)
					}
				}
			})
		})
	}
}

// TestContestedRateLimited: a flood of worse adverts draws one answer and
// one OnContested per quarter interval; the rest are only counted as
// Suppressed.
func TestContestedRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		var ea events
		cfg := carp.Config{StartAsMaster: true}
		ea.hook(&cfg)
		a := newNode(t, seg, "a", cfg).start(t)
		sleep(3 * time.Second)
		wantState(t, a, carp.Master)
		other := netip.MustParseAddr("192.0.2.77")
		for i := range 5 {
			replay(a, other, signed(t, 1, 200, uint64(1000+i)))
		}
		synctest.Wait()
		if n := len(ea.contests()); n != 1 {
			t.Errorf("%d contests after a burst of 5 worse adverts, want 1", n)
		}
		st := a.g.Stats()
		if st.Contested != 1 || st.Suppressed != 4 {
			t.Errorf("Contested %d Suppressed %d, want 1 and 4", st.Contested, st.Suppressed)
		}
		sleep(a.g.AdvertInterval() / 4)
		replay(a, other, signed(t, 1, 200, 2000))
		synctest.Wait()
		if n := len(ea.contests()); n != 2 {
			t.Errorf("%d contests a quarter interval later, want 2", n)
		}
		// A better master is no contest: a yields.
		replay(a, other, signed(t, 1, 0, 3000))
		synctest.Wait()
		wantState(t, a, carp.Backup)
		if n := len(ea.contests()); n != 2 {
			t.Errorf("%d contests after a better master, want 2", n)
		}
	})
}

// TestContestedWithoutTransitionHook: OnContested alone (no OnTransition)
// is delivered.
func TestContestedWithoutTransitionHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		port := seg.Join(carp.IPv4)
		got := make(chan carp.Contest, 4)
		g, err := carp.NewGroup(carp.Config{VHID: 1, Addrs: vip4, Password: []byte("secret"), Transport: port,
			StartAsMaster: true, OnContested: func(c carp.Contest) { got <- c }})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		sleep(time.Second)
		port.Inject(carp.Packet{Family: carp.IPv4, Payload: signed(t, 1, 200, 1), Src: attacker,
			Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255})
		synctest.Wait()
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-got:
			if c.Peer != attacker {
				t.Errorf("contest from %v, want %v", c.Peer, attacker)
			}
		default:
			t.Error("no contest delivered")
		}
	})
}

// TestContestedReconfigure: Reconfigure keeps OnContested when it is nil
// and refuses another one (fixed at NewGroup, like OnTransition).
func TestContestedReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		var ea events
		cfg := carp.Config{StartAsMaster: true}
		ea.hook(&cfg)
		a := newNode(t, seg, "a", cfg).start(t)
		sleep(time.Second)
		re := carp.Config{VHID: 1, Addrs: vip4, Password: []byte("secret"), StartAsMaster: true, AdvSkew: 10}
		if err := a.g.Reconfigure(re); err != nil {
			t.Fatal(err)
		}
		re.OnContested = func(carp.Contest) {}
		want := "carp: Config.OnContested differs from the group's, fixed at NewGroup (nil keeps it)"
		if err := a.g.Reconfigure(re); err == nil || err.Error() != want {
			t.Errorf("Reconfigure with another OnContested = %v, want %q", err, want)
		}
		replay(a, attacker, signed(t, 1, 200, 1))
		synctest.Wait()
		if n := len(ea.contests()); n != 1 {
			t.Errorf("%d contests after Reconfigure, want 1", n)
		}
	})
}

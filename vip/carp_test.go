package vip_test

import (
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
	"github.com/google/go-cmp/cmp"
)

// TestFollowerWithGroups plugs Followers into real carp.Groups on a
// simulated segment: the VIP lives on exactly the MASTER, moves when the
// master dies, its first announcement goes out at the very (fake) instant
// of the transition, and after the old master returns exactly one node
// holds it again.
func TestFollowerWithGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		type member struct {
			port *carptest.Port
			g    *carp.Group
			f    *vip.Follower
			rec  *viptest.Recorder
			mgr  *viptest.AddrManager

			mu    sync.Mutex
			trans []carp.Transition
		}
		addrs := []netip.Addr{vip4, vip6}
		var ms []*member
		for i := range 2 {
			m := &member{rec: &viptest.Recorder{}, port: seg.Join(carp.IPv4, carp.IPv6)}
			m.mgr = viptest.NewAddrManager(m.rec)
			f, err := vip.NewFollower(vip.Config{VHID: 7, Addrs: vip.Host(addrs...), Manager: m.mgr, Announcer: viptest.NewAnnouncer(m.rec)})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Start(); err != nil {
				t.Fatal(err)
			}
			m.f = f
			g, err := carp.NewGroup(carp.Config{
				VHID:          7,
				AdvSkew:       uint8(100 * i),
				Addrs:         addrs,
				StartAsMaster: i == 0,
				Transport:     m.port,
				OnTransition: func(tr carp.Transition) {
					m.mu.Lock()
					m.trans = append(m.trans, tr)
					m.mu.Unlock()
					f.Handle(tr)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			m.g = g
			ms = append(ms, m)
		}
		for _, m := range ms {
			if err := m.g.Start(); err != nil {
				t.Fatal(err)
			}
		}
		defer func() {
			for _, m := range ms {
				if err := m.g.Close(); err != nil {
					t.Error(err)
				}
				if err := m.f.Close(); err != nil {
					t.Error(err)
				}
			}
		}()
		holders := func() []int {
			var hs []int
			for i, m := range ms {
				if m.mgr.Has(vip4) || m.mgr.Has(vip6) {
					hs = append(hs, i)
				}
			}
			return hs
		}

		time.Sleep(10 * time.Second)
		synctest.Wait()
		if hs := holders(); len(hs) != 1 || hs[0] != 0 {
			t.Fatalf("after start, VIP holders %v; want [0] (states %v, %v)", hs, ms[0].g.State(), ms[1].g.State())
		}

		ms[0].port.Crash() // power loss: no bow-out
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if ms[1].g.State() != carp.Master || !ms[1].mgr.Has(vip4) || !ms[1].mgr.Has(vip6) {
			t.Fatalf("node 1 is %v with %v; want MASTER with both VIPs", ms[1].g.State(), ms[1].mgr.Addrs())
		}
		ms[1].mu.Lock()
		var promoted carp.Transition
		for _, tr := range ms[1].trans {
			if tr.To == carp.Master {
				promoted = tr
			}
		}
		ms[1].mu.Unlock()
		var first time.Time
		for _, c := range ms[1].rec.Calls() {
			if c.Op == viptest.OpAnnounce {
				first = c.At
				break
			}
		}
		if first.IsZero() || !first.Equal(promoted.At) {
			t.Errorf("first announcement at %v; want at the transition, %v", first, promoted.At)
		}

		ms[0].port.Revive() // split brain heals
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if hs := holders(); len(hs) != 1 {
			t.Fatalf("after healing, VIP holders %v; want exactly one (states %v, %v)", hs, ms[0].g.State(), ms[1].g.State())
		}
		for i, m := range ms {
			if held := m.mgr.Has(vip4); held != (m.g.State() == carp.Master) {
				t.Errorf("node %d: state %v but holds VIP = %v", i, m.g.State(), held)
			}
		}
	})
}

// TestFollowerReannouncesWhenContested: a MASTER that hears another node
// claim its group (a worse master: a backup that missed its adverts) calls
// OnContested; wired to HandleContest, the Follower announces the
// addresses again at once, and only then.
func TestFollowerReannouncesWhenContested(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		port := seg.Join(carp.IPv4)
		rec := &viptest.Recorder{}
		f, err := vip.NewFollower(vip.Config{VHID: 7, Addrs: vip.Host(vip4), Manager: viptest.NewAddrManager(rec),
			Announcer: viptest.NewAnnouncer(rec), Schedule: vip.Schedule{Repeats: vip.NoRepeats}})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		addrs := []netip.Addr{vip4}
		g, err := carp.NewGroup(carp.Config{VHID: 7, Addrs: addrs, StartAsMaster: true, Transport: port,
			OnTransition: f.Handle, OnContested: f.HandleContest})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := g.Close(); err != nil {
				t.Error(err)
			}
			if err := f.Close(); err != nil {
				t.Error(err)
			}
		}()
		t0 := time.Now()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]time.Duration{0}, offsets(rec, viptest.OpAnnounce, t0)); diff != "" {
			t.Fatalf("announcements before the contest (-want +got):\n%s", diff)
		}

		// Another master's advert, worse than ours (advskew 200).
		auth, err := carp.NewAuthenticator(nil, 7, addrs)
		if err != nil {
			t.Fatal(err)
		}
		adv := carp.Advertisement{VHID: 7, AdvBase: 1, AdvSkew: 200, Counter: 42}
		auth.Sign(&adv)
		b, err := adv.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		port.Inject(carp.Packet{Family: carp.IPv4, Payload: b, Src: netip.MustParseAddr("192.0.2.77"),
			Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255})
		synctest.Wait()
		if g.State() != carp.Master || g.Stats().Contested != 1 {
			t.Fatalf("state %v, Stats.Contested %d; want MASTER and 1", g.State(), g.Stats().Contested)
		}
		if diff := cmp.Diff([]time.Duration{0, 10 * time.Second}, offsets(rec, viptest.OpAnnounce, t0)); diff != "" {
			t.Errorf("announcements (-want +got):\n%s", diff)
		}
	})
}

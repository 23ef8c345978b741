package carp_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/google/go-cmp/cmp"
)

// attacker is a host on the test segment without the password: it can only
// capture adverts, rewrite their unauthenticated fields (timing, demote,
// checksum) and send them again from any source address.
var attacker = netip.MustParseAddr("192.0.2.66")

// replay delivers payload to n as if sent from src.
func replay(n *node, src netip.Addr, payload []byte) {
	n.port.Inject(carp.Packet{Family: carp.IPv4, Payload: payload, Src: src,
		Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255})
}

// retime rewrites the timing of a captured advert and fixes its checksum:
// the HMAC does not cover these fields.
func retime(payload []byte, advbase, advskew uint8) []byte {
	b := append([]byte(nil), payload...)
	b[5], b[2] = advbase, advskew
	fixChecksum(b)
	return b
}

// signed returns an advert of vhid 1 for vip4 with password "secret".
func signed(t *testing.T, advbase, advskew uint8, counter uint64) []byte {
	t.Helper()
	auth, err := carp.NewAuthenticator([]byte("secret"), 1, vip4)
	if err != nil {
		t.Fatal(err)
	}
	adv := carp.Advertisement{VHID: 1, AdvBase: advbase, AdvSkew: advskew, Counter: counter}
	auth.Sign(&adv)
	b, _ := adv.MarshalBinary()
	return b
}

// TestMasterIgnoresOwnOldAdverts: a master's own adverts, captured any
// number of adverts ago and replayed from any source, never make it yield,
// in both counter modes, also with a faster timing written into them, and
// also after the counter passed through another master and back.
func TestMasterIgnoresOwnOldAdverts(t *testing.T) {
	for _, mode := range []carp.CounterMode{carp.CounterIncrement, carp.CounterCookie} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				a := newNode(t, seg, "a", carp.Config{AdvSkew: 50, StartAsMaster: true, CounterMode: mode}).start(t)
				b := newNode(t, seg, "b", carp.Config{AdvSkew: 100, CounterMode: mode}).start(t)
				synctest.Wait()
				first := a.port.LastSent(carp.IPv4)
				sleep(20 * time.Second)
				// b is master for a while, then a again.
				a.g.StepDown(10 * time.Second)
				sleep(5 * time.Second)
				wantState(t, b, carp.Master)
				fromB := b.port.LastSent(carp.IPv4)
				b.g.StepDown(10 * time.Second)
				sleep(5 * time.Second)
				wantState(t, a, carp.Master)
				sleep(20 * time.Second) // more than 16 adverts since
				before := len(a.transitions())
				for i, src := range []netip.Addr{attacker, b.port.Addr(carp.IPv4), a.port.Addr(carp.IPv4)} {
					replay(a, src, first)
					replay(a, src, retime(first, 1, 0))
					if mode == carp.CounterIncrement {
						// b continued a's sequence: its old adverts
						// are behind a's counter too.
						replay(a, src, retime(fromB, 1, 0))
					}
					sleep(time.Duration(i+1) * 4 * time.Second)
				}
				wantState(t, a, carp.Master)
				if got := a.transitions()[before:]; len(got) != 0 {
					t.Errorf("a changed state on replays of its own adverts: %+v", got)
				}
				want := uint64(6)
				if mode == carp.CounterIncrement {
					want = 9
				}
				if st := a.g.Stats(); st.Badloop+st.Replay != want {
					t.Errorf("Badloop %d + Replay %d, want %d", st.Badloop, st.Replay, want)
				}
			})
		})
	}
}

// scripted is a master played by the test: signed adverts with an
// incrementing counter from one source address.
type scripted struct {
	t       *testing.T
	src     netip.Addr
	counter uint64
	sent    [][]byte
}

func (s *scripted) advert(to *node) []byte {
	s.counter++
	p := signed(s.t, 1, 0, s.counter)
	s.sent = append(s.sent, p)
	replay(to, s.src, p)
	return p
}

// TestBackupIgnoresStaleBowOut: a bow-out the current master did not just
// send (from an earlier life of the master, from another source address,
// with an older counter) never makes a backup take over; the master's
// genuine bow-out still does.
func TestBackupIgnoresStaleBowOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		// An earlier life of the master: its bow-out is captured.
		old := newNode(t, seg, "old", carp.Config{StartAsMaster: true}).start(t)
		sleep(3 * time.Second)
		if err := old.g.Close(); err != nil {
			t.Fatal(err)
		}
		earlier := old.port.LastSent(carp.IPv4)

		b := newNode(t, carptest.NewSegment(2), "b", carp.Config{AdvSkew: 100}).start(t)
		m := &scripted{t: t, src: netip.MustParseAddr("192.0.2.1"), counter: 1 << 60}
		for range 5 {
			m.advert(b)
			sleep(time.Second)
		}
		stale := []struct {
			name    string
			src     netip.Addr
			payload []byte
		}{
			{"earlier life", m.src, earlier},
			{"earlier life, other source", attacker, earlier},
			{"older counter", m.src, signed(t, 255, 255, m.counter-2)},
			{"same counter", m.src, signed(t, 255, 255, m.counter)},
			{"next counter, other source", attacker, signed(t, 255, 255, m.counter+1)},
			{"will time out, older counter", attacker, retime(m.sent[1], 255, 0)},
		}
		for _, s := range stale {
			replay(b, s.src, s.payload)
			synctest.Wait()
			if got := b.g.State(); got != carp.Backup {
				t.Fatalf("%s: state %v after a stale advert", s.name, got)
			}
			m.advert(b)
			sleep(time.Second)
		}
		if diff := cmp.Diff([]step{{carp.Init, carp.Backup, carp.ReasonInit}}, b.steps()); diff != "" {
			t.Errorf("transitions (-want +got):\n%s", diff)
		}
		if got := b.g.Stats().Replay; got != uint64(len(stale)) {
			t.Errorf("Replay = %d, want %d", got, len(stale))
		}
		// The genuine bow-out: next counter, master's source.
		m.counter++
		replay(b, m.src, signed(t, 255, 255, m.counter))
		synctest.Wait()
		wantState(t, b, carp.Master)
		if got := b.last().Reason; got != carp.ReasonBowOut {
			t.Errorf("reason %q, want %q", got, carp.ReasonBowOut)
		}
	})
}

// TestReplayDoesNotHoldBackupDown: the dead master's old adverts, replayed
// more often than the master-down interval, do not keep a backup from
// taking over.
func TestReplayDoesNotHoldBackupDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newNode(t, carptest.NewSegment(1), "b", carp.Config{AdvSkew: 100}).start(t)
		m := &scripted{t: t, src: netip.MustParseAddr("192.0.2.1"), counter: 99}
		for range 10 {
			m.advert(b)
			sleep(time.Second)
		}
		died := time.Now().Add(-time.Second) // the last advert
		for i := range 5 {
			replay(b, m.src, m.sent[i])
			replay(b, attacker, m.sent[9-i])
			sleep(time.Second)
		}
		wantState(t, b, carp.Master)
		if tr := b.last(); tr.Reason != carp.ReasonMasterTimedOut || tr.At.Sub(died) != b.g.MasterDownInterval() {
			t.Errorf("%+v, want %q %v after the last genuine advert", tr, carp.ReasonMasterTimedOut, b.g.MasterDownInterval())
		}
	})
}

// TestConstantCounterMaster: a master sending one constant cookie (OpenBSD)
// is followed, and its bow-out accepted, from its own source only.
func TestConstantCounterMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{StartAsMaster: true, CounterMode: carp.CounterCookie}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
		sleep(10 * time.Second)
		wantState(t, b, carp.Backup)
		var adv carp.Advertisement
		if err := adv.UnmarshalBinary(a.port.LastSent(carp.IPv4)); err != nil {
			t.Fatal(err)
		}
		before := len(b.transitions())
		replay(b, attacker, signed(t, 255, 255, adv.Counter))
		sleep(10 * time.Second)
		if got := b.transitions()[before:]; len(got) != 0 {
			t.Errorf("b changed state on a bow-out from another source: %+v", got)
		}
		if got := b.g.Stats().Replay; got != 1 {
			t.Errorf("Replay = %d, want 1", got)
		}
		if err := a.g.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantState(t, b, carp.Master)
		if got := b.last().Reason; got != carp.ReasonBowOut {
			t.Errorf("reason %q, want %q", got, carp.ReasonBowOut)
		}
	})
}

// TestWorseAdvertFlood: a master answers worse adverts at once, but at most
// once per quarter advert interval; the rest are counted.
func TestWorseAdvertFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newNode(t, carptest.NewSegment(1), "a", carp.Config{StartAsMaster: true}).start(t)
		sleep(500 * time.Millisecond)
		before := a.port.SentCount()
		for i := range 200 {
			replay(a, attacker, signed(t, 1, 200, uint64(1000+i)))
		}
		synctest.Wait()
		if got := a.port.SentCount() - before; got != 1 {
			t.Errorf("sent %d adverts in answer to 200 worse ones, want 1", got)
		}
		if got := a.g.Stats().Suppressed; got != 199 {
			t.Errorf("Suppressed = %d, want 199", got)
		}
		// The periodic advert still goes out.
		sleep(500 * time.Millisecond)
		if got := a.port.SentCount() - before; got != 2 {
			t.Errorf("sent %d adverts by the next interval, want 2", got)
		}
		wantState(t, a, carp.Master)
	})
}

// TestCloseWithBlockedHook: Close sends the bow-out and returns after
// Config.CloseTimeout even though OnTransition never returns.
func TestCloseWithBlockedHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{StartAsMaster: true, CloseTimeout: 2 * time.Second,
			OnTransition: func(carp.Transition) { <-release }}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
		sleep(5 * time.Second)
		wantState(t, a, carp.Master)
		t0 := time.Now()
		if err := a.g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(t0); got != 2*time.Second {
			t.Errorf("Close took %v, want the CloseTimeout 2s", got)
		}
		synctest.Wait()
		wantState(t, b, carp.Master)
		if got := b.last().Reason; got != carp.ReasonBowOut {
			t.Errorf("b: %q, want %q", got, carp.ReasonBowOut)
		}
		close(release) // the hook goroutine then delivers the rest and exits
	})
}

// TestFollowerChecks: what a backup accepts from its master besides the
// plain next advert. A dual-stack master's adverts of the two families may
// arrive out of order, each still once only; a FreeBSD or ucarp peer that
// takes over continues the old master's sequence from its own address, and
// its bow-out is honoured.
func TestFollowerChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addrs := []netip.Addr{netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("2001:db8::254")}
		auth, err := carp.NewAuthenticator([]byte("secret"), 1, addrs)
		if err != nil {
			t.Fatal(err)
		}
		adv := func(advskew uint8, counter uint64) []byte {
			a := carp.Advertisement{VHID: 1, AdvBase: 1, AdvSkew: advskew, Counter: counter}
			if advskew == 255 {
				a.AdvBase = 255
			}
			auth.Sign(&a)
			p, _ := a.MarshalBinary()
			return p
		}
		b := newNode(t, carptest.NewSegment(1), "b", carp.Config{Addrs: addrs, AdvSkew: 100}, carp.IPv4, carp.IPv6).start(t)
		// A master sends from one address per family.
		type addr2 map[carp.Family]netip.Addr
		m1 := addr2{carp.IPv4: netip.MustParseAddr("192.0.2.1"), carp.IPv6: netip.MustParseAddr("fe80::1")}
		send := func(src addr2, f carp.Family, p []byte) {
			b.port.Inject(carp.Packet{Family: f, Payload: p, Src: src[f], TTL: 255})
		}
		evil := addr2{carp.IPv4: attacker, carp.IPv6: netip.MustParseAddr("fe80::66")}
		c := uint64(5000)
		for range 8 {
			// IPv6 (c+2) overtakes IPv4 (c+1); then both replayed
			// on the other family.
			send(m1, carp.IPv6, adv(0, c+2))
			send(m1, carp.IPv4, adv(0, c+1))
			send(evil, carp.IPv4, adv(0, c+2))
			send(evil, carp.IPv6, adv(0, c+1))
			c += 2
			sleep(time.Second)
		}
		if diff := cmp.Diff([]step{{carp.Init, carp.Backup, carp.ReasonInit}}, b.steps()); diff != "" {
			t.Fatalf("reordered adverts (-want +got):\n%s", diff)
		}
		if got := b.g.Stats().Replay; got != 16 {
			t.Errorf("Replay = %d, want 16 (the cross-family replays)", got)
		}
		// m2 took over, continuing m1's sequence (it adopted it), then
		// leaves with a bow-out.
		m2 := addr2{carp.IPv4: netip.MustParseAddr("192.0.2.2"), carp.IPv6: netip.MustParseAddr("fe80::2")}
		for range 3 {
			send(m2, carp.IPv4, adv(50, c+1))
			send(m2, carp.IPv6, adv(50, c+2))
			c += 2
			sleep(time.Second)
		}
		// Its bow-out on IPv4 is lost; the one on IPv6 arrives, and
		// the same counter from m1's IPv6 address is refused first.
		send(m1, carp.IPv6, adv(255, c+2))
		synctest.Wait()
		wantState(t, b, carp.Backup)
		send(m2, carp.IPv6, adv(255, c+2))
		synctest.Wait()
		wantState(t, b, carp.Master)
		if got := b.last().Reason; got != carp.ReasonBowOut {
			t.Errorf("reason %q, want %q", got, carp.ReasonBowOut)
		}
	})
}

// TestPeerContinuingOurSequence: a FreeBSD or ucarp peer that adopted our
// counter and is master at the same time (a partition healing) sends
// counters we sent a moment ago. At the same advert rate it would trail us
// forever; the master moves to a new sequence and yields to the better peer
// once the peer's counter passes the old one.
func TestPeerContinuingOurSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newNode(t, carptest.NewSegment(1), "a", carp.Config{AdvSkew: 100, StartAsMaster: true}).start(t)
		sleep(10 * time.Second)
		var last carp.Advertisement
		if err := last.UnmarshalBinary(a.port.LastSent(carp.IPv4)); err != nil {
			t.Fatal(err)
		}
		// The peer advertises a better timing (advskew 50) at a's rate,
		// two counters behind a.
		peer := netip.MustParseAddr("192.0.2.9")
		c := last.Counter - 2
		for range 10 {
			replay(a, peer, signed(t, 1, 50, c))
			c++
			sleep(a.g.AdvertInterval())
			if a.g.State() == carp.Backup {
				break
			}
		}
		wantState(t, a, carp.Backup)
		if got := a.last().Reason; got != carp.ReasonMoreFrequent {
			t.Errorf("reason %q, want %q", got, carp.ReasonMoreFrequent)
		}
	})
}

package carp_test

import (
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/google/go-cmp/cmp"
)

var vip4 = []netip.Addr{netip.MustParseAddr("10.0.0.254")}

// node is one group on a test segment, recording its transitions.
type node struct {
	name string
	g    *carp.Group
	port *carptest.Port

	mu sync.Mutex
	tr []carp.Transition
}

// newNode joins seg and builds a group from cfg (Transport, OnTransition
// and defaults filled in). It does not start the group; Close runs at
// cleanup.
func newNode(t *testing.T, seg *carptest.Segment, name string, cfg carp.Config, families ...carp.Family) *node {
	t.Helper()
	n := &node{name: name}
	if len(families) == 0 {
		families = []carp.Family{carp.IPv4}
	}
	n.port = seg.Join(families...)
	if cfg.VHID == 0 {
		cfg.VHID = 1
	}
	if cfg.Addrs == nil {
		cfg.Addrs = vip4
	}
	if cfg.Password == nil {
		cfg.Password = []byte("secret")
	}
	cfg.Transport = n.port
	hook := cfg.OnTransition
	cfg.OnTransition = func(tr carp.Transition) {
		n.mu.Lock()
		n.tr = append(n.tr, tr)
		n.mu.Unlock()
		if hook != nil {
			hook(tr)
		}
	}
	g, err := carp.NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.g = g
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	})
	return n
}

func (n *node) start(t *testing.T) *node {
	t.Helper()
	if err := n.g.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// transitions returns the transitions delivered so far. Call it after
// synctest.Wait so the hook goroutine has caught up.
func (n *node) transitions() []carp.Transition {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]carp.Transition(nil), n.tr...)
}

// last returns the last transition (zero if none).
func (n *node) last() carp.Transition {
	tr := n.transitions()
	if len(tr) == 0 {
		return carp.Transition{}
	}
	return tr[len(tr)-1]
}

// step is a transition without VHID and time, for cmp.Diff.
type step struct {
	From, To carp.State
	Reason   carp.Reason
}

func (n *node) steps() []step {
	var out []step
	for _, tr := range n.transitions() {
		out = append(out, step{tr.From, tr.To, tr.Reason})
	}
	return out
}

func wantState(t *testing.T, n *node, want carp.State) {
	t.Helper()
	if got := n.g.State(); got != want {
		t.Errorf("%s: state %v, want %v (transitions %+v)", n.name, got, want, n.steps())
	}
}

// sleep advances the bubble's clock by d and lets everything settle.
func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// masters counts the nodes in state MASTER.
func masters(nodes ...*node) int {
	c := 0
	for _, n := range nodes {
		if n.g.State() == carp.Master {
			c++
		}
	}
	return c
}

func TestIntervals(t *testing.T) {
	tests := []struct {
		name       string
		cfg        carp.Config
		advert     time.Duration
		masterDown time.Duration
	}{
		{"defaults", carp.Config{}, time.Second, 3 * time.Second},
		{"freebsd skew 100", carp.Config{AdvSkew: 100}, time.Second + 390625*time.Microsecond, 3*time.Second + 390625*time.Microsecond},
		{"openbsd skew 100", carp.Config{AdvSkew: 100, Profile: carp.ProfileOpenBSD}, time.Second + 390625*time.Microsecond, 4*time.Second + 171875*time.Microsecond},
		{"ucarp deadratio 5 advbase 2 skew 128", carp.Config{AdvBase: 2, AdvSkew: 128, DeadRatio: 5}, 2500 * time.Millisecond, 10500 * time.Millisecond},
		{"openbsd advbase 0", carp.Config{ZeroAdvBase: true, Profile: carp.ProfileOpenBSD}, 3906250 * time.Nanosecond, 3 * 3906250 * time.Nanosecond},
		// FreeBSD has no advbase 0: its formula would wait one interval.
		{"freebsd advbase 0 skew 26", carp.Config{ZeroAdvBase: true, AdvSkew: 26}, 26 * 3906250 * time.Nanosecond, 3 * 26 * 3906250 * time.Nanosecond},
		{"ucarp deadratio 4 advbase 0 skew 26", carp.Config{ZeroAdvBase: true, AdvSkew: 26, DeadRatio: 4}, 26 * 3906250 * time.Nanosecond, 4 * 26 * 3906250 * time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, carptest.NewSegment(1), "a", tt.cfg)
			if got := n.g.AdvertInterval(); got != tt.advert {
				t.Errorf("AdvertInterval = %v, want %v", got, tt.advert)
			}
			if got := n.g.MasterDownInterval(); got != tt.masterDown {
				t.Errorf("MasterDownInterval = %v, want %v", got, tt.masterDown)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	port := carptest.NewSegment(1).Join(carp.IPv4)
	ok := carp.Config{VHID: 1, Addrs: vip4, Transport: port}
	tests := []struct {
		name string
		mod  func(c *carp.Config)
		want string
	}{
		{"vhid 0", func(c *carp.Config) { c.VHID = 0 }, "carp: Config.VHID 0 out of range 1-255"},
		{"advskew 255", func(c *carp.Config) { c.AdvSkew = 255 }, "carp: Config.AdvSkew 255 out of range 0-254"},
		{"password 21", func(c *carp.Config) { c.Password = make([]byte, 21) }, "carp: Config.Password length 21 out of range 0-20"},
		{"no addrs", func(c *carp.Config) { c.Addrs = nil }, "carp: Config.Addrs is empty, want at least one virtual address"},
		{"duplicate", func(c *carp.Config) {
			c.Addrs = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.1")}
		}, "carp: Config.Addrs[1] 10.0.0.1 listed twice"},
		{"zero addr", func(c *carp.Config) { c.Addrs = []netip.Addr{{}} }, "carp: Config.Addrs[0] invalid IP is not a unicast address"},
		{"multicast", func(c *carp.Config) { c.Addrs = []netip.Addr{netip.MustParseAddr("224.0.0.18")} }, "carp: Config.Addrs[0] 224.0.0.18 is not a unicast address"},
		{"deadratio", func(c *carp.Config) { c.DeadRatio = -1 }, "carp: Config.DeadRatio -1 out of range 0-255 (0 means 3)"},
		{"profile", func(c *carp.Config) { c.Profile = 7 }, "carp: Config.Profile 7 out of range 0-1"},
		{"countermode", func(c *carp.Config) { c.CounterMode = 2 }, "carp: Config.CounterMode 2 out of range 0-1"},
		{"holddown", func(c *carp.Config) { c.HoldDown = -time.Second }, "carp: Config.HoldDown -1s out of range (0 or more)"},
		{"ifindex", func(c *carp.Config) { c.IfIndex = -1 }, "carp: Config.IfIndex -1 out of range (0 or more)"},
		{"closetimeout", func(c *carp.Config) { c.CloseTimeout = -time.Second }, "carp: Config.CloseTimeout -1s out of range (0 or more)"},
		{"transport", func(c *carp.Config) { c.Transport = nil }, "carp: Config.Transport is nil, want a Transport"},
		{"family", func(c *carp.Config) { c.Addrs = []netip.Addr{netip.MustParseAddr("2001:db8::1")} }, "carp: Config.Addrs: 2001:db8::1 needs ipv6, which Config.Transport does not carry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			_, err := carp.NewGroup(c)
			if err == nil {
				t.Fatalf("NewGroup succeeded, want %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	for _, c := range []carp.Config{
		ok,
		{VHID: 255, AdvBase: 255, AdvSkew: 254, Password: make([]byte, 20), Addrs: vip4, Transport: port, DeadRatio: 1},
		{VHID: 1, ZeroAdvBase: true, Addrs: vip4, Transport: port},
	} {
		if _, err := carp.NewGroup(c); err != nil {
			t.Errorf("NewGroup(%+v): %v", c, err)
		}
	}
}

func TestElection(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(string(rune('0'+n))+" nodes", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				var nodes []*node
				for i := range n {
					nodes = append(nodes, newNode(t, seg, string(rune('a'+i)), carp.Config{AdvSkew: uint8(50 * i)}))
				}
				t0 := time.Now()
				for _, nd := range nodes {
					nd.start(t)
				}
				synctest.Wait()
				for _, nd := range nodes {
					wantState(t, nd, carp.Backup)
				}
				sleep(10 * time.Second)
				wantState(t, nodes[0], carp.Master)
				for _, nd := range nodes[1:] {
					wantState(t, nd, carp.Backup)
					if diff := cmp.Diff([]step{{carp.Init, carp.Backup, carp.ReasonInit}}, nd.steps()); diff != "" {
						t.Errorf("%s transitions (-want +got):\n%s", nd.name, diff)
					}
				}
				// The fastest node's master-down timer (3 s) fires first.
				want := []step{
					{carp.Init, carp.Backup, carp.ReasonInit},
					{carp.Backup, carp.Master, carp.ReasonMasterTimedOut},
				}
				if diff := cmp.Diff(want, nodes[0].steps()); diff != "" {
					t.Errorf("transitions (-want +got):\n%s", diff)
				}
				if got := nodes[0].last().At.Sub(t0); got != 3*time.Second {
					t.Errorf("master after %v, want 3s", got)
				}
			})
		})
	}
}

// TestFailoverTiming crashes the master silently and checks that the
// backup takes over exactly one master-down interval after the last advert
// it heard, for each profile.
func TestFailoverTiming(t *testing.T) {
	tests := []struct {
		name    string
		profile carp.Profile
		want    time.Duration
	}{
		{"freebsd", carp.ProfileFreeBSD, 3*time.Second + 100*time.Second/256},
		{"openbsd", carp.ProfileOpenBSD, 3 * (time.Second + 100*time.Second/256)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				a := newNode(t, seg, "a", carp.Config{StartAsMaster: true, Profile: tt.profile})
				b := newNode(t, seg, "b", carp.Config{AdvSkew: 100, Profile: tt.profile})
				b.start(t)
				t0 := time.Now()
				a.start(t) // MASTER at t0, adverts at t0, t0+1s, t0+2s, ...
				sleep(2500 * time.Millisecond)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				a.port.Crash() // last advert heard: t0+2s
				sleep(10 * time.Second)
				wantState(t, b, carp.Master)
				tr := b.last()
				if tr.Reason != carp.ReasonMasterTimedOut {
					t.Errorf("reason %q", tr.Reason)
				}
				if got := tr.At.Sub(t0.Add(2 * time.Second)); got != tt.want {
					t.Errorf("took over %v after the last advert, want %v", got, tt.want)
				}
				if got := b.g.MasterDownInterval(); got != tt.want {
					t.Errorf("MasterDownInterval = %v, want %v", got, tt.want)
				}
			})
		})
	}
}

func TestPreemption(t *testing.T) {
	for _, preempt := range []bool{false, true} {
		name := "off"
		if preempt {
			name = "on"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				slow := newNode(t, seg, "slow", carp.Config{AdvSkew: 100, Preempt: preempt}).start(t)
				sleep(5 * time.Second)
				wantState(t, slow, carp.Master)
				fast := newNode(t, seg, "fast", carp.Config{Preempt: preempt}).start(t)
				sleep(30 * time.Second)
				if preempt {
					wantState(t, fast, carp.Master)
					wantState(t, slow, carp.Backup)
					if got := fast.last().Reason; got != carp.ReasonPreempt {
						t.Errorf("fast: reason %q, want %q", got, carp.ReasonPreempt)
					}
					if got := slow.last().Reason; got != carp.ReasonMoreFrequent {
						t.Errorf("slow: reason %q, want %q", got, carp.ReasonMoreFrequent)
					}
				} else {
					wantState(t, slow, carp.Master)
					wantState(t, fast, carp.Backup)
				}
			})
		})
	}
}

// TestEqualTiming: a master yields to an advert as fast as its own (the
// BSDs have no address tie-break), and a backup with equal timing does not
// preempt.
func TestEqualTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{StartAsMaster: true, Preempt: true}).start(t)
		sleep(500 * time.Millisecond)
		b := newNode(t, seg, "b", carp.Config{StartAsMaster: true, Preempt: true}).start(t)
		synctest.Wait()
		wantState(t, a, carp.Backup)
		wantState(t, b, carp.Master)
		if got := a.last().Reason; got != carp.ReasonMoreFrequent {
			t.Errorf("a: reason %q", got)
		}
		sleep(20 * time.Second)
		wantState(t, a, carp.Backup)
		wantState(t, b, carp.Master)
	})
}

func TestDemotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{})
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100})

		// INIT: demotion set before Start is advertised from the start.
		a.g.SetDemotion("boot", 5)
		if got := a.g.Demotion(); got != 5 {
			t.Errorf("Demotion = %d, want 5", got)
		}
		a.start(t)
		b.start(t)
		sleep(10 * time.Second)
		// a is faster but demoted: b's timer fires later, but b wins?
		// No: nobody advertises before a's timer fires, so a becomes
		// MASTER first; its advert carries demote 5, which makes b (demote
		// 0) take over at once, and a yields to the less demoted b.
		wantState(t, b, carp.Master)
		wantState(t, a, carp.Backup)
		if got := b.last().Reason; got != carp.ReasonDemotedMaster {
			t.Errorf("b: reason %q, want %q", got, carp.ReasonDemotedMaster)
		}

		// BACKUP: clearing restores the priority; without preempt b stays.
		a.g.SetDemotion("boot", 0)
		sleep(10 * time.Second)
		if got := a.g.Demotion(); got != 0 {
			t.Errorf("Demotion = %d after clearing", got)
		}
		wantState(t, b, carp.Master)
		wantState(t, a, carp.Backup)

		// MASTER: raising it advertises at once and hands over at once.
		b.g.SetDemotion("health", 1)
		b.g.SetDemotion("sync", 2)
		synctest.Wait()
		wantState(t, a, carp.Master)
		wantState(t, b, carp.Backup)
		if got := b.g.Demotion(); got != 3 {
			t.Errorf("Demotion = %d, want 3", got)
		}
		var adv carp.Advertisement
		if err := adv.UnmarshalBinary(b.port.LastSent(carp.IPv4)); err != nil || adv.Demote != 3 {
			t.Errorf("b's last advert: %+v, %v; want demote 3", adv, err)
		}

		// Cleared in BACKUP and master gone: b takes over normally.
		b.g.SetDemotion("health", 0)
		b.g.SetDemotion("sync", 0)
		a.port.Crash()
		sleep(10 * time.Second)
		wantState(t, b, carp.Master)

		// Cap at 255.
		b.g.SetDemotion("x", 200)
		b.g.SetDemotion("y", 200)
		if got := b.g.Demotion(); got != 255 {
			t.Errorf("Demotion = %d, want 255", got)
		}
	})
}

func TestBowOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{StartAsMaster: true}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
		sleep(5 * time.Second)
		wantState(t, a, carp.Master)
		wantState(t, b, carp.Backup)
		closedAt := time.Now()
		if err := a.g.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantState(t, a, carp.Init)
		wantState(t, b, carp.Master)
		tr := b.last()
		if tr.Reason != carp.ReasonBowOut || !tr.At.Equal(closedAt) {
			t.Errorf("b: %+v, want %q at %v", tr, carp.ReasonBowOut, closedAt)
		}
		var bow carp.Advertisement
		if err := bow.UnmarshalBinary(a.port.LastSent(carp.IPv4)); err != nil || !bow.IsBowOut() {
			t.Errorf("last advert %+v (%v), want a bow-out (255/255)", bow, err)
		}
		if diff := cmp.Diff(step{carp.Master, carp.Init, carp.ReasonClosed}, a.steps()[len(a.steps())-1]); diff != "" {
			t.Errorf("a's last transition (-want +got):\n%s", diff)
		}
	})
}

// TestSplitBrain partitions the segment (both become MASTER) and heals it:
// exactly one master remains.
func TestSplitBrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
		c := newNode(t, seg, "c", carp.Config{AdvSkew: 200}).start(t)
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		seg.Partition([]*carptest.Port{a.port}, []*carptest.Port{b.port, c.port})
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		wantState(t, b, carp.Master)
		wantState(t, c, carp.Backup)
		seg.Heal()
		// One advert interval of the slower master is enough.
		sleep(b.g.AdvertInterval())
		if got := masters(a, b, c); got != 1 {
			t.Errorf("%d masters after healing, want 1", got)
		}
		sleep(30 * time.Second)
		if got := masters(a, b, c); got != 1 {
			t.Errorf("%d masters 30s after healing, want 1", got)
		}
		wantState(t, a, carp.Master)
	})
}

func TestStartOptions(t *testing.T) {
	t.Run("StartAsMaster", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			a := newNode(t, seg, "a", carp.Config{StartAsMaster: true}).start(t)
			synctest.Wait()
			wantState(t, a, carp.Master)
			if diff := cmp.Diff([]step{{carp.Init, carp.Master, carp.ReasonStartAsMaster}}, a.steps()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if a.port.SentCount() != 1 {
				t.Errorf("sent %d adverts at start, want 1", a.port.SentCount())
			}
		})
	})
	t.Run("StartAsMaster demoted", func(t *testing.T) {
		// Demoted at start (a sync engine still fetching state): BACKUP,
		// then MASTER as soon as the demotion clears, before the
		// master-down interval would have made it one.
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			a := newNode(t, seg, "a", carp.Config{StartAsMaster: true})
			a.g.SetDemotion("sync", 32)
			t0 := time.Now()
			a.start(t)
			sleep(time.Second)
			wantState(t, a, carp.Backup)
			a.g.SetDemotion("sync", 0)
			synctest.Wait()
			wantState(t, a, carp.Master)
			want := []step{{carp.Init, carp.Backup, carp.ReasonInit}, {carp.Backup, carp.Master, carp.ReasonStartAsMaster}}
			if diff := cmp.Diff(want, a.steps()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got := a.last().At.Sub(t0); got != time.Second {
				t.Errorf("master %v after start, want 1s (when the demotion cleared)", got)
			}
		})
	})
	t.Run("StartAsMaster demoted hears a master", func(t *testing.T) {
		// A master advertised while the node waited: the election
		// decides, and without Preempt the slower master keeps its place.
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			b := newNode(t, seg, "b", carp.Config{AdvSkew: 100, StartAsMaster: true}).start(t)
			a := newNode(t, seg, "a", carp.Config{StartAsMaster: true})
			a.g.SetDemotion("sync", 32)
			a.start(t)
			sleep(2 * time.Second)
			a.g.SetDemotion("sync", 0)
			sleep(10 * time.Second)
			wantState(t, b, carp.Master)
			wantState(t, a, carp.Backup)
		})
	})
	t.Run("HoldDown", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			t0 := time.Now()
			a := newNode(t, seg, "a", carp.Config{HoldDown: 5 * time.Second}).start(t)
			sleep(4 * time.Second)
			wantState(t, a, carp.Init)
			sleep(10 * time.Second)
			wantState(t, a, carp.Master)
			tr := a.transitions()
			if len(tr) != 2 || tr[0].At.Sub(t0) != 5*time.Second || tr[1].At.Sub(t0) != 8*time.Second {
				t.Errorf("transitions %+v, want BACKUP at 5s and MASTER at 8s", tr)
			}
		})
	})
}

func TestStepDown(t *testing.T) {
	t.Run("peer takes over", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			a := newNode(t, seg, "a", carp.Config{StartAsMaster: true}).start(t)
			b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
			sleep(2500 * time.Millisecond)
			a.g.StepDown(3 * time.Second)
			synctest.Wait()
			wantState(t, a, carp.Backup)
			if got := a.last().Reason; got != carp.ReasonUser {
				t.Errorf("reason %q", got)
			}
			sleep(10 * time.Second)
			wantState(t, b, carp.Master)
			wantState(t, a, carp.Backup)
		})
	})
	t.Run("alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			a := newNode(t, seg, "a", carp.Config{StartAsMaster: true}).start(t)
			sleep(time.Second)
			t0 := time.Now()
			a.g.StepDown(5 * time.Second)
			sleep(4 * time.Second) // master-down (3 s) passed, but suppressed
			wantState(t, a, carp.Backup)
			sleep(2 * time.Second)
			wantState(t, a, carp.Master)
			if got := a.last().At.Sub(t0); got != 5*time.Second {
				t.Errorf("master again after %v, want 5s", got)
			}
		})
	})
}

func TestLinkState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{StartAsMaster: true}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
		sleep(1500 * time.Millisecond)
		a.g.SetLinkState(false)
		synctest.Wait()
		wantState(t, a, carp.Init)
		if got := a.g.Demotion(); got != 1 {
			t.Errorf("Demotion = %d with link down, want 1", got)
		}
		sent := a.port.SentCount()
		sleep(10 * time.Second)
		if got := a.port.SentCount(); got != sent {
			t.Errorf("sent %d adverts while link down", got-sent)
		}
		wantState(t, b, carp.Master)
		a.g.SetLinkState(true)
		synctest.Wait()
		wantState(t, a, carp.Backup)
		if got := a.g.Demotion(); got != 0 {
			t.Errorf("Demotion = %d after link up, want 0", got)
		}
		sleep(10 * time.Second)
		wantState(t, a, carp.Backup) // no preempt
		want := []step{
			{carp.Init, carp.Master, carp.ReasonStartAsMaster},
			{carp.Master, carp.Init, carp.ReasonLinkDown},
			{carp.Init, carp.Backup, carp.ReasonLinkUp},
		}
		if diff := cmp.Diff(want, a.steps()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("down before start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := newNode(t, carptest.NewSegment(1), "a", carp.Config{})
			a.g.SetLinkState(false)
			a.start(t)
			sleep(10 * time.Second)
			wantState(t, a, carp.Init)
			a.g.SetLinkState(true)
			sleep(10 * time.Second)
			wantState(t, a, carp.Master)
		})
	})
}

// TestSendErrors: 3 consecutive send failures demote the group; it
// recovers after 3 successful sends as MASTER, and after a master-down
// interval as BACKUP (which sends nothing).
func TestSendErrors(t *testing.T) {
	t.Run("master", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := newNode(t, carptest.NewSegment(1), "a", carp.Config{StartAsMaster: true}).start(t)
			synctest.Wait()
			a.port.SetSendError(carptest.ErrSend)
			sleep(2500 * time.Millisecond) // failures at 1s, 2s
			if got := a.g.Demotion(); got != 0 {
				t.Errorf("demoted after 2 failures")
			}
			sleep(time.Second) // third failure
			if got := a.g.Demotion(); got != 1 {
				t.Errorf("Demotion = %d after 3 failures, want 1", got)
			}
			a.port.SetSendError(nil)
			sleep(2 * time.Second)
			if got := a.g.Demotion(); got != 1 {
				t.Errorf("recovered after 2 successes")
			}
			sleep(time.Second)
			if got := a.g.Demotion(); got != 0 {
				t.Errorf("Demotion = %d after 3 successes, want 0", got)
			}
			// 3 periodic adverts and the immediate one announcing the demotion.
			if st := a.g.Stats(); st.Oerrors != 4 {
				t.Errorf("Oerrors = %d, want 4", st.Oerrors)
			}
		})
	})
	t.Run("backup", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			seg := carptest.NewSegment(1)
			a := newNode(t, seg, "a", carp.Config{StartAsMaster: true}).start(t)
			b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
			sleep(500 * time.Millisecond)
			a.port.SetSendError(carptest.ErrSend)
			sleep(5 * time.Second)
			// a failed to send, demoted itself; b timed out and took over;
			// b's advert (demote 0) made a (demote 1) yield.
			wantState(t, b, carp.Master)
			wantState(t, a, carp.Backup)
			if got := a.g.Demotion(); got != 1 {
				t.Fatalf("Demotion = %d, want 1", got)
			}
			a.port.SetSendError(nil)
			yielded := a.last().At
			sleep(a.g.MasterDownInterval() - time.Since(yielded) - time.Millisecond)
			if got := a.g.Demotion(); got != 1 {
				t.Errorf("cleared before a master-down interval")
			}
			sleep(time.Millisecond)
			if got := a.g.Demotion(); got != 0 {
				t.Errorf("Demotion = %d a master-down interval into BACKUP, want 0", got)
			}
			// Priority restored: a is preferred again when b fails.
			b.port.Crash()
			sleep(10 * time.Second)
			wantState(t, a, carp.Master)
		})
	})
}

// TestBlockedHook: a hook that never returns must not stop adverts.
func TestBlockedHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{OnTransition: func(carp.Transition) { <-release }}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100}).start(t)
		sleep(3500 * time.Millisecond) // a: INIT->BACKUP hook blocks; MASTER at 3s
		wantState(t, a, carp.Master)
		before := a.port.SentCount()
		sleep(100 * time.Second)
		if got := a.port.SentCount() - before; got != 100 {
			t.Errorf("sent %d adverts in 100 s with a blocked hook, want 100", got)
		}
		wantState(t, b, carp.Backup)
		close(release)
		synctest.Wait()
		if diff := cmp.Diff([]step{
			{carp.Init, carp.Backup, carp.ReasonInit},
			{carp.Backup, carp.Master, carp.ReasonMasterTimedOut},
		}, a.steps()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
	})
}

// TestBadPackets injects malformed and hostile packets into a backup while
// the master is silent: each is counted in its own counter and none resets
// the master-down timer.
func TestBadPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		m := seg.Join(carp.IPv4) // a scripted master: we send its packets by hand
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 100, IfIndex: 2}).start(t)

		good := func(vhid uint8, password string, counter uint64) []byte {
			auth, err := carp.NewAuthenticator([]byte(password), vhid, vip4)
			if err != nil {
				t.Fatal(err)
			}
			adv := carp.Advertisement{VHID: vhid, AdvBase: 1, Counter: counter}
			auth.Sign(&adv)
			p, _ := adv.MarshalBinary()
			return p
		}
		inject := func(payload []byte, ttl, ifindex int) {
			b.port.Inject(carp.Packet{Family: carp.IPv4, Payload: payload, Src: m.Addr(carp.IPv4),
				Dst: netip.MustParseAddr("224.0.0.18"), TTL: ttl, IfIndex: ifindex})
		}
		t0 := time.Now()
		inject(good(1, "secret", 1), 255, 2) // the last good advert
		synctest.Wait()

		badsum := good(1, "secret", 2)
		badsum[7] ^= 1
		vrrp := []byte{0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 10, 0, 0, 254}
		long := append(good(1, "secret", 8), 0)
		badver := good(1, "secret", 9)
		badver[0] = 0x11 // version 1
		fixChecksum(badver)
		// Every 500 ms for 10 s, one of each.
		for range 20 {
			inject(good(1, "wrong", 3), 255, 2)       // forged
			inject(good(1, "secret", 4)[:20], 255, 2) // truncated
			inject(good(2, "secret", 5), 255, 2)      // other vhid
			inject(good(1, "secret", 6), 64, 2)       // routed: TTL 64
			inject(good(1, "secret", 7), 255, 3)      // other interface
			inject(badsum, 255, 2)
			inject(vrrp, 255, 2)
			inject(long, 255, 2)
			inject(badver, 255, 2)
			sleep(500 * time.Millisecond)
		}
		wantState(t, b, carp.Master)
		if got := b.last().At.Sub(t0); got != b.g.MasterDownInterval() {
			t.Errorf("took over after %v, want %v: bad packets reset the timer", got, b.g.MasterDownInterval())
		}
		got := b.g.Stats()
		got.Opackets = 0 // not under test here
		want := carp.Stats{
			Ipackets: 1 + 9*20,
			Badauth:  20, Hdrops: 20, Badvhid: 20, Badttl: 20, Badif: 20, Badsum: 20, VRRP: 20,
			Badlen: 20, Badver: 20,
			Preempt: 1,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
	})
}

// TestLoop: our own adverts coming back are counted and do not make the
// master yield (which an equal advert otherwise would).
func TestLoop(t *testing.T) {
	for _, mode := range []carp.CounterMode{carp.CounterIncrement, carp.CounterCookie} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				a := newNode(t, seg, "a", carp.Config{StartAsMaster: true, CounterMode: mode}).start(t)
				a.port.SetLoopback(true)
				sleep(10 * time.Second)
				wantState(t, a, carp.Master)
				if st := a.g.Stats(); st.Badloop != 11 || st.Opackets != 11 {
					t.Errorf("Badloop %d Opackets %d, want 11 and 11", st.Badloop, st.Opackets)
				}
				// A replay of an old advert (older than the last few) in
				// cookie mode is still ours.
				if mode == carp.CounterCookie {
					a.port.Inject(carp.Packet{Family: carp.IPv4, Payload: a.port.LastSent(carp.IPv4), TTL: 255})
					synctest.Wait()
					wantState(t, a, carp.Master)
				}
			})
		})
	}
}

// TestOwnCounterSequences (increment mode): a backup that becomes master
// continues its own counter, not the old master's, so neither ever sees the
// other's adverts as its own.
func TestOwnCounterSequences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{}).start(t)
		b := newNode(t, seg, "b", carp.Config{AdvSkew: 1}).start(t)
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		var advA carp.Advertisement
		if err := advA.UnmarshalBinary(a.port.LastSent(carp.IPv4)); err != nil {
			t.Fatal(err)
		}
		// a steps down for 10 s: b takes over with its own counter.
		a.g.StepDown(10 * time.Second)
		sleep(5 * time.Second)
		wantState(t, b, carp.Master)
		var adv carp.Advertisement
		if err := adv.UnmarshalBinary(b.port.LastSent(carp.IPv4)); err != nil {
			t.Fatal(err)
		}
		if d := adv.Counter - advA.Counter; d < 1<<32 {
			t.Errorf("b's counter %x continues a's %x", adv.Counter, advA.Counter)
		}
		b.g.StepDown(10 * time.Second)
		sleep(5 * time.Second)
		wantState(t, a, carp.Master)
		for _, n := range []*node{a, b} {
			if st := n.g.Stats(); st.Badloop != 0 || st.Replay != 0 {
				t.Errorf("%s: Badloop %d Replay %d, want 0 0", n.name, st.Badloop, st.Replay)
			}
		}
	})
}

func TestDualStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		addrs := []netip.Addr{netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("2001:db8::254"), netip.MustParseAddr("fe80::254")}
		a := newNode(t, seg, "a", carp.Config{Addrs: addrs, StartAsMaster: true}, carp.IPv4, carp.IPv6).start(t)
		b := newNode(t, seg, "b", carp.Config{Addrs: addrs, AdvSkew: 100}, carp.IPv4, carp.IPv6).start(t)
		sleep(10500 * time.Millisecond)
		st := a.g.Stats()
		if st.Opackets != 11 || st.Opackets6 != 11 {
			t.Errorf("a sent %d IPv4 and %d IPv6 adverts, want 11 each", st.Opackets, st.Opackets6)
		}
		if st := b.g.Stats(); st.Ipackets != 11 || st.Ipackets6 != 11 || st.Badauth != 0 {
			t.Errorf("b: %+v", st)
		}
		a.port.Crash()
		sleep(10 * time.Second)
		wantState(t, b, carp.Master)
	})
	// One master-down timer per family: adverts on IPv6 alone do not keep
	// the IPv4 timer from expiring (FreeBSD and OpenBSD run one per family).
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		addrs := []netip.Addr{netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("2001:db8::254")}
		b := newNode(t, seg, "b", carp.Config{Addrs: addrs, AdvSkew: 100}, carp.IPv4, carp.IPv6)
		auth, err := carp.NewAuthenticator([]byte("secret"), 1, addrs)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		b.start(t)
		for i := range 5 {
			adv := carp.Advertisement{VHID: 1, AdvBase: 1, Counter: uint64(i)}
			auth.Sign(&adv)
			payload, _ := adv.MarshalBinary()
			b.port.Inject(carp.Packet{Family: carp.IPv6, Payload: payload, TTL: 255})
			sleep(time.Second)
		}
		// Master when the IPv4 timer expired; the next IPv6 advert (a
		// faster master) sent it back to BACKUP.
		want := []step{
			{carp.Init, carp.Backup, carp.ReasonInit},
			{carp.Backup, carp.Master, carp.ReasonMasterTimedOut},
			{carp.Master, carp.Backup, carp.ReasonMoreFrequent},
		}
		if diff := cmp.Diff(want, b.steps()); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		if got := b.transitions()[1].At.Sub(t0); got != b.g.MasterDownInterval() {
			t.Errorf("master after %v, want %v (the IPv4 timer)", got, b.g.MasterDownInterval())
		}
	})
}

// TestGoroutinesExit checks without synctest, on a real clock, that Close
// leaves no goroutine of the package behind.
func TestGoroutinesExit(t *testing.T) {
	seg := carptest.NewSegment(1)
	var groups []*carp.Group
	for i := range 3 {
		port := seg.Join(carp.IPv4)
		g, err := carp.NewGroup(carp.Config{VHID: 1, AdvSkew: uint8(i), Addrs: vip4, Transport: port,
			StartAsMaster: i == 0, OnTransition: func(carp.Transition) {}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	if err := groups[0].Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if n := carpGoroutines(); n == 0 {
		t.Fatal("no group goroutines found while running: the check below would prove nothing")
	}
	for _, g := range groups {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := g.Start(); err == nil {
			t.Error("Start after Close succeeded")
		}
	}
	// Close waited for every goroutine. One that has signalled its exit
	// may not have returned yet, so yield a little (as goleak retries); a
	// goroutine still blocked somewhere never goes away.
	n := carpGoroutines()
	for i := 0; n != 0 && i < 1000; i++ {
		runtime.Gosched()
		n = carpGoroutines()
	}
	if n != 0 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines of package carp left after Close:\n%s", n, buf[:runtime.Stack(buf, true)])
	}
	// Close of a never-started group closes the transport.
	port := seg.Join(carp.IPv4)
	g, err := carp.NewGroup(carp.Config{VHID: 1, Addrs: vip4, Transport: port})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := port.Receive(); err == nil {
		t.Error("transport still open after Close")
	}
}

// carpGoroutines counts the goroutines Group.Start created.
func carpGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "created by github.com/gocarp/gocarp/carp.(*Group).Start") {
			n++
		}
	}
	return n
}

// fixChecksum recomputes the RFC 1071 checksum of a 36-byte advert.
func fixChecksum(b []byte) {
	b[6], b[7] = 0, 0
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	b[6], b[7] = byte(^sum>>8), byte(^sum)
}

// TestDemoteInSkew: with DemoteInSkew a demoted group advertises advskew
// 240 (FreeBSD's way, for peers that ignore the demote byte) and compares
// itself to peers with it; the demote byte is still sent.
func TestDemoteInSkew(t *testing.T) {
	lastSent := func(t *testing.T, n *node) carp.Advertisement {
		t.Helper()
		var a carp.Advertisement
		if err := a.UnmarshalBinary(n.port.LastSent(carp.IPv4)); err != nil {
			t.Fatalf("last advert of %s: %v", n.name, err)
		}
		return a
	}
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newNode(t, seg, "a", carp.Config{DemoteInSkew: true, Preempt: true}).start(t)
		// slow is alone on its own segment, so that it becomes master.
		slow := newNode(t, carptest.NewSegment(2), "slow", carp.Config{AdvSkew: 250, DemoteInSkew: true})
		slow.g.SetDemotion("health", 1)
		slow.start(t)
		sleep(5 * time.Second)
		wantState(t, a, carp.Master)
		if adv := lastSent(t, a); adv.AdvSkew != 0 || adv.Demote != 0 {
			t.Fatalf("undemoted advert: advskew %d demote %d, want 0 0", adv.AdvSkew, adv.Demote)
		}
		if adv := lastSent(t, slow); adv.AdvSkew != 250 || adv.Demote != 1 {
			// The configured advskew is above 240: demotion never lowers it.
			t.Errorf("slow node's advert: advskew %d demote %d, want 250 1", adv.AdvSkew, adv.Demote)
		}

		// Demoted: an advert goes out at once with advskew 240 and the
		// demote byte.
		n := a.port.SentCount()
		a.g.SetDemotion("health", 1)
		synctest.Wait()
		if a.port.SentCount() != n+1 {
			t.Errorf("%d adverts sent on demotion, want 1 at once", a.port.SentCount()-n)
		}
		if adv := lastSent(t, a); adv.AdvSkew != carp.DemotedSkew || adv.Demote != 1 {
			t.Errorf("demoted advert: advskew %d demote %d, want %d 1", adv.AdvSkew, adv.Demote, carp.DemotedSkew)
		}

		// A peer as demoted as a (demote 1) advertising advskew 100: by the
		// configured advskew 0 a would keep the role; by its demoted skew
		// 240 it yields, and, though it has Preempt, does not take the role
		// back while demoted.
		auth, err := carp.NewAuthenticator([]byte("secret"), 1, vip4)
		if err != nil {
			t.Fatal(err)
		}
		peer := func(counter uint64) {
			adv := carp.Advertisement{VHID: 1, AdvBase: 1, AdvSkew: 100, Demote: 1, Counter: counter}
			auth.Sign(&adv)
			b, _ := adv.MarshalBinary()
			a.port.Inject(carp.Packet{Family: carp.IPv4, Src: netip.MustParseAddr("10.0.0.99"), TTL: 255, Payload: b})
		}
		peer(1)
		synctest.Wait()
		wantState(t, a, carp.Backup)
		if got := a.last().Reason; got != carp.ReasonMoreFrequent {
			t.Errorf("a yielded with reason %q, want %q", got, carp.ReasonMoreFrequent)
		}
		for c := range uint64(5) {
			sleep(time.Second)
			peer(2 + c)
		}
		synctest.Wait()
		wantState(t, a, carp.Backup)

		// Undemoted, a preempts the slower peer again.
		a.g.SetDemotion("health", 0)
		peer(10)
		synctest.Wait()
		wantState(t, a, carp.Master)
		if adv := lastSent(t, a); adv.AdvSkew != 0 || adv.Demote != 0 {
			t.Errorf("advert after the demotion cleared: advskew %d demote %d, want 0 0", adv.AdvSkew, adv.Demote)
		}
	})
}

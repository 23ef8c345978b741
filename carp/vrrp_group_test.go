package carp_test

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// newVRRPNode is newNode for a VRRPv3 group: no password (newNode's default
// is CARP's), the given priority and interval.
func newVRRPNode(t *testing.T, seg *carptest.Segment, name string, cfg carp.Config, families ...carp.Family) *node {
	t.Helper()
	cfg.Protocol = carp.ProtocolVRRPv3
	if cfg.Password == nil {
		cfg.Password = []byte{}
	}
	return newNode(t, seg, name, cfg, families...)
}

// lastVRRP decodes the last advert n sent on family f.
func lastVRRP(t *testing.T, n *node, f carp.Family) carp.VRRPAdvertisement {
	t.Helper()
	var a carp.VRRPAdvertisement
	if err := a.Unmarshal(n.port.LastSent(f), n.port.Source(f), n.port.Destination(f)); err != nil {
		t.Fatalf("%s: last %v advert: %v", n.name, f, err)
	}
	return a
}

// hidden is a Transport that does not report its addresses.
type hidden struct{ carp.Transport }

func TestVRRPConfigValidation(t *testing.T) {
	port := carptest.NewSegment(1).Join(carp.IPv4)
	vrrp := carp.Config{VHID: 1, Addrs: vip4, Transport: port, Protocol: carp.ProtocolVRRPv3}
	carpCfg := carp.Config{VHID: 1, Addrs: vip4, Transport: port}
	tests := []struct {
		name string
		base carp.Config
		mod  func(c *carp.Config)
		want string
	}{
		{"protocol 2", carpCfg, func(c *carp.Config) { c.Protocol = 2 }, "carp: Config.Protocol 2 out of range 0-1"},
		{"priority with carp", carpCfg, func(c *carp.Config) { c.Priority = 100 }, "carp: Config.Priority 100 set with protocol carp, want 0 (VRRPv3 only)"},
		{"interval with carp", carpCfg, func(c *carp.Config) { c.AdvertInterval = time.Second }, "carp: Config.AdvertInterval 1s set with protocol carp, want 0 (VRRPv3 only)"},
		{"interval 5ms", vrrp, func(c *carp.Config) { c.AdvertInterval = 5 * time.Millisecond }, "carp: Config.AdvertInterval 5ms out of range (0 or 10ms-40.95s in steps of 10ms)"},
		{"interval 15ms", vrrp, func(c *carp.Config) { c.AdvertInterval = 15 * time.Millisecond }, "carp: Config.AdvertInterval 15ms out of range (0 or 10ms-40.95s in steps of 10ms)"},
		{"interval 41s", vrrp, func(c *carp.Config) { c.AdvertInterval = 41 * time.Second }, "carp: Config.AdvertInterval 41s out of range (0 or 10ms-40.95s in steps of 10ms)"},
		{"negative interval", vrrp, func(c *carp.Config) { c.AdvertInterval = -time.Second }, "carp: Config.AdvertInterval -1s out of range (0 or 10ms-40.95s in steps of 10ms)"},
		{"advbase with vrrp", vrrp, func(c *carp.Config) { c.AdvBase = 1 }, "carp: Config.AdvBase 1 set with protocol vrrp3, want the zero value (CARP only)"},
		{"advskew with vrrp", vrrp, func(c *carp.Config) { c.AdvSkew = 10 }, "carp: Config.AdvSkew 10 set with protocol vrrp3, want the zero value (CARP only)"},
		{"password with vrrp", vrrp, func(c *carp.Config) { c.Password = []byte("secret") }, "carp: Config.Password of 6 bytes set with protocol vrrp3, want the zero value (CARP only)"},
		{"demotionweight with carp", carpCfg, func(c *carp.Config) { c.DemotionWeight = 255 }, "carp: Config.DemotionWeight 255 set with protocol carp, want 0 (VRRPv3 only)"},
		{"deadratio with vrrp", vrrp, func(c *carp.Config) { c.DeadRatio = 3 }, "carp: Config.DeadRatio 3 set with protocol vrrp3, want the zero value (CARP only)"},
		{"demoteinskew with vrrp", vrrp, func(c *carp.Config) { c.DemoteInSkew = true }, "carp: Config.DemoteInSkew true set with protocol vrrp3, want the zero value (CARP only)"},
		{"transport without addresses", vrrp, func(c *carp.Config) { c.Transport = hidden{port} }, "carp: Config.Transport carp_test.hidden does not report its addresses (Source, Destination), which VRRPv3 needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.base
			tt.mod(&c)
			_, err := carp.NewGroup(c)
			if err == nil || err.Error() != tt.want {
				t.Errorf("NewGroup = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		for _, c := range []carp.Config{vrrp, {VHID: 1, Addrs: vip4, Transport: port, Protocol: carp.ProtocolVRRPv3, Priority: 255, AdvertInterval: 40950 * time.Millisecond}} {
			g, err := carp.NewGroup(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestVRRPIntervals(t *testing.T) {
	tests := []struct {
		name       string
		cfg        carp.Config
		advert     time.Duration
		masterDown time.Duration
	}{
		// Master_Down_Interval = 3·interval + (256 - priority)·interval/256.
		{"defaults (priority 100, 1 s)", carp.Config{}, time.Second, 3*time.Second + 156*time.Second/256},
		{"priority 200", carp.Config{Priority: 200}, time.Second, 3*time.Second + 56*time.Second/256},
		{"owner at 100 ms", carp.Config{Priority: 255, AdvertInterval: 100 * time.Millisecond}, 100 * time.Millisecond, 300*time.Millisecond + 100*time.Millisecond/256},
		{"priority 1 at 10 ms", carp.Config{Priority: 1, AdvertInterval: 10 * time.Millisecond}, 10 * time.Millisecond, 30*time.Millisecond + 255*10*time.Millisecond/256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newVRRPNode(t, carptest.NewSegment(1), "a", tt.cfg)
			if got := n.g.AdvertInterval(); got != tt.advert {
				t.Errorf("AdvertInterval = %v, want %v", got, tt.advert)
			}
			if got := n.g.MasterDownInterval(); got != tt.masterDown {
				t.Errorf("MasterDownInterval = %v, want %v", got, tt.masterDown)
			}
		})
	}
}

// TestVRRPElection: the highest priority becomes master first (its
// master-down interval is the shortest), sends VRRPv3 adverts with its
// priority, interval and addresses on both families, and the others stay
// backup.
func TestVRRPElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		addrs := []netip.Addr{netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("2001:db8::254"), netip.MustParseAddr("fe80::254")}
		both := []carp.Family{carp.IPv4, carp.IPv6}
		var nodes []*node
		for i, prio := range []uint8{50, 200, 100} {
			nodes = append(nodes, newVRRPNode(t, seg, string(rune('a'+i)), carp.Config{Priority: prio, Addrs: addrs}, both...))
		}
		t0 := time.Now()
		for _, n := range nodes {
			n.start(t)
		}
		sleep(20 * time.Second)
		a, b, c := nodes[0], nodes[1], nodes[2]
		wantState(t, a, carp.Backup)
		wantState(t, b, carp.Master)
		wantState(t, c, carp.Backup)
		want := []step{
			{carp.Init, carp.Backup, carp.ReasonInit},
			{carp.Backup, carp.Master, carp.ReasonMasterTimedOut},
		}
		if diff := cmp.Diff(want, b.steps()); diff != "" {
			t.Errorf("b transitions (-want +got):\n%s", diff)
		}
		if got, want := b.steps(), 3*time.Second+56*time.Second/256; len(got) == 2 && b.last().At.Sub(t0) != want {
			t.Errorf("b master after %v, want %v", b.last().At.Sub(t0), want)
		}
		v4, v6 := lastVRRP(t, b, carp.IPv4), lastVRRP(t, b, carp.IPv6)
		want4 := carp.VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: addrs[:1]}
		// IPv6: the link-local virtual address first (RFC 5798).
		want6 := carp.VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: []netip.Addr{addrs[2], addrs[1]}}
		eq := cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
		if diff := cmp.Diff(want4, v4, eq); diff != "" {
			t.Errorf("IPv4 advert (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want6, v6, eq); diff != "" {
			t.Errorf("IPv6 advert (-want +got):\n%s", diff)
		}
		for _, n := range nodes {
			if st := n.g.Stats(); st.Badsum+st.Badauth+st.Badver+st.Badlen+st.Hdrops != 0 {
				t.Errorf("%s: drops %+v", n.name, st)
			}
		}
	})
}

// TestVRRPMasterDown: a backup takes over exactly one master-down interval
// after the last advert it heard, computed from the interval the master
// advertises (which the backup learns, RFC 5798) and its own priority.
func TestVRRPMasterDown(t *testing.T) {
	tests := []struct {
		name           string
		master, backup time.Duration // configured intervals
		prio           uint8         // the backup's
		want           time.Duration
	}{
		{"1 s, priority 100", time.Second, time.Second, 100, 3*time.Second + 156*time.Second/256},
		{"100 ms, priority 254", 100 * time.Millisecond, 100 * time.Millisecond, 254, 300*time.Millisecond + 2*100*time.Millisecond/256},
		{"master at 200 ms learned by a backup configured at 2 s", 200 * time.Millisecond, 2 * time.Second, 100, 600*time.Millisecond + 156*200*time.Millisecond/256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				a := newVRRPNode(t, seg, "a", carp.Config{Priority: 255, AdvertInterval: tt.master})
				b := newVRRPNode(t, seg, "b", carp.Config{Priority: tt.prio, AdvertInterval: tt.backup}).start(t)
				t0 := time.Now()
				a.start(t) // the owner: MASTER at t0, adverts every tt.master
				sleep(10*tt.master + tt.master/2)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				a.port.Crash() // last advert heard at t0 + 10·interval
				sleep(10 * time.Second)
				wantState(t, b, carp.Master)
				tr := b.last()
				if tr.Reason != carp.ReasonMasterTimedOut {
					t.Errorf("reason %q", tr.Reason)
				}
				if got := tr.At.Sub(t0.Add(10 * tt.master)); got != tt.want {
					t.Errorf("took over %v after the last advert, want %v", got, tt.want)
				}
			})
		})
	}
}

// TestVRRPGracefulStop: a master that stops sends priority 0; each backup
// takes over after its skew time, (256 - priority)/256 of the interval, so
// the higher priority goes first, and the other stays backup.
func TestVRRPGracefulStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newVRRPNode(t, seg, "a", carp.Config{Priority: 255}).start(t)
		b := newVRRPNode(t, seg, "b", carp.Config{Priority: 200}).start(t)
		c := newVRRPNode(t, seg, "c", carp.Config{Priority: 100}).start(t)
		sleep(5500 * time.Millisecond)
		wantState(t, a, carp.Master)
		closedAt := time.Now()
		if err := a.g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := lastVRRP(t, a, carp.IPv4).Priority; got != 0 {
			t.Errorf("a's last advert has priority %d, want 0", got)
		}
		sleep(10 * time.Second)
		wantState(t, b, carp.Master)
		wantState(t, c, carp.Backup)
		tr := b.last()
		if want := closedAt.Add(56 * time.Second / 256); tr.Reason != carp.ReasonBowOut || !tr.At.Equal(want) {
			t.Errorf("b: %+v, want %q at %v (the skew time after the stop)", tr, carp.ReasonBowOut, want)
		}
		if diff := cmp.Diff([]step{{carp.Init, carp.Backup, carp.ReasonInit}}, c.steps()); diff != "" {
			t.Errorf("c transitions (-want +got):\n%s", diff)
		}
	})
}

// TestVRRPMasterAnswersPriorityZero: a master that hears priority 0 (a
// former master leaving late) answers at once, so the backups do not take
// over after their skew time.
func TestVRRPMasterAnswersPriorityZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newVRRPNode(t, seg, "a", carp.Config{Priority: 200}).start(t)
		b := newVRRPNode(t, seg, "b", carp.Config{Priority: 100}).start(t)
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		sent := a.port.SentCount()
		stop := carp.VRRPAdvertisement{VRID: 1, Priority: 0, Interval: 100, Addrs: vip4}
		src := netip.MustParseAddr("192.0.2.99")
		payload, err := stop.Append(nil, src, a.port.Destination(carp.IPv4))
		if err != nil {
			t.Fatal(err)
		}
		a.port.Inject(carp.Packet{Family: carp.IPv4, Payload: payload, Src: src, Dst: a.port.Destination(carp.IPv4), TTL: 255, IfIndex: a.port.IfIndex()})
		synctest.Wait()
		if got := a.port.SentCount(); got != sent+1 {
			t.Errorf("a sent %d adverts at once, want 1", got-sent)
		}
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		wantState(t, b, carp.Backup)
	})
}

func TestVRRPPreemption(t *testing.T) {
	for _, preempt := range []bool{false, true} {
		name := "off"
		if preempt {
			name = "on"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				low := newVRRPNode(t, seg, "low", carp.Config{Priority: 100, Preempt: preempt}).start(t)
				sleep(5 * time.Second)
				wantState(t, low, carp.Master)
				high := newVRRPNode(t, seg, "high", carp.Config{Priority: 200, Preempt: preempt}).start(t)
				sleep(30 * time.Second)
				if !preempt {
					wantState(t, low, carp.Master)
					wantState(t, high, carp.Backup)
					return
				}
				wantState(t, high, carp.Master)
				wantState(t, low, carp.Backup)
				if got := high.last().Reason; got != carp.ReasonPreempt {
					t.Errorf("high: reason %q, want %q", got, carp.ReasonPreempt)
				}
				if got := low.last().Reason; got != carp.ReasonMoreFrequent {
					t.Errorf("low: reason %q, want %q", got, carp.ReasonMoreFrequent)
				}
			})
		})
	}
}

// TestVRRPTieByAddress: of two masters with equal priorities, the one with
// the higher primary address stays master (RFC 5798), whichever started
// first; a backup of equal priority does not preempt.
func TestVRRPTieByAddress(t *testing.T) {
	for _, lowFirst := range []bool{true, false} {
		name := "lower address master first"
		if !lowFirst {
			name = "higher address master first"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				// Ports get 192.0.2.1, 192.0.2.2 in join order.
				low := newVRRPNode(t, seg, "low", carp.Config{StartAsMaster: true, Preempt: true})
				high := newVRRPNode(t, seg, "high", carp.Config{StartAsMaster: true, Preempt: true})
				first, second := low, high
				if !lowFirst {
					first, second = high, low
				}
				first.start(t)
				sleep(500 * time.Millisecond)
				second.start(t)
				sleep(20 * time.Second)
				wantState(t, high, carp.Master)
				wantState(t, low, carp.Backup)
				if got := low.last().Reason; got != carp.ReasonMoreFrequent {
					t.Errorf("low: reason %q, want %q", got, carp.ReasonMoreFrequent)
				}
			})
		})
	}
}

// TestVRRPDemotion: demotion lowers the advertised priority like a
// keepalived track weight, hands over to a preempting backup, never goes
// below 1, and clearing it restores the priority.
func TestVRRPDemotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newVRRPNode(t, seg, "a", carp.Config{Priority: 200, Preempt: true}).start(t)
		b := newVRRPNode(t, seg, "b", carp.Config{Priority: 150, Preempt: true}).start(t)
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)

		a.g.SetDemotion("health", 20) // 180 > 150: stays master
		synctest.Wait()
		wantState(t, a, carp.Master)
		if got := lastVRRP(t, a, carp.IPv4).Priority; got != 180 {
			t.Errorf("priority %d, want 180", got)
		}
		a.g.SetDemotion("sync", 100) // 80 < 150: b preempts at once
		synctest.Wait()
		wantState(t, b, carp.Master)
		wantState(t, a, carp.Backup)
		if got := b.last().Reason; got != carp.ReasonPreempt {
			t.Errorf("b: reason %q, want %q", got, carp.ReasonPreempt)
		}

		// Demoted far below 1 and the master gone: a still takes over,
		// advertising priority 1, never 0 (a stop) or less.
		a.g.SetDemotion("more", 1000)
		b.port.Crash()
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		if got := lastVRRP(t, a, carp.IPv4).Priority; got != 1 {
			t.Errorf("priority %d while demoted by %d, want 1", got, a.g.Demotion())
		}
		// Cleared: the configured priority again.
		a.g.SetDemotion("health", 0)
		a.g.SetDemotion("sync", 0)
		a.g.SetDemotion("more", 0)
		synctest.Wait()
		if got := lastVRRP(t, a, carp.IPv4).Priority; got != 200 {
			t.Errorf("priority %d after clearing, want 200", got)
		}
	})
}

// TestVRRPBadPackets: what a VRRPv3 group counts and ignores.
func TestVRRPBadPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newVRRPNode(t, seg, "a", carp.Config{Priority: 100}).start(t)
		dst := a.port.Destination(carp.IPv4)
		src := netip.MustParseAddr("192.0.2.77")
		enc := func(adv carp.VRRPAdvertisement) []byte {
			b, err := adv.Append(nil, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		good := carp.VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: vip4}
		badSum := enc(good)
		badSum[6] ^= 0xff
		v2 := []byte{0x21, 1, 200, 1, 0, 1, 0, 0, 10, 0, 0, 254, 0, 0, 0, 0, 0, 0, 0, 0}
		carpAdv, _ := carp.Advertisement{VHID: 1, AdvBase: 1}.MarshalBinary()
		inject := func(payload []byte, ttl int) {
			a.port.Inject(carp.Packet{Family: carp.IPv4, Payload: payload, Src: src, Dst: dst, TTL: ttl, IfIndex: a.port.IfIndex()})
		}
		inject(badSum, 255)
		inject(v2, 255)
		inject(carpAdv, 255)
		inject(enc(carp.VRRPAdvertisement{VRID: 2, Priority: 200, Interval: 100, Addrs: vip4}), 255)
		inject(enc(carp.VRRPAdvertisement{VRID: 1, Priority: 200, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.253")}}), 255)
		inject(enc(good)[:10], 255)
		inject(enc(good), 64)
		synctest.Wait()
		st := a.g.Stats()
		got := []uint64{st.Badsum, st.VRRPv2, st.CARP, st.Badvhid, st.Badauth, st.Hdrops, st.Badttl}
		if diff := cmp.Diff([]uint64{1, 1, 1, 1, 1, 1, 1}, got); diff != "" {
			t.Errorf("badsum, vrrpv2, carp, badvhid, badauth, hdrops, badttl (-want +got):\n%s", diff)
		}
		// None of them was obeyed: a higher priority master would have
		// kept a backup; a times out and becomes master.
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		if got := a.steps()[1].Reason; got != carp.ReasonMasterTimedOut {
			t.Errorf("a: reason %q, want %q", got, carp.ReasonMasterTimedOut)
		}
	})
}

// TestVRRPDemotionWithoutPreempt: VRRP carries demotion only in the
// priority. A master whose demotion drops its priority below a backup's
// steps down on purpose: the backup takes over at once even without
// preemption, and the demoted node stays BACKUP. A demotion that leaves
// the master ahead changes nothing.
func TestVRRPDemotionWithoutPreempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a := newVRRPNode(t, seg, "a", carp.Config{Priority: 200}).start(t)
		b := newVRRPNode(t, seg, "b", carp.Config{Priority: 150}).start(t)
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		a.g.SetDemotion("sync", 30) // priority 170: still ahead
		sleep(10 * time.Second)
		wantState(t, a, carp.Master)
		wantState(t, b, carp.Backup)
		a.g.SetDemotion("sync", 100) // priority 100: behind b
		sleep(10 * time.Millisecond)
		wantState(t, a, carp.Backup)
		wantState(t, b, carp.Master)
		if got := b.last().Reason; got != carp.ReasonSteppedDown {
			t.Errorf("b: reason %q, want %q", got, carp.ReasonSteppedDown)
		}
		if got := lastVRRP(t, a, carp.IPv4).Priority; got != 100 {
			t.Errorf("priority %d, want 100", got)
		}
		sleep(time.Minute)
		wantState(t, a, carp.Backup)
		wantState(t, b, carp.Master)
	})
}

// TestVRRPDemotionWeight: with DemotionWeight 255 a demotion of 1 puts the
// master at priority 1, below a backup of any priority, as a CARP
// demotion ranks a node below every undemoted one; with the default weight
// the same demotion changes nothing between priorities 200 and 100.
func TestVRRPDemotionWeight(t *testing.T) {
	for _, tt := range []struct {
		weight   uint8
		prio     uint8 // a's advertised priority once demoted by 1
		handover bool
	}{
		{0, 199, false},
		{255, 1, true},
	} {
		t.Run(fmt.Sprint("weight ", tt.weight), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				a := newVRRPNode(t, seg, "a", carp.Config{Priority: 200, Preempt: true, DemotionWeight: tt.weight}).start(t)
				b := newVRRPNode(t, seg, "b", carp.Config{Priority: 100, Preempt: true, DemotionWeight: tt.weight}).start(t)
				sleep(10 * time.Second)
				wantState(t, a, carp.Master)
				a.g.SetDemotion("sync", 1)
				sleep(10 * time.Second)
				if got := lastVRRP(t, a, carp.IPv4).Priority; got != tt.prio {
					t.Errorf("a's priority %d, want %d", got, tt.prio)
				}
				if tt.handover {
					wantState(t, b, carp.Master)
					wantState(t, a, carp.Backup)
				} else {
					wantState(t, a, carp.Master)
					wantState(t, b, carp.Backup)
				}
			})
		})
	}
}

// TestVRRPFollowGroup: a FollowGroup works unchanged on VRRPv3 groups. Two
// nodes with a LAN and a WAN group each; a, of higher priority, is master
// of both; its LAN link goes down, and the FollowGroup's demotion (weight
// 255) hands the WAN group to b as well.
func TestVRRPFollowGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan, wan := carptest.NewSegment(1), carptest.NewSegment(2)
		type pair struct{ lan, wan *node }
		mk := func(name string, prio uint8) pair {
			follow, err := carp.NewFollowGroup(&carp.FollowConfig{Hold: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { follow.Close() })
			var p pair
			for i, seg := range []*carptest.Segment{lan, wan} {
				n := newVRRPNode(t, seg, name, carp.Config{VHID: uint8(i + 1), Priority: prio, Preempt: true, DemotionWeight: 255})
				if err := follow.Add(n.g); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					p.lan = n
				} else {
					p.wan = n
				}
			}
			return p
		}
		a, b := mk("a", 200), mk("b", 100)
		for _, n := range []*node{a.lan, a.wan, b.lan, b.wan} {
			n.start(t)
		}
		sleep(10 * time.Second)
		wantState(t, a.lan, carp.Master)
		wantState(t, a.wan, carp.Master)
		a.lan.g.SetLinkState(false)
		sleep(10 * time.Second)
		wantState(t, b.lan, carp.Master)
		wantState(t, b.wan, carp.Master)
		wantState(t, a.wan, carp.Backup)
	})
}

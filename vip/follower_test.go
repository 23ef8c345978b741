package vip_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
	"github.com/google/go-cmp/cmp"
)

var (
	vip4 = netip.MustParseAddr("192.0.2.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
)

func tr(to carp.State, reason carp.Reason) carp.Transition {
	return carp.Transition{VHID: 10, To: to, Reason: reason, At: time.Now()}
}

// fixture is a Follower over fakes sharing one Recorder.
type fixture struct {
	f   *vip.Follower
	rec *viptest.Recorder
	mgr *viptest.AddrManager
	ann *viptest.Announcer
}

// newFixture must run inside a synctest bubble. cfg.Manager and
// cfg.Announcer are filled in; the Follower is closed at the end of the
// bubble's test.
func newFixture(t *testing.T, cfg vip.Config, initial ...netip.Prefix) *fixture {
	t.Helper()
	rec := &viptest.Recorder{}
	fx := &fixture{rec: rec, mgr: viptest.NewAddrManager(rec, initial...), ann: viptest.NewAnnouncer(rec)}
	cfg.Manager, cfg.Announcer = fx.mgr, fx.ann
	if cfg.VHID == 0 {
		cfg.VHID = 10
	}
	if cfg.Addrs == nil {
		cfg.Addrs = vip.Host(vip4, vip6)
	}
	f, err := vip.NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fx.f = f
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	synctest.Wait() // the start-up pass
	return fx
}

// offsets returns the times of the recorded calls of op, relative to t0.
func offsets(rec *viptest.Recorder, op viptest.Op, t0 time.Time) []time.Duration {
	var ds []time.Duration
	for _, c := range rec.Calls() {
		if c.Op == op {
			ds = append(ds, c.At.Sub(t0))
		}
	}
	return ds
}

func TestFollowerOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fx *fixture
		cfg := vip.Config{
			BeforeInstall: func(ctx context.Context, t carp.Transition) error {
				fx.rec.Record(viptest.Call{Op: "commit"})
				return nil
			},
		}
		// 192.0.2.10 falls in the on-link 192.0.2.0/24, so it takes /24; the
		// IPv6 VIP has no on-link subnet and becomes a /128.
		fx = newFixture(t, cfg, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("fe80::1/64"))
		t0 := time.Now()
		fx.f.Handle(tr(carp.Master, "master timed out"))
		synctest.Wait()
		fx.f.Handle(tr(carp.Backup, "more frequent advertisement received"))
		synctest.Wait()

		want := []string{
			"list", // start-up pass
			"commit",
			"add 192.0.2.10/24",
			"add 2001:db8::10/128",
			"announce [192.0.2.10 2001:db8::10]",
			"remove 192.0.2.10/24",
			"remove 2001:db8::10/128",
		}
		if diff := cmp.Diff(want, fx.rec.Strings()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		if got := offsets(fx.rec, viptest.OpAnnounce, t0); len(got) != 1 || got[0] != 0 {
			t.Errorf("announcement at %v; want exactly one, at once", got)
		}
		if fx.mgr.Has(vip4) || fx.mgr.Has(vip6) {
			t.Errorf("addresses left on a BACKUP: %v", fx.mgr.Addrs())
		}
		want2 := vip.Stats{State: carp.Backup, Installs: 2, Withdrawals: 2, Announcements: 1, Reconciles: 1}
		if diff := cmp.Diff(want2, fx.f.Stats()); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
		if err := fx.f.Err(); err != nil {
			t.Errorf("Err = %v", err)
		}
	})
}

func TestFollowerSchedule(t *testing.T) {
	s := time.Second
	tests := []struct {
		name     string
		advert   time.Duration
		schedule vip.Schedule
		backupAt time.Duration // 0: stay MASTER
		want     []time.Duration
	}{
		{name: "default: again two adverts later", want: []time.Duration{0, 2 * s}},
		{name: "default at advbase 3", advert: 3 * s, want: []time.Duration{0, 6 * s}},
		{name: "burst", schedule: vip.BurstSchedule(), want: []time.Duration{0, 1100 * time.Millisecond, 2200 * time.Millisecond, 3300 * time.Millisecond, 4400 * time.Millisecond}},
		{name: "once", schedule: vip.Schedule{Repeats: vip.NoRepeats}, want: []time.Duration{0}},
		{name: "refresh only", schedule: vip.Schedule{Repeats: vip.NoRepeats, Refresh: 3 * s}, want: []time.Duration{0, 3 * s, 6 * s, 9 * s}},
		{name: "repeat then refresh", schedule: vip.Schedule{Refresh: 5 * s}, want: []time.Duration{0, 2 * s, 7 * s}},
		{name: "three repeats", schedule: vip.Schedule{Interval: 500 * time.Millisecond, Repeats: 3}, want: []time.Duration{0, 500 * time.Millisecond, s, 1500 * time.Millisecond}},
		{name: "stops on BACKUP", schedule: vip.Schedule{Refresh: 5 * s}, backupAt: 3 * s, want: []time.Duration{0, 2 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newFixture(t, vip.Config{AdvertInterval: tt.advert, Schedule: tt.schedule, ReconcileInterval: time.Hour})
				t0 := time.Now()
				fx.f.Handle(tr(carp.Master, "test"))
				if tt.backupAt > 0 {
					time.Sleep(tt.backupAt)
					fx.f.Handle(tr(carp.Backup, "test"))
				}
				time.Sleep(10*s - tt.backupAt)
				synctest.Wait()
				if diff := cmp.Diff(tt.want, offsets(fx.rec, viptest.OpAnnounce, t0)); diff != "" {
					t.Errorf("announcement times (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestFollowerBeforeInstall(t *testing.T) {
	t.Run("error: installs anyway and reports", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, vip.Config{
				Addrs:         vip.Host(vip4),
				BeforeInstall: func(context.Context, carp.Transition) error { return errors.New("conntrackd -c failed") },
			})
			fx.f.Handle(tr(carp.Master, "test"))
			synctest.Wait()
			if !fx.mgr.Has(vip4) {
				t.Error("VIP not installed after a failed BeforeInstall")
			}
			if err := fx.f.Err(); err == nil || !strings.Contains(err.Error(), "conntrackd -c failed") {
				t.Errorf("Err = %v; want the BeforeInstall error", err)
			}
			if n := fx.f.Stats().Errors; n != 1 {
				t.Errorf("Stats.Errors = %d; want 1", n)
			}
		})
	})
	t.Run("deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hookErr := make(chan error, 1)
			fx := newFixture(t, vip.Config{
				Addrs:                vip.Host(vip4),
				BeforeInstallTimeout: 300 * time.Millisecond,
				BeforeInstall: func(ctx context.Context, _ carp.Transition) error {
					<-ctx.Done()
					hookErr <- ctx.Err()
					return ctx.Err()
				},
			})
			t0 := time.Now()
			fx.f.Handle(tr(carp.Master, "test"))
			time.Sleep(time.Second)
			if err := <-hookErr; !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("hook's context ended with %v; want DeadlineExceeded", err)
			}
			if diff := cmp.Diff([]time.Duration{300 * time.Millisecond}, offsets(fx.rec, viptest.OpAdd, t0)); diff != "" {
				t.Errorf("install times (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("superseded by BACKUP: nothing installed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hookErr := make(chan error, 1)
			fx := newFixture(t, vip.Config{
				Addrs: vip.Host(vip4),
				BeforeInstall: func(ctx context.Context, _ carp.Transition) error {
					<-ctx.Done()
					hookErr <- ctx.Err()
					return ctx.Err()
				},
			})
			fx.f.Handle(tr(carp.Master, "test"))
			synctest.Wait() // the hook is running
			fx.f.Handle(tr(carp.Backup, "preempted"))
			synctest.Wait()
			if err := <-hookErr; !errors.Is(err, context.Canceled) {
				t.Errorf("hook's context ended with %v; want Canceled", err)
			}
			if got := fx.rec.Strings(viptest.OpAdd, viptest.OpAnnounce); len(got) != 0 {
				t.Errorf("calls after a superseded promotion: %v; want none", got)
			}
			if s := fx.f.Stats(); s.State != carp.Backup || s.Errors != 0 {
				t.Errorf("stats = %+v; want BACKUP, no errors", s)
			}
		})
	})
}

func TestFollowerReconcile(t *testing.T) {
	host4 := netip.PrefixFrom(vip4, 32)
	t.Run("MASTER re-adds on notification and announces again", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, vip.Config{Addrs: vip.Host(vip4)})
			fx.f.Handle(tr(carp.Master, "test"))
			synctest.Wait()
			n := len(fx.rec.Calls())
			fx.mgr.DeleteBehind(host4, true) // "systemctl restart networking"
			synctest.Wait()
			want := []string{"list", "add 192.0.2.10/32", "announce [192.0.2.10]"}
			if diff := cmp.Diff(want, fx.rec.Strings()[n:]); diff != "" {
				t.Errorf("calls after the removal (-want +got):\n%s", diff)
			}
			if !fx.mgr.Has(vip4) || fx.f.Stats().Repairs != 1 {
				t.Errorf("not repaired: addrs %v, stats %+v", fx.mgr.Addrs(), fx.f.Stats())
			}
		})
	})
	t.Run("MASTER re-adds on the periodic pass when a notification is lost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s0 := time.Now()
			fx := newFixture(t, vip.Config{Addrs: vip.Host(vip4), ReconcileInterval: 5 * time.Second})
			fx.f.Handle(tr(carp.Master, "test"))
			time.Sleep(time.Second)
			fx.mgr.DeleteBehind(host4, false)
			time.Sleep(5 * time.Second)
			if diff := cmp.Diff([]time.Duration{0, 5 * time.Second}, offsets(fx.rec, viptest.OpAdd, s0)); diff != "" {
				t.Errorf("add times (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("stale VIPs are removed at start-up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, vip.Config{}, netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("198.51.100.1/24"))
			want := []string{"list", "remove 192.0.2.10/24"}
			if diff := cmp.Diff(want, fx.rec.Strings()); diff != "" {
				t.Errorf("start-up calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}, fx.mgr.Addrs(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("BACKUP never keeps one", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, vip.Config{})
			fx.f.Handle(tr(carp.Backup, "test"))
			synctest.Wait()
			fx.mgr.AddBehind(netip.PrefixFrom(vip6, 64), true)
			synctest.Wait()
			if fx.mgr.Has(vip6) {
				t.Errorf("BACKUP kept %v", vip6)
			}
		})
	})
	t.Run("failed install is retried by the next pass", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, vip.Config{Addrs: vip.Host(vip4), ReconcileInterval: 2 * time.Second})
			fx.mgr.SetError(viptest.OpAdd, errors.New("vip: add 192.0.2.10/32 on eth0: operation not permitted"))
			t0 := time.Now()
			fx.f.Handle(tr(carp.Master, "test"))
			synctest.Wait()
			if err := fx.f.Err(); err == nil || !strings.Contains(err.Error(), "not permitted") {
				t.Errorf("Err = %v; want the add error", err)
			}
			if got := fx.rec.Strings(viptest.OpAnnounce); len(got) != 0 {
				t.Errorf("announced %v without installing it", got)
			}
			fx.mgr.SetError(viptest.OpAdd, nil)
			time.Sleep(2 * time.Second) // the periodic pass
			synctest.Wait()
			if !fx.mgr.Has(vip4) {
				t.Fatal("not installed after the error cleared")
			}
			if diff := cmp.Diff([]time.Duration{2 * time.Second}, offsets(fx.rec, viptest.OpAnnounce, t0)); diff != "" {
				t.Errorf("announcement times (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("list errors are reported", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fx := newFixture(t, vip.Config{ReconcileInterval: time.Second})
			fx.mgr.SetError(viptest.OpList, errors.New("netlink: dump interrupted"))
			time.Sleep(time.Second)
			synctest.Wait()
			if err := fx.f.Err(); err == nil || !strings.Contains(err.Error(), "dump interrupted") {
				t.Errorf("Err = %v", err)
			}
			if n := fx.f.Stats().Errors; n != 1 {
				t.Errorf("Stats.Errors = %d; want 1", n)
			}
		})
	})
}

func TestFollowerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &viptest.Recorder{}
		mgr := viptest.NewAddrManager(rec)
		f, err := vip.NewFollower(vip.Config{Addrs: vip.Host(vip4, vip6), Manager: mgr, Announcer: viptest.NewAnnouncer(rec)})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		f.Handle(tr(carp.Master, "test"))
		synctest.Wait()
		mgr.SetError(viptest.OpRemove, errors.New("vip: remove: no such device"))
		err = f.Close()
		if err == nil || !strings.Contains(err.Error(), "no such device") {
			t.Fatalf("Close = %v; want the removal error", err)
		}
		if err2 := f.Close(); err2 != err {
			t.Fatalf("second Close = %v; want the same %v", err2, err)
		}
		n := len(rec.Calls())
		f.Handle(tr(carp.Backup, "after close"))
		f.Reannounce()
		synctest.Wait()
		if got := rec.Strings()[n:]; len(got) != 0 {
			t.Fatalf("calls after Close: %v", got)
		}

		// And a clean Close withdraws everything.
		rec2 := &viptest.Recorder{}
		mgr2 := viptest.NewAddrManager(rec2)
		f2, err := vip.NewFollower(vip.Config{Addrs: vip.Host(vip4), Manager: mgr2})
		if err != nil {
			t.Fatal(err)
		}
		if err := f2.Start(); err != nil {
			t.Fatal(err)
		}
		f2.Handle(tr(carp.Master, "test"))
		synctest.Wait()
		if err := f2.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"list", "add 192.0.2.10/32", "remove 192.0.2.10/32"}, rec2.Strings()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
}

func TestFollowerOtherVHIDAndReannounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, vip.Config{Addrs: vip.Host(vip4), Schedule: vip.Schedule{Repeats: vip.NoRepeats}})
		other := tr(carp.Master, "test")
		other.VHID = 11
		fx.f.Handle(other)
		fx.f.Reannounce() // not MASTER: nothing
		synctest.Wait()
		if got := fx.rec.Strings(viptest.OpAdd, viptest.OpAnnounce); len(got) != 0 {
			t.Fatalf("acted on vhid 11 or on Reannounce while INIT: %v", got)
		}
		t0 := time.Now()
		fx.f.Handle(tr(carp.Master, "test"))
		time.Sleep(time.Second)
		fx.f.Reannounce()
		synctest.Wait()
		if diff := cmp.Diff([]time.Duration{0, time.Second}, offsets(fx.rec, viptest.OpAnnounce, t0)); diff != "" {
			t.Errorf("announcement times (-want +got):\n%s", diff)
		}
	})
}

// TestFollowerHandleContest: a contest of the Follower's group while
// MASTER announces again at once; one of another group, or while not
// MASTER, does nothing.
func TestFollowerHandleContest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, vip.Config{Addrs: vip.Host(vip4), Schedule: vip.Schedule{Repeats: vip.NoRepeats}})
		peer := netip.MustParseAddr("192.0.2.2")
		fx.f.HandleContest(carp.Contest{VHID: 10, Family: carp.IPv4, Peer: peer, At: time.Now()}) // INIT
		synctest.Wait()
		if got := fx.rec.Strings(viptest.OpAnnounce); len(got) != 0 {
			t.Fatalf("announced on a contest while INIT: %v", got)
		}
		t0 := time.Now()
		fx.f.Handle(tr(carp.Master, "test"))
		time.Sleep(time.Second)
		fx.f.HandleContest(carp.Contest{VHID: 11, Family: carp.IPv4, Peer: peer, At: time.Now()})
		time.Sleep(time.Second)
		fx.f.HandleContest(carp.Contest{VHID: 10, Family: carp.IPv4, Peer: peer, At: time.Now()})
		synctest.Wait()
		if diff := cmp.Diff([]time.Duration{0, 2 * time.Second}, offsets(fx.rec, viptest.OpAnnounce, t0)); diff != "" {
			t.Errorf("announcement times (-want +got):\n%s", diff)
		}
	})
}

func TestNewFollowerValidation(t *testing.T) {
	mgr := viptest.NewAddrManager(nil)
	ok := vip.Config{Addrs: vip.Host(vip4), Manager: mgr}
	tests := []struct {
		name string
		edit func(*vip.Config)
		want string
	}{
		{"no addrs", func(c *vip.Config) { c.Addrs = nil }, "vip: Config.Addrs is empty"},
		{"invalid addr", func(c *vip.Config) { c.Addrs = []vip.VIP{{}} }, "not a valid IP address"},
		{"duplicate", func(c *vip.Config) { c.Addrs = vip.Host(vip4, vip4) }, "vip: Config.Addrs[1].Addr 192.0.2.10 listed twice"},
		{"multicast", func(c *vip.Config) { c.Addrs = vip.Host(netip.MustParseAddr("224.0.0.18")) }, "vip: Config.Addrs[0].Addr 224.0.0.18 is not a unicast address"},
		{"mapped", func(c *vip.Config) { c.Addrs = vip.Host(netip.MustParseAddr("::ffff:192.0.2.1")) }, "IPv4-mapped"},
		{"bits", func(c *vip.Config) { c.Addrs = []vip.VIP{{Addr: vip4, Bits: 33}} }, "vip: Config.Addrs[0].Bits 33 out of range 0-32"},
		{"no manager", func(c *vip.Config) { c.Manager = nil }, "vip: Config.Manager is nil"},
		{"advert", func(c *vip.Config) { c.AdvertInterval = -time.Second }, "vip: Config.AdvertInterval -1s out of range"},
		{"reconcile", func(c *vip.Config) { c.ReconcileInterval = time.Millisecond }, "vip: Config.ReconcileInterval 1ms out of range"},
		{"timeout", func(c *vip.Config) { c.BeforeInstallTimeout = -1 }, "BeforeInstallTimeout"},
		{"interval", func(c *vip.Config) { c.Schedule.Interval = time.Millisecond }, "Schedule.Interval 1ms out of range"},
		{"repeats", func(c *vip.Config) { c.Schedule.Repeats = -2 }, "Schedule.Repeats -2 out of range -1-1000"},
		{"refresh", func(c *vip.Config) { c.Schedule.Refresh = time.Millisecond }, "Schedule.Refresh 1ms out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			f, err := vip.NewFollower(c)
			if err == nil {
				f.Close()
				t.Fatal("NewFollower accepted the config")
			}
			if !strings.HasPrefix(err.Error(), "vip: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestFollowerStartsNothingBeforeStart checks that NewFollower starts no
// goroutine and touches no address: a synctest bubble fails if a goroutine
// of its own is left when the test function returns, and this one returns
// without Close. A transition handed over before Start is applied at
// Start; Close without Start is fine and forbids a later Start.
func TestFollowerStartsNothingBeforeStart(t *testing.T) {
	t.Run("no goroutine, no call", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &viptest.Recorder{}
			mgr := viptest.NewAddrManager(rec, netip.PrefixFrom(vip4, 24))
			f, err := vip.NewFollower(vip.Config{Addrs: vip.Host(vip4), Manager: mgr})
			if err != nil {
				t.Fatal(err)
			}
			f.Handle(tr(carp.Master, "test"))
			synctest.Wait()
			if calls := rec.Strings(); len(calls) > 0 {
				t.Errorf("calls before Start: %q, want none", calls)
			}
		})
	})
	t.Run("a transition before Start is applied at Start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &viptest.Recorder{}
			f, err := vip.NewFollower(vip.Config{Addrs: vip.Host(vip4), Manager: viptest.NewAddrManager(rec)})
			if err != nil {
				t.Fatal(err)
			}
			f.Handle(tr(carp.Master, "test"))
			if err := f.Start(); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if err := f.Start(); err == nil {
				t.Error("second Start succeeded, want an error")
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"list", "add 192.0.2.10/32", "remove 192.0.2.10/32"}, rec.Strings()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("Close without Start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, err := vip.NewFollower(vip.Config{Addrs: vip.Host(vip4), Manager: viptest.NewAddrManager(nil)})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := f.Start(); err == nil {
				t.Error("Start after Close succeeded, want an error")
			}
		})
	})
}

package carp_test

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// observer records when adverts cross the segment, to find gaps.
type observer struct {
	port *carptest.Port
	mu   sync.Mutex
	at   []time.Time
	done chan struct{}
}

func observe(seg *carptest.Segment) *observer {
	o := &observer{port: seg.Join(carp.IPv4), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for {
			if _, err := o.port.Receive(); err != nil {
				return
			}
			o.mu.Lock()
			o.at = append(o.at, time.Now())
			o.mu.Unlock()
		}
	}()
	return o
}

// maxGap stops the observer and returns the longest time between two
// adverts seen after from.
func (o *observer) maxGap(from time.Time) time.Duration {
	o.port.Close()
	<-o.done
	var gap time.Duration
	last := from
	for _, t := range o.at {
		if t.Before(from) {
			continue
		}
		gap = max(gap, t.Sub(last))
		last = t
	}
	return gap
}

// TestReconfigureKeepsMaster changes each setting on a MASTER and its
// BACKUP a few seconds apart (the master first or the backup first): the
// master stays MASTER with no bow-out and no gap in its adverts, and the
// backup never takes over.
func TestReconfigureKeepsMaster(t *testing.T) {
	vipB := []netip.Addr{netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("10.0.0.253")}
	carpBase := carp.Config{VHID: 1, Addrs: vip4, Password: []byte("old")}
	vrrpBase := carp.Config{VHID: 1, Addrs: vip4, Protocol: carp.ProtocolVRRPv3, Preempt: true, Password: []byte{}}
	tests := []struct {
		name   string
		base   carp.Config
		master func(c *carp.Config) // the master's change (its skew/priority is set after)
		backup func(c *carp.Config)
	}{
		{"addresses", carpBase, func(c *carp.Config) { c.Addrs = vipB }, func(c *carp.Config) { c.Addrs = vipB }},
		{"password", carpBase, func(c *carp.Config) { c.Password = []byte("new") }, func(c *carp.Config) { c.Password = []byte("new") }},
		{"advskew", carpBase, func(c *carp.Config) { c.AdvSkew = 50 }, func(c *carp.Config) { c.AdvSkew = 150 }},
		{"advbase", carpBase, func(c *carp.Config) { c.AdvBase = 2 }, func(c *carp.Config) { c.AdvBase = 2 }},
		{"preempt", carpBase, func(c *carp.Config) { c.Preempt = true }, func(c *carp.Config) { c.Preempt = true }},
		{"demotion settings", carpBase, func(c *carp.Config) { c.DemoteInSkew = true; c.DeadRatio = 4 }, func(c *carp.Config) { c.DemoteInSkew = true }},
		{"vrrp addresses", vrrpBase, func(c *carp.Config) { c.Addrs = vipB }, func(c *carp.Config) { c.Addrs = vipB }},
		{"vrrp priority", vrrpBase, func(c *carp.Config) { c.Priority = 150 }, func(c *carp.Config) { c.Priority = 120 }},
		{"vrrp interval", vrrpBase, func(c *carp.Config) { c.AdvertInterval = 500 * time.Millisecond }, func(c *carp.Config) { c.AdvertInterval = 500 * time.Millisecond }},
	}
	for _, tt := range tests {
		for _, order := range []string{"master first", "backup first"} {
			t.Run(tt.name+"/"+order, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					seg := carptest.NewSegment(1)
					ca, cb := tt.base, tt.base
					ca.StartAsMaster = true
					if ca.Protocol == carp.ProtocolVRRPv3 {
						ca.Priority, cb.Priority = 200, 100
					} else {
						ca.AdvSkew, cb.AdvSkew = 0, 100
					}
					a := newNode(t, seg, "a", ca).start(t)
					b := newNode(t, seg, "b", cb).start(t)
					sleep(10 * time.Second)
					wantState(t, a, carp.Master)
					wantState(t, b, carp.Backup)
					obs := observe(seg)
					oldInt := a.g.AdvertInterval()

					na, nb := ca, cb
					tt.master(&na)
					tt.backup(&nb)
					if na.Protocol == carp.ProtocolVRRPv3 && na.Priority <= nb.Priority {
						t.Fatal("test case would hand over")
					}
					first, second, c1, c2 := a, b, na, nb
					if order == "backup first" {
						first, second, c1, c2 = b, a, nb, na
					}
					start := time.Now()
					if err := first.g.Reconfigure(c1); err != nil {
						t.Fatal(err)
					}
					sleep(5 * time.Second) // longer than the master-down interval
					if err := second.g.Reconfigure(c2); err != nil {
						t.Fatal(err)
					}
					sleep(time.Minute) // past every rollover window
					newInt := a.g.AdvertInterval()
					if gap, limit := obs.maxGap(start), max(oldInt, newInt); gap > limit {
						t.Errorf("largest gap between adverts %v, want at most %v", gap, limit)
					}
					wantState(t, a, carp.Master)
					wantState(t, b, carp.Backup)
					if got := len(a.transitions()); got != 1 {
						t.Errorf("a: transitions %+v, want only the start", a.steps())
					}
					if got := len(b.transitions()); got != 1 {
						t.Errorf("b: transitions %+v, want only the start", b.steps())
					}
					if s := b.g.Stats(); s.Badauth != 0 {
						t.Errorf("b: %d adverts failed authentication", s.Badauth)
					}
				})
			})
		}
	}
}

// TestReconfigurePasswordTooLate shows the limit of the rollover: a backup
// reconfigured more than a window after its master no longer hears it
// and takes over.
func TestReconfigurePasswordTooLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		ca := carp.Config{VHID: 1, Addrs: vip4, Password: []byte("old"), StartAsMaster: true}
		cb := ca
		cb.StartAsMaster, cb.AdvSkew = false, 100
		a := newNode(t, seg, "a", ca).start(t)
		b := newNode(t, seg, "b", cb).start(t)
		sleep(5 * time.Second)
		ca.Password = []byte("new")
		if err := a.g.Reconfigure(ca); err != nil {
			t.Fatal(err)
		}
		sleep(carp.KeyRollover - time.Second)
		wantState(t, b, carp.Backup)
		sleep(5 * time.Second)
		wantState(t, b, carp.Master)
	})
}

// TestReconfigureHandsOver raises the master's advskew above its
// backup's, which preempts: the backup is master at once, not after a
// master-down interval.
func TestReconfigureHandsOver(t *testing.T) {
	for _, proto := range []carp.Protocol{carp.ProtocolCARP, carp.ProtocolVRRPv3} {
		t.Run(proto.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				seg := carptest.NewSegment(1)
				ca := carp.Config{VHID: 1, Addrs: vip4, StartAsMaster: true, Preempt: true, Protocol: proto}
				cb := ca
				cb.StartAsMaster = false
				if proto == carp.ProtocolCARP {
					ca.Password, cb.Password = []byte("pw"), []byte("pw")
					cb.AdvSkew = 100
				} else {
					ca.Password, cb.Password = []byte{}, []byte{} // newNode sets one when nil
					ca.Priority, cb.Priority = 200, 100
				}
				a := newNode(t, seg, "a", ca).start(t)
				b := newNode(t, seg, "b", cb).start(t)
				sleep(5 * time.Second)
				wantState(t, a, carp.Master)
				wantState(t, b, carp.Backup)
				if proto == carp.ProtocolCARP {
					ca.AdvSkew = 200
				} else {
					ca.Priority = 50
				}
				start := time.Now()
				if err := a.g.Reconfigure(ca); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				took := b.last().At.Sub(start)
				wantState(t, b, carp.Master)
				wantState(t, a, carp.Backup)
				if b.last().Reason != carp.ReasonPreempt {
					t.Errorf("b: %+v, want a preemption", b.last())
				}
				if took != 0 {
					t.Errorf("handover took %v in the bubble's clock, want 0 (no timer)", took)
				}
			})
		})
	}
}

// TestReconfigureRefused checks that a field fixed at NewGroup is refused,
// named, and that an invalid value is refused as by NewGroup.
func TestReconfigureRefused(t *testing.T) {
	seg := carptest.NewSegment(1)
	base := carp.Config{VHID: 1, Addrs: vip4, Password: []byte("pw")}
	n := newNode(t, seg, "a", base)
	tests := []struct {
		name string
		mod  func(c *carp.Config)
		want string
	}{
		{"vhid", func(c *carp.Config) { c.VHID = 2 }, "carp: Config.VHID 2 differs from 1, fixed at NewGroup"},
		{"protocol", func(c *carp.Config) { c.Protocol = carp.ProtocolVRRPv3; c.Password = nil }, "carp: Config.Protocol vrrp3 differs from carp, fixed at NewGroup"},
		{"transport", func(c *carp.Config) { c.Transport = seg.Join(carp.IPv4) }, "carp: Config.Transport *carptest.Port differs from the group's, fixed at NewGroup"},
		{"holddown", func(c *carp.Config) { c.HoldDown = time.Second }, "carp: Config.HoldDown 1s differs from 0s, fixed at NewGroup"},
		{"counter mode", func(c *carp.Config) { c.CounterMode = carp.CounterCookie }, "carp: Config.CounterMode cookie differs from increment, fixed at NewGroup"},
		{"new family", func(c *carp.Config) { c.Addrs = []netip.Addr{netip.MustParseAddr("2001:db8::1")} }, "carp: Config.Addrs: 2001:db8::1 needs ipv6"},
		{"invalid", func(c *carp.Config) { c.AdvSkew = 255 }, "carp: Config.AdvSkew 255 out of range 0-254"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			err := n.g.Reconfigure(c)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Reconfigure: %v, want %q", err, tt.want)
			}
		})
	}
	if err := n.g.Reconfigure(base); err != nil {
		t.Errorf("Reconfigure with the same config: %v", err)
	}
	n.g.Close()
	if err := n.g.Reconfigure(base); err != carp.ErrClosed {
		t.Errorf("Reconfigure after Close: %v, want ErrClosed", err)
	}
}

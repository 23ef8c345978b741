package carp

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// idleTransport is a Transport that sends nowhere and receives nothing
// until closed: the rule's unit tests drive the groups' states by hand.
type idleTransport struct{ closed chan struct{} }

func (t *idleTransport) Families() []Family        { return []Family{IPv4} }
func (t *idleTransport) Send(Family, []byte) error { return nil }
func (t *idleTransport) Receive() (Packet, error)  { <-t.closed; return Packet{}, net.ErrClosed }
func (t *idleTransport) Close() error              { close(t.closed); return nil }
func newIdleTransport() *idleTransport             { return &idleTransport{closed: make(chan struct{})} }
func (g *Group) sources() map[string]int           { g.mu.Lock(); defer g.mu.Unlock(); return clone(g.demote) }
func clone(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func newIdleGroup(t *testing.T, vhid uint8) *Group {
	t.Helper()
	g, err := NewGroup(Config{VHID: vhid, Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, vhid})},
		Transport: newIdleTransport()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// followStep is one input of a rule scenario and what every member's
// demotion sources must be afterwards.
type followStep struct {
	wait     time.Duration // advance the clock first
	vhid     uint8
	from, to State
	link     *bool // a link report instead of a transition
	want     map[string]int
	label    string
}

func linkReport(b bool) *bool { return &b }

func TestFollowGroupRule(t *testing.T) {
	const (
		I = Init
		B = Backup
		M = Master
	)
	none := map[string]int{}
	follow := map[string]int{DemoteFollow: 1}
	hold := 10 * time.Second
	tests := []struct {
		name  string
		steps []followStep
	}{
		{"start and failover never demote", []followStep{
			{vhid: 1, from: I, to: B, want: none},
			{vhid: 2, from: I, to: B, want: none},
			{vhid: 1, from: B, to: M, want: none},
			{vhid: 2, from: B, to: M, want: none},
		}},
		{"link down demotes every group until every link is up", []followStep{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, link: linkReport(false), want: map[string]int{DemoteFollowLink: 1}},
			{vhid: 1, from: M, to: I, want: map[string]int{DemoteFollowLink: 1}, label: "LAN INIT: not a follow event"},
			{vhid: 2, from: M, to: B, want: map[string]int{DemoteFollowLink: 1}, label: "WAN handed over: no MASTER left, not a follow event"},
			{vhid: 2, link: linkReport(false), want: map[string]int{DemoteFollowLink: 1}},
			{vhid: 1, link: linkReport(true), want: map[string]int{DemoteFollowLink: 1}, label: "WAN still down"},
			{vhid: 2, link: linkReport(true), want: none},
		}},
		{"lost mastership: the other follows, held after the hand-over", []followStep{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{wait: time.Minute, want: follow, label: "WAN still MASTER: kept"},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: hold - time.Second, want: follow, label: "within the hold"},
			{wait: 2 * time.Second, want: none, label: "hold over"},
		}},
		{"hand-over then the peer dies: cleared when every group is MASTER", []followStep{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: time.Second, vhid: 1, from: B, to: M, want: follow},
			{wait: hold, want: follow, label: "a group is MASTER: the hold timer is off"},
			{vhid: 2, from: B, to: M, want: none},
		}},
		{"the returning preferred node never demotes", []followStep{
			{vhid: 1, from: I, to: B, want: none},
			{vhid: 2, from: I, to: B, want: none},
			{vhid: 1, from: B, to: M, want: none, label: "LAN preempts first"},
			{wait: 1400 * time.Millisecond, vhid: 2, from: B, to: M, want: none},
		}},
		{"repeats double the hold up to MaxHold", []followStep{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: hold + time.Second, want: none, label: "first hold 10s"},
			{vhid: 1, from: B, to: M, want: none},
			{vhid: 2, from: B, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: 2*hold - time.Second, want: follow, label: "second hold 20s"},
			{wait: 2 * time.Second, want: none},
			{vhid: 1, from: B, to: M, want: none},
			{vhid: 2, from: B, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: 30*time.Second - time.Second, want: follow, label: "third hold capped at MaxHold 30s"},
			{wait: 2 * time.Second, want: none},
		}},
		{"a repeat after MaxHold starts again from Hold", []followStep{
			{vhid: 1, from: I, to: M, want: none},
			{vhid: 2, from: I, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: hold + time.Second, want: none},
			{wait: time.Minute, vhid: 1, from: B, to: M, want: none},
			{vhid: 2, from: B, to: M, want: none},
			{vhid: 1, from: M, to: B, want: follow},
			{vhid: 2, from: M, to: B, want: follow},
			{wait: hold + time.Second, want: none, label: "hold 10s again"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, err := NewFollowGroup(&FollowConfig{Hold: hold, MaxHold: 30 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				gs := map[uint8]*Group{1: newIdleGroup(t, 1), 2: newIdleGroup(t, 2)}
				for _, v := range []uint8{1, 2} {
					if err := f.Add(gs[v]); err != nil {
						t.Fatal(err)
					}
				}
				for i, s := range tt.steps {
					if s.wait > 0 {
						time.Sleep(s.wait)
						synctest.Wait()
					}
					switch {
					case s.link != nil:
						gs[s.vhid].SetLinkState(*s.link)
					case s.vhid != 0:
						f.transition(gs[s.vhid], s.from, s.to)
					}
					for v, g := range gs {
						got := g.sources()
						delete(got, DemoteLink) // the group's own
						if diff := cmp.Diff(s.want, got); diff != "" {
							t.Errorf("step %d %s: vhid %d demotion (-want +got):\n%s", i, s.label, v, diff)
						}
					}
				}
			})
		})
	}
}

// TestFollowGroupDemotionFanout checks that SetDemotion reaches every
// member, including members added after it was set (a sync engine starts
// before the groups exist), and that the rule's raised sources reach late
// members too.
func TestFollowGroupDemotionFanout(t *testing.T) {
	f, err := NewFollowGroup(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	early, late := newIdleGroup(t, 1), newIdleGroup(t, 2)
	if err := f.Add(early); err != nil {
		t.Fatal(err)
	}
	f.SetDemotion("pfsync-bulk", 32)
	f.SetDemotion("admin", 1)
	early.SetLinkState(false)
	if err := f.Add(late); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pfsync-bulk": 32, "admin": 1, DemoteFollowLink: 1}
	for name, g := range map[string]*Group{"early": early, "late": late} {
		got := g.sources()
		delete(got, DemoteLink)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s group (-want +got):\n%s", name, diff)
		}
	}
	f.SetDemotion("pfsync-bulk", 0)
	early.SetLinkState(true)
	want = map[string]int{"admin": 1}
	for name, g := range map[string]*Group{"early": early, "late": late} {
		if diff := cmp.Diff(want, g.sources()); diff != "" {
			t.Errorf("%s group after clearing (-want +got):\n%s", name, diff)
		}
	}
	if got := late.Demotion(); got != 1 {
		t.Errorf("late.Demotion() = %d, want 1", got)
	}
}

// TestFollowGroupLateLinkDown checks that a member whose link was reported
// down before Add counts as down.
func TestFollowGroupLateLinkDown(t *testing.T) {
	f, _ := NewFollowGroup(nil)
	defer f.Close()
	a, b := newIdleGroup(t, 1), newIdleGroup(t, 2)
	a.SetLinkState(false)
	for _, g := range []*Group{a, b} {
		if err := f.Add(g); err != nil {
			t.Fatal(err)
		}
	}
	if !f.Status().LinkDown || b.sources()[DemoteFollowLink] != 1 {
		t.Errorf("status %+v, b's sources %v: want the link rule raised", f.Status(), b.sources())
	}
}

func TestFollowGroupAddErrors(t *testing.T) {
	f, _ := NewFollowGroup(nil)
	other, _ := NewFollowGroup(nil)
	started := newIdleGroup(t, 1)
	if err := started.Start(); err != nil {
		t.Fatal(err)
	}
	member := newIdleGroup(t, 2)
	if err := other.Add(member); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    *FollowGroup
		g    *Group
		want string
	}{
		{"started", f, started, "carp: FollowGroup.Add: group vhid 1 already started"},
		{"member elsewhere", f, member, "carp: FollowGroup.Add: group vhid 2 already belongs to a follow group"},
		{"twice", other, member, "carp: FollowGroup.Add: group vhid 2 already belongs to a follow group"},
	} {
		if err := tc.f.Add(tc.g); err == nil || err.Error() != tc.want {
			t.Errorf("%s: Add error %v, want %q", tc.name, err, tc.want)
		}
	}
	f.Close()
	f.Close() // idempotent
	if err := f.Add(newIdleGroup(t, 3)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Add after Close: %v, want an error", err)
	}
}

func TestNewFollowGroupErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  FollowConfig
		want string
	}{
		{FollowConfig{Hold: -time.Second}, "carp: FollowConfig.Hold -1s out of range (0 or more)"},
		{FollowConfig{Hold: time.Minute, MaxHold: time.Second}, "carp: FollowConfig.MaxHold 1s out of range (0 or at least Hold, 1m0s)"},
	} {
		if _, err := NewFollowGroup(&tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	f, err := NewFollowGroup(&FollowConfig{Hold: time.Hour})
	if err != nil {
		t.Fatalf("Hold beyond the default MaxHold: %v", err)
	}
	if f.maxHold != time.Hour {
		t.Errorf("MaxHold defaulted to %v, want the Hold (1h)", f.maxHold)
	}
}

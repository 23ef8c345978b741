package carp_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/internal/lab/logcheck"
)

// A pair of nodes, each with a LAN group (vhid 1) and a WAN group (vhid 2)
// kept together by a FollowGroup, on two simulated segments. Node a is
// preferred (advskew 0, b has 100); both preempt.

const (
	lan = 0
	wan = 1
)

var pairVIPs = [2][]netip.Addr{
	{netip.MustParseAddr("192.0.2.254")},
	{netip.MustParseAddr("198.51.100.254")},
}

// pairNode is one node of the pair.
type pairNode struct {
	name   string
	follow *carp.FollowGroup
	groups [2]*carp.Group
	ports  [2]*carptest.Port
}

// pair is the two nodes and every transition they made, in order.
type pair struct {
	a, b *pairNode
	segs [2]*carptest.Segment

	mu  sync.Mutex
	log []pairEvent
}

type pairEvent struct {
	at       time.Time
	node     string
	vhid     uint8
	from, to carp.State
	reason   carp.Reason
}

func (e pairEvent) String() string {
	return fmt.Sprintf("%s vhid %d %v->%v (%s)", e.node, e.vhid, e.from, e.to, e.reason)
}

// newPair builds and starts both nodes; call it inside a synctest bubble.
func newPair(t *testing.T, hold, maxHold time.Duration) *pair {
	t.Helper()
	return newPairSkew(t, hold, maxHold, [2]uint8{0, 0}, [2]uint8{100, 100})
}

// newPairSkew is newPair with each node's advskew per group (LAN, WAN).
func newPairSkew(t *testing.T, hold, maxHold time.Duration, skewA, skewB [2]uint8) *pair {
	t.Helper()
	return newPairLog(t, hold, maxHold, skewA, skewB, nil)
}

// newPairLog is newPairSkew with a logger for every group and FollowGroup,
// passed as an embedder would: without the attributes carp adds itself.
func newPairLog(t *testing.T, hold, maxHold time.Duration, skewA, skewB [2]uint8, log *slog.Logger) *pair {
	t.Helper()
	p := &pair{segs: [2]*carptest.Segment{carptest.NewSegment(1), carptest.NewSegment(2)}}
	mk := func(name string, skew [2]uint8) *pairNode {
		n := &pairNode{name: name}
		f, err := carp.NewFollowGroup(&carp.FollowConfig{Hold: hold, MaxHold: maxHold, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		n.follow = f
		for i := range 2 {
			n.ports[i] = p.segs[i].Join(carp.IPv4)
			g, err := carp.NewGroup(carp.Config{
				VHID: uint8(i + 1), AdvSkew: skew[i], Preempt: true, Addrs: pairVIPs[i],
				Password: []byte("secret"), Transport: n.ports[i], Logger: log,
				OnTransition: func(tr carp.Transition) {
					p.mu.Lock()
					defer p.mu.Unlock()
					p.log = append(p.log, pairEvent{tr.At, name, tr.VHID, tr.From, tr.To, tr.Reason})
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Add(g); err != nil {
				t.Fatal(err)
			}
			n.groups[i] = g
		}
		return n
	}
	p.a, p.b = mk("a", skewA), mk("b", skewB)
	t.Cleanup(func() {
		for _, n := range []*pairNode{p.a, p.b} {
			for _, g := range n.groups {
				g.Close()
			}
			n.follow.Close()
		}
	})
	for _, n := range []*pairNode{p.a, p.b} {
		for _, g := range n.groups {
			if err := g.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p
}

// run lets simulated time pass.
func (p *pair) run(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// events returns the transitions since start.
func (p *pair) events(since time.Time) []pairEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []pairEvent
	for _, e := range p.log {
		if !e.at.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// states returns the nodes' states as "a:LAN/WAN b:LAN/WAN".
func (p *pair) states() string {
	s := func(n *pairNode) string { return n.groups[lan].State().String() + "/" + n.groups[wan].State().String() }
	return "a:" + s(p.a) + " b:" + s(p.b)
}

// setLink takes a node's link of one group down or up: the port goes
// silent (no adverts in or out), and the group hears of it as from a
// link watcher.
func (n *pairNode) setLink(i int, up bool) {
	if up {
		n.ports[i].Revive()
	} else {
		n.ports[i].Crash()
	}
	n.groups[i].SetLinkState(up)
}

// wantStable checks that no transition happens for d.
func (p *pair) wantStable(t *testing.T, what string, d time.Duration) {
	t.Helper()
	from := time.Now()
	p.run(d)
	if ev := p.events(from); len(ev) > 0 {
		t.Errorf("%s: %d transitions in %v, want none (flapping): %v", what, len(ev), d, ev)
	}
}

func (p *pair) wantStates(t *testing.T, what, want string) {
	t.Helper()
	if got := p.states(); got != want {
		t.Errorf("%s: states %s, want %s; transitions: %v", what, got, want, p.events(time.Time{}))
	}
}

// TestFollowGroupLinkLoss kills the LAN link of the master: both groups
// move to the other node together and stay there without flapping; when
// the link returns, both come back together (preemption) and stay.
func TestFollowGroupLinkLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, 10*time.Second, time.Minute)
		p.run(10 * time.Second)
		p.wantStates(t, "started", "a:MASTER/MASTER b:BACKUP/BACKUP")

		cut := time.Now()
		p.a.setLink(lan, false)
		md := p.b.groups[lan].MasterDownInterval()
		p.run(md + time.Second)
		p.wantStates(t, "a's LAN link down", "a:INIT/BACKUP b:MASTER/MASTER")
		for _, e := range p.events(cut) {
			if e.node == "b" && e.to == carp.Master && e.at.Sub(cut) > md {
				t.Errorf("b took vhid %d %v after the link loss, want within the master-down interval %v", e.vhid, e.at.Sub(cut), md)
			}
		}
		p.wantStable(t, "while the link is down", 3*time.Minute)
		if st := p.a.follow.Status(); !st.LinkDown || st.Following {
			t.Errorf("a's follow status %+v, want the link rule only", st)
		}

		p.a.setLink(lan, true)
		p.run(30 * time.Second) // b's follow hold (10 s) included
		p.wantStates(t, "link back", "a:MASTER/MASTER b:BACKUP/BACKUP")
		p.wantStable(t, "after the return", 3*time.Minute)
		for _, n := range []*pairNode{p.a, p.b} {
			for _, g := range n.groups {
				if d := g.Demotion(); d != 0 {
					t.Errorf("%s vhid %d: demotion %d at the end, want 0", n.name, g.AdvertInterval(), d)
				}
			}
		}
	})
}

// TestFollowGroupStepDown makes the master give up one group by hand
// (carp's StepDown, like a lost election): the group bows out, so the peer
// takes it at once, the other follows at once, and after the hold the
// preferred node takes both back.
func TestFollowGroupStepDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, 10*time.Second, time.Minute)
		p.run(10 * time.Second)
		p.wantStates(t, "started", "a:MASTER/MASTER b:BACKUP/BACKUP")
		p.a.groups[wan].StepDown(time.Second)
		p.run(10 * time.Millisecond)
		p.wantStates(t, "a stepped WAN down", "a:BACKUP/BACKUP b:MASTER/MASTER")
		if st := p.a.follow.Status(); !st.Following || st.Events != 1 {
			t.Errorf("a's follow status %+v, want following after 1 event", st)
		}
		p.run(4 * time.Second)
		p.wantStates(t, "within the hold", "a:BACKUP/BACKUP b:MASTER/MASTER")
		p.run(10 * time.Second)
		p.wantStates(t, "after the hold", "a:MASTER/MASTER b:BACKUP/BACKUP")
		p.wantStable(t, "after the return", 3*time.Minute)
	})
}

// TestFollowGroupBothDemoted takes a link down on both nodes, so both
// raise the link rule at once: the demotions cancel out, every group whose
// link is up somewhere keeps exactly one master (no deadlock), nothing
// flaps, and when the links return one node holds both groups.
func TestFollowGroupBothDemoted(t *testing.T) {
	tests := []struct {
		name         string
		aDown, bDown int
		want         string
	}{
		{"both LAN links down", lan, lan, "a:INIT/MASTER b:INIT/BACKUP"},
		{"a's LAN and b's WAN down", lan, wan, "a:INIT/MASTER b:MASTER/INIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, 10*time.Second, time.Minute)
				p.run(10 * time.Second)
				p.wantStates(t, "started", "a:MASTER/MASTER b:BACKUP/BACKUP")
				p.a.setLink(tt.aDown, false)
				p.b.setLink(tt.bDown, false)
				p.run(20 * time.Second)
				p.wantStates(t, "links down", tt.want)
				for _, n := range []*pairNode{p.a, p.b} {
					if !n.follow.Status().LinkDown {
						t.Errorf("%s: link rule not raised", n.name)
					}
				}
				p.wantStable(t, "while the links are down", 3*time.Minute)
				p.a.setLink(tt.aDown, true)
				p.b.setLink(tt.bDown, true)
				p.run(time.Minute)
				p.wantStates(t, "links back", "a:MASTER/MASTER b:BACKUP/BACKUP")
				p.wantStable(t, "after the return", 3*time.Minute)
			})
		})
	}
}

// TestLogKeysOnce runs the groups and their FollowGroup through
// elections, a link loss, a hand-over, send errors and dropped packets,
// and checks that no log record carries a key twice: carp adds vhid to a
// Group's lines itself, and nothing else may add it again.
func TestLogKeysOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := logcheck.New()
		p := newPairLog(t, 10*time.Second, time.Minute, [2]uint8{0, 0}, [2]uint8{100, 100}, h.Logger())
		p.run(10 * time.Second)
		p.a.setLink(lan, false)
		p.run(10 * time.Second)
		p.a.setLink(lan, true)
		p.run(30 * time.Second)
		p.a.groups[wan].StepDown(time.Second)
		p.run(30 * time.Second)
		p.a.ports[wan].SetSendError(carptest.ErrSend)
		p.run(30 * time.Second)
		p.a.ports[wan].SetSendError(nil)
		p.b.ports[lan].Inject(carp.Packet{Family: carp.IPv4, Payload: []byte{1, 2, 3}, TTL: 255, IfIndex: 0})
		p.b.ports[lan].Inject(carp.Packet{Family: carp.IPv4, Payload: make([]byte, carp.AdvertisementLen), TTL: 1})
		p.run(30 * time.Second)
		if h.Records() < 20 {
			t.Fatalf("only %d records logged; the scenario did not run", h.Records())
		}
		for _, d := range h.Duplicates() {
			t.Error(d)
		}
	})
}

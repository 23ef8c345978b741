package track_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/track"
)

// nsWait bounds every wait for a state change; it only catches hangs.
const nsWait = 20 * time.Second

// nsGroup is a carp.Group on a RawTransport in a namespace, with its
// transitions on a channel.
type nsGroup struct {
	name string
	g    *carp.Group
	tr   chan carp.Transition
}

// await reads transitions until one goes to state.
func (n *nsGroup) await(t *testing.T, state carp.State) {
	t.Helper()
	timeout := time.After(nsWait)
	for {
		select {
		case tr := <-n.tr:
			if tr.To == state {
				return
			}
		case <-timeout:
			t.Fatalf("%s: not %v within %v", n.name, state, nsWait)
		}
	}
}

// startNode starts groups vhid 1 and 2 (one address each) with advskew on
// eth0 of ns, all members of a FollowGroup, which it returns.
func startNode(t *testing.T, ns *netns.NS, advskew uint8) (*carp.FollowGroup, []*nsGroup) {
	t.Helper()
	fg, err := carp.NewFollowGroup(&carp.FollowConfig{Hold: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var groups []*nsGroup
	for vhid := uint8(1); vhid <= 2; vhid++ {
		var (
			tr    *carp.RawTransport
			index int
		)
		if err := ns.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			index = ifi.Index
			tr, err = carp.NewRawTransport("eth0", nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		n := &nsGroup{name: fmt.Sprintf("%s/vhid %d", ns.Short, vhid), tr: make(chan carp.Transition, 64)}
		n.g, err = carp.NewGroup(carp.Config{
			VHID:        vhid,
			Addrs:       []netip.Addr{netip.AddrFrom4([4]byte{10, 78, 0, 250 + vhid})},
			Password:    []byte("secret"),
			Transport:   tr,
			IfIndex:     index,
			AdvBase:     0,
			ZeroAdvBase: true,
			Profile:     carp.ProfileOpenBSD,
			AdvSkew:     advskew,
			Preempt:     true,
			Logger:      slog.New(slog.DiscardHandler),
			OnTransition: func(tr carp.Transition) {
				select {
				case n.tr <- tr:
				default: // the test reads them all; a full channel is a runaway
				}
			},
		})
		if err != nil {
			tr.Close()
			t.Fatal(err)
		}
		if err := fg.Add(n.g); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.g.Close() })
		groups = append(groups, n)
	}
	t.Cleanup(func() { fg.Close() })
	for _, n := range groups {
		if err := n.g.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return fg, groups
}

// TestTCPCheckFailover: two nodes hold two groups; the master tracks a TCP
// service. When the service stops accepting, the master's groups go to the
// backup; when it accepts again, the master takes them back (Preempt).
// A tracker closed while failed gives them back too.
func TestTCPCheckFailover(t *testing.T) {
	tp := netns.New(t, "track")
	br := tp.Bridge("lan")
	a, b := tp.Node("a"), tp.Node("b")
	tp.Attach(a, br, "eth0", netip.MustParsePrefix("10.78.0.1/24"))
	tp.Attach(b, br, "eth0", netip.MustParsePrefix("10.78.0.2/24"))

	// The tracked service: a listener the test opens and closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	defer func() { ln.Close() }()

	fa, ga := startNode(t, a, 100)
	_, gb := startNode(t, b, 150)
	for _, g := range ga {
		g.await(t, carp.Master)
	}
	for _, g := range gb {
		g.await(t, carp.Backup)
	}

	tr, err := track.New(&track.TCP{Address: addr}, fa, &track.Config{
		Name: "service", Interval: 50 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	ln.Close() // the service fails
	for i := range ga {
		gb[i].await(t, carp.Master)
		ga[i].await(t, carp.Backup)
	}
	if got := ga[0].g.Demotion(); got < track.FaultDemotion {
		t.Errorf("a demoted %d, want %d", got, track.FaultDemotion)
	}

	ln, err = net.Listen("tcp", addr) // the service is back
	if err != nil {
		t.Fatal(err)
	}
	for i := range ga {
		ga[i].await(t, carp.Master)
		gb[i].await(t, carp.Backup)
	}
	if got := tr.Status(); !got.Healthy || got.Demotion != 0 {
		t.Errorf("tracker status %+v, want healthy", got)
	}

	// The service fails again and the tracker is removed while failed:
	// its demotion goes with it and a takes the groups back.
	ln.Close()
	for i := range ga {
		ga[i].await(t, carp.Backup)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range ga {
		ga[i].await(t, carp.Master)
		gb[i].await(t, carp.Backup)
	}
}

// chanDemoter passes each SetDemotion to a channel.
type chanDemoter chan int

func (c chanDemoter) SetDemotion(_ string, n int) { c <- n }

// awaitDemotion reads demotions until want.
func (c chanDemoter) await(t *testing.T, want int) {
	t.Helper()
	timeout := time.After(nsWait)
	for {
		select {
		case n := <-c:
			if n == want {
				return
			}
		case <-timeout:
			t.Fatalf("no demotion %d within %v", want, nsWait)
		}
	}
}

// TestInterfaceTracker: an interface tracker demotes when the interface is
// set down, and when it loses carrier (the switch port goes down), and
// clears the demotion when the link returns.
func TestInterfaceTracker(t *testing.T) {
	tp := netns.New(t, "track")
	br := tp.Bridge("lan")
	a := tp.Node("a")
	port := tp.Attach(a, br, "eth0", netip.MustParsePrefix("10.78.0.1/24"))

	iface := &track.Interface{Name: "eth0"}
	// The lookup runs in a's namespace, as a tracker started there would.
	check := track.CheckFunc(func(ctx context.Context) error {
		return a.Do(func() error { return iface.Check(ctx) })
	})
	d := make(chanDemoter, 1024)
	tr, err := track.New(check, d, &track.Config{Name: "eth0", Interval: 10 * time.Millisecond, Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	d.await(t, 0)

	a.SetLink("eth0", false)
	d.await(t, 1)
	a.SetLink("eth0", true)
	d.await(t, 0)

	tp.Switch().SetLink(port, false)
	d.await(t, 1)
	if err := tr.Status().LastErr; err == nil || !strings.Contains(err.Error(), "no carrier") {
		t.Errorf("LastErr = %v, want no carrier", err)
	}
	tp.Switch().SetLink(port, true)
	d.await(t, 0)
}

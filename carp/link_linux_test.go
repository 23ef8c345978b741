package carp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// linkOpen starts a LinkWatcher on ifname inside ns whose reports go to
// the returned channel. The first report (the initial state) is already
// in the channel when linkOpen returns.
func linkOpen(t *testing.T, ns *netns.NS, ifname string) (*carp.LinkWatcher, chan bool) {
	t.Helper()
	ch := make(chan bool, 16)
	var w *carp.LinkWatcher
	err := ns.Do(func() error {
		var err error
		w, err = carp.NewLinkWatcher(ifname, func(up bool) { ch <- up }, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return w, ch
}

func linkExpect(t *testing.T, ch <-chan bool, want bool) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("link report up=%v, want up=%v", got, want)
		}
	case <-time.After(rawWait):
		t.Fatalf("no link report up=%v within %v", want, rawWait)
	}
}

// TestLinkWatcher: the initial state is reported, then admin down/up on
// the node's side and carrier loss/return (the switch side of the veth
// going down) as they happen, each once.
func TestLinkWatcher(t *testing.T) {
	tp := netns.New(t, "carp")
	br := tp.Bridge("lan")
	a := tp.Node("a")
	port := tp.Attach(a, br, "eth0", netip.MustParsePrefix("10.77.0.1/24"))

	w, ch := linkOpen(t, a, "eth0")
	linkExpect(t, ch, true)
	if !w.Up() {
		t.Error("Up() = false after an up report")
	}

	a.SetLink("eth0", false) // admin down
	linkExpect(t, ch, false)
	a.SetLink("eth0", true)
	linkExpect(t, ch, true)

	tp.Switch().SetLink(port, false) // carrier lost: the peer end is down
	linkExpect(t, ch, false)
	tp.Switch().SetLink(port, true)
	linkExpect(t, ch, true)

	// An address change produces link-unrelated notifications but no report.
	a.AddAddr("eth0", netip.MustParsePrefix("10.77.0.9/24"))
	a.SetLink("eth0", false)
	linkExpect(t, ch, false) // the next report is the down, nothing before it

	// Close stops reports.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a.SetLink("eth0", true)
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case up := <-ch:
		t.Fatalf("report up=%v after Close", up)
	default:
	}
}

// TestLinkWatcherInitialDown: a watcher started on a down link reports
// down first.
func TestLinkWatcherInitialDown(t *testing.T) {
	tp := netns.New(t, "carp")
	br := tp.Bridge("lan")
	a := tp.Node("a")
	tp.Attach(a, br, "eth0")
	a.SetLink("eth0", false)
	_, ch := linkOpen(t, a, "eth0")
	linkExpect(t, ch, false)
	a.SetLink("eth0", true)
	linkExpect(t, ch, true)
}

// TestLinkWatcherDeleted: deleting the interface is reported as down.
func TestLinkWatcherDeleted(t *testing.T) {
	tp := netns.New(t, "carp")
	a := tp.Node("a")
	tp.Link(a, "eth0", nil, tp.Node("b"), "eth0", nil)
	_, ch := linkOpen(t, a, "eth0")
	linkExpect(t, ch, true)
	a.IP("link", "del", "eth0")
	linkExpect(t, ch, false)
}

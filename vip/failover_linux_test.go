//go:build linux

package vip_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/vip"
)

// The failover tests run the whole stack as an appliance would: in each of
// two namespaces a carp.Group on the real raw-socket transport drives a
// vip.Follower with the real NetlinkManager and PacketAnnouncer; a client
// namespace on the same bridge pings the VIPs. The master then crashes (its
// switch port goes down: it keeps its VIPs and its state, it just vanishes
// from the wire), and the test checks what the client sees.
//
// Nothing here asserts a duration: the loss bound is a packet count derived
// from the group's own master-down interval, and every wait is for an event
// (a transition, a netlink notification, an echo reply) with a deadline that
// only catches hangs.

const (
	foVHID = 42
	// foDeadline bounds every wait for an event. It catches hangs only.
	foDeadline = 15 * time.Second
	// foInterval is the client's ping interval per family.
	foInterval = 20 * time.Millisecond
)

var (
	foVIP4 = netip.MustParseAddr("198.51.100.10")
	foVIP6 = netip.MustParseAddr("2001:db8:f0::10")
	foAddr = map[string][2]netip.Prefix{
		"a": {netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:f0::1/64")},
		"b": {netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("2001:db8:f0::2/64")},
		"c": {netip.MustParsePrefix("198.51.100.100/24"), netip.MustParsePrefix("2001:db8:f0::100/64")},
	}
)

// foNode is one firewall: its namespace, its switch port, the interface the
// VIPs live on, and its Group and Follower.
type foNode struct {
	ns   *netns.NS
	port string           // switch-side port, cut to crash the node
	ifi  *net.Interface   // eth0, or the virtual-MAC link
	mac  net.HardwareAddr // the MAC the client must learn for the VIPs
	g    *carp.Group
	f    *vip.Follower

	mu     sync.Mutex
	states []carp.Transition
	moved  chan struct{} // receives after every transition
}

// foStartNode builds the stack of one firewall and starts it. skew 0 starts
// as MASTER, anything else as BACKUP. With vmac the VIPs live on a macvlan
// with CARP's virtual MAC; adverts always go out of eth0.
func foStartNode(t *testing.T, tp *netns.Topology, br, name string, skew uint8, vmac bool) *foNode {
	t.Helper()
	n := &foNode{ns: tp.Node(name), moved: make(chan struct{}, 1)}
	n.port = tp.Attach(n.ns, br, "eth0", foAddr[name][0], foAddr[name][1])

	var (
		vm      *vip.VirtualMAC
		mgr     *vip.NetlinkManager
		ann     *vip.PacketAnnouncer
		tr      *carp.RawTransport
		closers []func() error // what was created, in order
	)
	err := n.ns.Do(func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		n.ifi = eth0
		if vmac {
			if vm, err = vip.NewVirtualMAC(eth0, foVHID, nil); err != nil {
				return err
			}
			closers = append(closers, vm.Close)
			n.ifi = vm.Interface()
		}
		if mgr, err = vip.NewNetlinkManager(n.ifi, nil); err != nil {
			return err
		}
		closers = append(closers, mgr.Close)
		if ann, err = vip.NewPacketAnnouncer(n.ifi, nil); err != nil {
			return err
		}
		closers = append(closers, ann.Close)
		n.mac = ann.HardwareAddr()
		tr, err = carp.NewRawTransport("eth0", &carp.RawConfig{Src4: foAddr[name][0].Addr()})
		return err
	})
	// Cleanup runs in reverse order: Group, Follower, announcer, manager,
	// macvlan; all before the topology (registered earlier) is deleted.
	for _, c := range closers {
		t.Cleanup(func() {
			if err := c(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	if err != nil {
		if tr != nil {
			tr.Close()
		}
		t.Fatalf("%s: %v", name, err)
	}

	n.g, err = carp.NewGroup(carp.Config{
		VHID:          foVHID,
		AdvSkew:       skew,
		Password:      []byte("failover"),
		Addrs:         []netip.Addr{foVIP4, foVIP6},
		StartAsMaster: skew == 0,
		Transport:     tr,
		OnTransition: func(tr carp.Transition) {
			n.f.Handle(tr)
			n.mu.Lock()
			n.states = append(n.states, tr)
			n.mu.Unlock()
			select {
			case n.moved <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		tr.Close()
		t.Fatalf("%s: %v", name, err)
	}
	n.f, err = vip.NewFollower(vip.Config{
		VHID:           foVHID,
		Addrs:          vip.Host(foVIP4, foVIP6),
		Manager:        mgr,
		Announcer:      ann,
		AdvertInterval: n.g.AdvertInterval(),
	})
	if err == nil {
		err = n.f.Start()
	}
	if err != nil {
		n.g.Close()
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := n.f.Close(); err != nil {
			t.Errorf("%s: Follower.Close: %v", name, err)
		}
	})
	t.Cleanup(func() {
		if err := n.g.Close(); err != nil {
			t.Errorf("%s: Group.Close: %v", name, err)
		}
	})
	if err := n.g.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// waitState waits until the node's latest transition is to want and returns
// that transition.
func (n *foNode) waitState(t *testing.T, want carp.State) carp.Transition {
	t.Helper()
	deadline := time.After(foDeadline)
	for {
		n.mu.Lock()
		var last carp.Transition
		if len(n.states) > 0 {
			last = n.states[len(n.states)-1]
		}
		n.mu.Unlock()
		if last.To == want && len(n.states) > 0 {
			return last
		}
		select {
		case <-n.moved:
		case <-deadline:
			t.Fatalf("%s: no transition to %v; transitions: %v", n.ns.Short, want, n.transitions())
		}
	}
}

func (n *foNode) transitions() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var s []string
	for _, tr := range n.states {
		s = append(s, fmt.Sprintf("%v->%v (%s)", tr.From, tr.To, tr.Reason))
	}
	return s
}

// foNeighEvent is one neighbour notification of the client.
type foNeighEvent struct {
	addr netip.Addr
	mac  net.HardwareAddr
	at   time.Time
}

// foNeighWatch records every neighbour notification of a namespace for the
// VIPs, from subscription until the test ends.
type foNeighWatch struct {
	c    *rtnetlink.Conn
	done chan struct{}

	mu     sync.Mutex
	events []foNeighEvent
	update chan struct{}
}

func foWatchNeigh(t *testing.T, ns *netns.NS) *foNeighWatch {
	t.Helper()
	w := &foNeighWatch{done: make(chan struct{}), update: make(chan struct{}, 1)}
	if err := ns.Do(func() error {
		var err error
		w.c, err = rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_NEIGH})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		for {
			msgs, _, err := w.c.Receive()
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				nm, ok := m.(*rtnetlink.NeighMessage)
				if !ok || nm.Attributes == nil || len(nm.Attributes.LLAddress) == 0 {
					continue
				}
				a, _ := netip.AddrFromSlice(nm.Attributes.Address)
				if a = a.Unmap(); a != foVIP4 && a != foVIP6 {
					continue
				}
				w.mu.Lock()
				w.events = append(w.events, foNeighEvent{a, slices.Clone(nm.Attributes.LLAddress), time.Now()})
				w.mu.Unlock()
				select {
				case w.update <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		w.c.Close()
		<-w.done
	})
	return w
}

// waitFor waits for a notification, at or after since, that addr's entry
// has mac.
func (w *foNeighWatch) waitFor(t *testing.T, addr netip.Addr, mac net.HardwareAddr, since time.Time) time.Time {
	t.Helper()
	deadline := time.After(foDeadline)
	for {
		w.mu.Lock()
		for _, e := range w.events {
			if e.addr == addr && bytes.Equal(e.mac, mac) && !e.at.Before(since) {
				w.mu.Unlock()
				return e.at
			}
		}
		w.mu.Unlock()
		select {
		case <-w.update:
		case <-deadline:
			t.Fatalf("client: no neighbour notification %v -> %v", addr, mac)
		}
	}
}

// others returns the notifications for the VIPs with a MAC other than mac.
func (w *foNeighWatch) others(mac net.HardwareAddr) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []string
	for _, e := range w.events {
		if !bytes.Equal(e.mac, mac) {
			s = append(s, fmt.Sprintf("%v -> %v", e.addr, e.mac))
		}
	}
	return s
}

// foStartPinger pings dst from ns every foInterval until the test ends.
func foStartPinger(t *testing.T, ns *netns.NS, dst netip.Addr, id int) *netns.Pinger {
	t.Helper()
	p, err := netns.StartPinger(ns.Path(), dst, id, foInterval)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func TestFailoverCrash(t *testing.T) {
	for _, tc := range []struct {
		name string
		vmac bool
	}{
		{"InterfaceMAC", false},
		{"VirtualMAC", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testFailoverCrash(t, tc.vmac) })
	}
}

// testFailoverCrash: A is MASTER of a dual-stack group and the client pings
// both VIPs through A; A crashes (its switch port goes down; it keeps its
// VIPs and stays MASTER in its own view). B takes over after its master-down
// interval and announces; the client's neighbour entries follow B at once
// (they could not have expired: the client's neighbour timers are set to
// minutes), and the pings lose only what was sent while nobody answered.
//
// With the virtual MAC the client's entries never change: they keep
// 00:00:5e:00:01:<vhid> and only the bridge relearns the MAC on B's port.
func testFailoverCrash(t *testing.T, vmac bool) {
	netns.Require(t)
	tp := netns.New(t, "vfo")
	br := tp.Bridge("br0")
	client := tp.Node("c")
	tp.Attach(client, br, "eth0", foAddr["c"][0], foAddr["c"][1])
	// Keep the client's entries REACHABLE for minutes and never probe them:
	// only an announcement can move them during the test.
	client.SetSysctls(map[string]string{
		"net/ipv4/neigh/eth0/base_reachable_time_ms": "600000",
		"net/ipv4/neigh/eth0/delay_first_probe_time": "600",
		"net/ipv6/neigh/eth0/base_reachable_time_ms": "600000",
		"net/ipv6/neigh/eth0/delay_first_probe_time": "600",
	})

	a := foStartNode(t, tp, br, "a", 0, vmac)
	b := foStartNode(t, tp, br, "b", 100, vmac)
	a.waitState(t, carp.Master)
	b.waitState(t, carp.Backup)
	if vmac && !bytes.Equal(a.mac, vip.VirtualMACAddr(foVHID)) {
		t.Fatalf("A announces %v; want the virtual MAC", a.mac)
	}

	w := foWatchNeigh(t, client)
	start := time.Now()
	pid := os.Getpid() & 0x7fff
	pingers := map[netip.Addr]*netns.Pinger{
		foVIP4: foStartPinger(t, client, foVIP4, pid),
		foVIP6: foStartPinger(t, client, foVIP6, pid+1),
	}
	for v, p := range pingers {
		if err := p.WaitReplies(start, 10, foDeadline); err != nil {
			t.Fatal(err)
		}
		if got := neighMAC(t, client, v); got != a.mac.String() {
			t.Fatalf("client's entry for %v: %q; want A's %v", v, got, a.mac)
		}
	}

	// Crash A: no bow-out, A keeps its VIPs; it just disappears.
	crash := time.Now()
	tp.Switch().SetLink(a.port, false)
	answered := map[netip.Addr]int{}
	for v, p := range pingers {
		answered[v] = p.LastAnswered()
	}
	tb := b.waitState(t, carp.Master)
	t.Logf("B became MASTER %v after the crash (%s); master-down interval %v",
		tb.At.Sub(crash).Round(time.Millisecond), tb.Reason, b.g.MasterDownInterval())

	if !vmac {
		for v := range pingers {
			at := w.waitFor(t, v, b.mac, crash)
			t.Logf("client's entry for %v moved to B %v after B's promotion", v, at.Sub(tb.At).Round(time.Millisecond))
		}
	}
	for _, p := range pingers {
		if err := p.WaitReplies(tb.At, 20, foDeadline); err != nil {
			t.Fatal(err)
		}
	}

	maxLost := int(b.g.MasterDownInterval()/foInterval) + 2
	for v, p := range pingers {
		sent, lost := p.Finish(2 * time.Second)
		t.Logf("ping %v every %v: %d sent, %d lost (bound %d)", v, foInterval, sent, len(lost), maxLost)
		// A hole before the last reply seen at the crash is a loss while A
		// was a healthy MASTER.
		if i := slices.IndexFunc(lost, func(seq int) bool { return seq > answered[v] }); i != 0 {
			if i < 0 {
				i = len(lost)
			}
			t.Errorf("ping %v: %d requests lost while A was MASTER, before the crash: %v", v, i, lost[:i])
		}
		if len(lost) > maxLost {
			t.Errorf("ping %v: lost %d of %d; want at most master-down/interval + 2 = %d; lost seqs %v",
				v, len(lost), sent, maxLost, lost)
		}
		if got := neighMAC(t, client, v); got != b.mac.String() {
			t.Errorf("client's entry for %v after the failover: %q; want %v\n%s", v, got, b.mac, client.IP("neigh"))
		}
	}
	if vmac {
		if s := w.others(a.mac); len(s) > 0 {
			t.Errorf("client's VIP entries left the virtual MAC: %v", s)
		}
		fdb := tp.Switch().Run("bridge", "fdb", "show", "br", br)
		var line string
		for _, l := range strings.Split(fdb, "\n") {
			if strings.HasPrefix(l, b.mac.String()+" ") {
				line = l
			}
		}
		if !strings.Contains(line, "dev "+b.port+" ") {
			t.Errorf("bridge did not learn the virtual MAC on B's port %s: %q\n%s", b.port, line, fdb)
		}
	}
	if err := b.f.Err(); err != nil {
		t.Errorf("B's Follower: %v", err)
	}
}

//go:build linux

package vip_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/vip"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

var (
	pfx    = netip.MustParsePrefix
	lanA4  = pfx("192.0.2.1/24")
	lanA6  = pfx("2001:db8::1/64")
	lanB4  = pfx("192.0.2.2/24")
	lanB6  = pfx("2001:db8::2/64")
	lanC4  = pfx("192.0.2.100/24")
	lanC6  = pfx("2001:db8::100/64")
	wait   = 5 * time.Second // failure bound for kernel events, not a timing assertion
	anyMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
)

// lan is a bridge with firewalls a and b and a client c.
type lan struct {
	tp      *netns.Topology
	a, b, c *netns.NS
}

func newLAN(t *testing.T, withB bool) *lan {
	t.Helper()
	tp := netns.New(t, "vip")
	br := tp.Bridge("br0")
	l := &lan{tp: tp, a: tp.Node("a"), c: tp.Node("c")}
	tp.Attach(l.a, br, "eth0", lanA4, lanA6)
	tp.Attach(l.c, br, "eth0", lanC4, lanC6)
	if withB {
		l.b = tp.Node("b")
		tp.Attach(l.b, br, "eth0", lanB4, lanB6)
	}
	return l
}

// inNS runs fn inside ns and fails the test on error.
func inNS(t *testing.T, ns *netns.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatalf("in %s: %v", ns.Short, err)
	}
}

// node is the vip stack of one firewall: manager, announcer and Follower on
// ifname (eth0 or a virtual-MAC link), opened inside its namespace.
type node struct {
	ifi *net.Interface
	mgr *vip.NetlinkManager
	ann *vip.PacketAnnouncer
	f   *vip.Follower
}

func newNode(t *testing.T, ns *netns.NS, ifname string, addrs ...netip.Addr) *node {
	t.Helper()
	n := &node{}
	inNS(t, ns, func() error {
		var err error
		if n.ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		if n.mgr, err = vip.NewNetlinkManager(n.ifi, nil); err != nil {
			return err
		}
		n.ann, err = vip.NewPacketAnnouncer(n.ifi, nil)
		return err
	})
	var err error
	n.f, err = vip.NewFollower(vip.Config{VHID: 10, Addrs: vip.Host(addrs...), Manager: n.mgr, Announcer: n.ann, ReconcileInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, err := range []error{n.f.Close(), n.ann.Close(), n.mgr.Close()} {
			if err != nil {
				t.Error(err)
			}
		}
		if err := n.f.Err(); err != nil {
			t.Errorf("Follower on %s: background error: %v", ifname, err)
		}
	})
	return n
}

func master(n *node) {
	n.f.Handle(carp.Transition{VHID: 10, From: carp.Backup, To: carp.Master, Reason: "test"})
}
func backup(n *node) {
	n.f.Handle(carp.Transition{VHID: 10, From: carp.Master, To: carp.Backup, Reason: "test"})
}

// waitVIPs waits until both test VIPs are on (present) or off ifi in ns,
// driven by address notifications of an observing manager; it fails the
// test after `wait`.
func waitVIPs(t *testing.T, ns *netns.NS, ifi *net.Interface, present bool) {
	t.Helper()
	var obs *vip.NetlinkManager
	inNS(t, ns, func() error {
		var err error
		obs, err = vip.NewNetlinkManager(ifi, nil)
		return err
	})
	defer obs.Close()
	deadline := time.After(wait)
	for {
		got, err := obs.List()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range got {
			if p.Addr() == vip4 || p.Addr() == vip6 {
				n++
			}
		}
		if (present && n == 2) || (!present && n == 0) {
			return
		}
		select {
		case <-obs.Changes():
		case <-deadline:
			t.Fatalf("VIPs present=%v not reached on %s: %v", present, ifi.Name, got)
		}
	}
}

// neighWatch is a subscription to the neighbour table of a namespace.
type neighWatch struct {
	c  *rtnetlink.Conn
	ns *netns.NS
}

func watchNeigh(t *testing.T, ns *netns.NS) *neighWatch {
	t.Helper()
	w := &neighWatch{ns: ns}
	inNS(t, ns, func() error {
		var err error
		w.c, err = rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_NEIGH})
		return err
	})
	t.Cleanup(func() { w.c.Close() })
	return w
}

// waitFor waits for a notification that addr's entry has mac; it fails the
// test after `wait`. Subscribe before triggering the change.
func (w *neighWatch) waitFor(t *testing.T, addr netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	if err := w.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	for {
		msgs, _, err := w.c.Receive()
		if err != nil {
			t.Fatalf("%s: no neighbour entry %v -> %v: %v\n%s", w.ns.Short, addr, mac, err, w.ns.IP("neigh"))
		}
		for _, m := range msgs {
			nm, ok := m.(*rtnetlink.NeighMessage)
			if !ok || nm.Attributes == nil {
				continue
			}
			a, _ := netip.AddrFromSlice(nm.Attributes.Address)
			if a.Unmap() == addr && bytes.Equal(nm.Attributes.LLAddress, mac) {
				return
			}
		}
	}
}

// neighMAC returns the link-layer address of addr in ns's neighbour table
// ("" if none), as ip neigh prints it.
func neighMAC(t *testing.T, ns *netns.NS, addr netip.Addr) string {
	t.Helper()
	f := strings.Fields(ns.IP("neigh", "show", addr.String(), "dev", "eth0"))
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

func TestIntegrationNetlinkManager(t *testing.T) {
	l := newLAN(t, false)
	var m *vip.NetlinkManager
	var ifi *net.Interface
	inNS(t, l.a, func() error {
		var err error
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		m, err = vip.NewNetlinkManager(ifi, nil)
		return err
	})
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	// A change made by someone else is notified.
	l.a.IP("addr", "add", "198.51.100.7/32", "dev", "eth0")
	select {
	case <-m.Changes():
	case <-time.After(wait):
		t.Fatal("no Changes value after ip addr add")
	}

	v4, v6 := pfx("192.0.2.10/32"), pfx("2001:db8::10/128")
	for i := range 2 { // twice: adding a present address is not an error
		for _, p := range []netip.Prefix{v4, v6} {
			if err := m.Add(p); err != nil {
				t.Fatalf("Add %v (round %d): %v", p, i, err)
			}
		}
	}
	got, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{v4, v6, lanA4, lanA6} {
		if !slices.Contains(got, p) {
			t.Errorf("List = %v; missing %v", got, p)
		}
	}
	out := l.a.IP("-6", "addr", "show", "dev", "eth0")
	line := ""
	for _, ln := range strings.Split(out, "\n") {
		if strings.Contains(ln, "2001:db8::10/128") {
			line = ln
		}
	}
	if !strings.Contains(line, "nodad") || strings.Contains(line, "tentative") {
		t.Errorf("IPv6 VIP not nodad or tentative: %q\n%s", line, out)
	}

	// Removing a /24 VIP must not take the node's own address of the same
	// subnet with it (IFA_LOCAL must be in the request).
	if err := m.Remove(pfx("192.0.2.10/24")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // twice: removing an absent address is not an error
		for _, p := range []netip.Prefix{v4, v6} {
			if err := m.Remove(p); err != nil {
				t.Fatalf("Remove %v (round %d): %v", p, i, err)
			}
		}
	}
	got, err = m.List()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, v4) || slices.Contains(got, v6) || !slices.Contains(got, lanA4) {
		t.Errorf("after Remove, List = %v", got)
	}

	// Errors name the interface and the address.
	ghost := &net.Interface{Index: 9999, Name: "ghost0"}
	var gm *vip.NetlinkManager
	inNS(t, l.a, func() error { var err error; gm, err = vip.NewNetlinkManager(ghost, nil); return err })
	defer gm.Close()
	err = gm.Add(v4)
	if err == nil || !strings.Contains(err.Error(), "ghost0") || !strings.Contains(err.Error(), "192.0.2.10/32") {
		t.Errorf("Add on a missing interface: %v; want an error naming ghost0 and 192.0.2.10/32", err)
	}
}

// TestIntegrationAnnounceFrames checks what a client on the bridge receives:
// a gratuitous ARP request and reply with sender = target = VIP, and an
// unsolicited NA, all from our MAC, and that the client's neighbour entries
// follow them.
func TestIntegrationAnnounceFrames(t *testing.T) {
	l := newLAN(t, false)
	var ann *vip.PacketAnnouncer
	var aMAC net.HardwareAddr
	inNS(t, l.a, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		aMAC = ifi.HardwareAddr
		ann, err = vip.NewPacketAnnouncer(ifi, nil)
		return err
	})
	defer ann.Close()

	// The client has stale entries pointing elsewhere; Linux only updates
	// existing entries from unsolicited announcements (unless arp_accept).
	l.c.IP("neigh", "replace", vip4.String(), "lladdr", anyMAC.String(), "dev", "eth0", "nud", "stale")
	l.c.IP("neigh", "replace", vip6.String(), "lladdr", anyMAC.String(), "dev", "eth0", "nud", "stale")

	var arpC, ip6C *packet.Conn
	inNS(t, l.c, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if arpC, err = packet.Listen(ifi, packet.Raw, 0x0806, nil); err != nil {
			return err
		}
		ip6C, err = packet.Listen(ifi, packet.Raw, 0x86dd, nil)
		return err
	})
	defer arpC.Close()
	defer ip6C.Close()
	w := watchNeigh(t, l.c)

	if err := ann.Announce([]netip.Addr{vip4, vip6}); err != nil {
		t.Fatal(err)
	}

	// ARP: both forms arrive.
	var ops []arp.Operation
	buf := make([]byte, 1500)
	arpC.SetReadDeadline(time.Now().Add(wait))
	for len(ops) < 2 {
		n, _, err := arpC.ReadFrom(buf)
		if err != nil {
			t.Fatalf("client got ARP %v, then: %v", ops, err)
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil {
			continue
		}
		if p.SenderIP != vip4 {
			continue // the client's own traffic
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, aMAC) || p.TargetIP != vip4 || !bytes.Equal(p.SenderHardwareAddr, aMAC) {
			t.Errorf("ARP %v: frame %v -> %v, packet %+v", p.Operation, f.Source, f.Destination, p)
		}
		ops = append(ops, p.Operation)
	}
	if !slices.Equal(ops, []arp.Operation{arp.OperationRequest, arp.OperationReply}) {
		t.Errorf("ARP operations %v; want request, reply", ops)
	}

	// NA: one arrives with hop limit 255, O set, target LLA = our MAC.
	ip6C.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := ip6C.ReadFrom(buf)
		if err != nil {
			t.Fatalf("client got no NA: %v", err)
		}
		b := buf[:n]
		if len(b) < 14+40+24 || b[14+6] != 58 {
			continue
		}
		m, err := ndp.ParseMessage(b[14+40:])
		na, ok := m.(*ndp.NeighborAdvertisement)
		if err != nil || !ok || na.TargetAddress != vip6 {
			continue
		}
		if hl := b[14+7]; hl != 255 || !na.Override || na.Solicited || !bytes.Equal(b[:6], []byte{0x33, 0x33, 0, 0, 0, 1}) {
			t.Errorf("NA: hop limit %d, %+v, dst %x", hl, na, b[:6])
		}
		break
	}

	w.waitFor(t, vip4, aMAC)
	w.waitFor(t, vip6, aMAC)
}

// TestIntegrationFailoverMovesNeighbour: A is MASTER and the client talks to
// the VIP through A's MAC; then B takes over, and the client's entries move
// to B's MAC at once (not after they expire), and the VIP answers again.
func TestIntegrationFailoverMovesNeighbour(t *testing.T) {
	netns.RequireBinary(t, "ping")
	l := newLAN(t, true)
	a := newNode(t, l.a, "eth0", vip4, vip6)
	b := newNode(t, l.b, "eth0", vip4, vip6)
	backup(b)
	w := watchNeigh(t, l.c)

	master(a)
	waitVIPs(t, l.a, a.ifi, true)
	l.c.Run("ping", "-c", "1", "-W", "2", vip4.String())
	l.c.Run("ping", "-c", "1", "-W", "2", vip6.String())
	for _, v := range []netip.Addr{vip4, vip6} {
		if got := neighMAC(t, l.c, v); got != a.ifi.HardwareAddr.String() {
			t.Fatalf("client's entry for %v: %q; want A's %v", v, got, a.ifi.HardwareAddr)
		}
	}

	backup(a)
	master(b)
	w.waitFor(t, vip4, b.ifi.HardwareAddr)
	w.waitFor(t, vip6, b.ifi.HardwareAddr)
	l.c.Run("ping", "-c", "1", "-W", "2", vip4.String())
	l.c.Run("ping", "-c", "1", "-W", "2", vip6.String())
	if got := l.a.IP("addr", "show", "dev", "eth0"); strings.Contains(got, "192.0.2.10") || strings.Contains(got, "2001:db8::10") {
		t.Errorf("A kept a VIP as BACKUP:\n%s", got)
	}
}

// TestIntegrationReconcile: deleting the VIP by hand on the MASTER is
// repaired (notification-driven), and a VIP added by hand on a BACKUP is
// removed.
func TestIntegrationReconcile(t *testing.T) {
	l := newLAN(t, false)
	a := newNode(t, l.a, "eth0", vip4, vip6)
	master(a)
	waitVIPs(t, l.a, a.ifi, true)
	l.a.IP("addr", "del", "192.0.2.10/24", "dev", "eth0") // the VIP took the on-link /24
	l.a.IP("addr", "del", "2001:db8::10/64", "dev", "eth0")
	waitVIPs(t, l.a, a.ifi, true)
	// The Follower counts a repair just after the kernel acknowledged the
	// re-add, so the counter may trail what the observer saw by a moment.
	for deadline := time.Now().Add(wait); a.f.Stats().Repairs < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("Stats.Repairs = %d after %v; want at least 2", a.f.Stats().Repairs, wait)
		}
		time.Sleep(time.Millisecond)
	}

	backup(a)
	waitVIPs(t, l.a, a.ifi, false)
	l.a.IP("addr", "add", "192.0.2.10/32", "dev", "eth0")
	waitVIPs(t, l.a, a.ifi, false)
}

// TestIntegrationVirtualMAC: the macvlan carries 00:00:5e:00:01:<vhid>, is
// silent while idle (no IPv6 link-local to send from), the VIPs live on it and the
// client learns the virtual MAC; Close removes it.
func TestIntegrationVirtualMAC(t *testing.T) {
	netns.RequireBinary(t, "ping")
	l := newLAN(t, false)
	var vm *vip.VirtualMAC
	inNS(t, l.a, func() error {
		parent, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		vm, err = vip.NewVirtualMAC(parent, 10, nil)
		return err
	})
	// Registered before the Follower on carp10, so it runs after it: Close
	// removes the link, and a second Close is harmless.
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Error(err)
		}
		if err := vm.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if out, err := l.a.Output("ip", "link", "show", "carp10"); err == nil {
			t.Errorf("carp10 still exists after Close:\n%s", out)
		}
	})
	want := vip.VirtualMACAddr(10)
	if got := vm.HardwareAddr(); !bytes.Equal(got, want) || vm.Interface().Name != "carp10" {
		t.Fatalf("link %s with %v; want carp10 with %v", vm.Interface().Name, got, want)
	}
	out := l.a.IP("-d", "link", "show", "carp10")
	for _, s := range []string{"00:00:5e:00:01:0a", "macvlan mode bridge", "carp10@eth0", "UP"} {
		if !strings.Contains(out, s) {
			t.Errorf("ip -d link show carp10 lacks %q:\n%s", s, out)
		}
	}
	if v := l.a.Sysctl("net/ipv6/conf/carp10/accept_dad"); v != "0" {
		t.Errorf("accept_dad on carp10 = %s; want 0", v)
	}
	if v := l.a.Sysctl("net/ipv6/conf/carp10/addr_gen_mode"); v != "1" {
		t.Errorf("addr_gen_mode on carp10 = %s; want 1", v)
	}
	if out := l.a.IP("-6", "addr", "show", "dev", "carp10"); strings.Contains(out, "fe80::") {
		t.Errorf("carp10 has a link-local address; a backup would send from the virtual MAC:\n%s", out)
	}

	// A second NewVirtualMAC (a restart after a crash) replaces the link.
	var vm2 *vip.VirtualMAC
	inNS(t, l.a, func() error {
		parent, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		vm2, err = vip.NewVirtualMAC(parent, 10, nil)
		return err
	})
	vm, vm2 = vm2, vm
	if err := vm2.Close(); err != nil { // the old one's link is gone already: not an error
		t.Errorf("Close of the replaced link: %v", err)
	}

	// A foreign link of that name is not touched.
	inNS(t, l.a, func() error {
		parent, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		_, err = vip.NewVirtualMAC(parent, 10, &vip.VirtualMACConfig{Name: "eth0"})
		if err == nil || !strings.Contains(err.Error(), "different link named eth0") {
			return errors.New("NewVirtualMAC over eth0: " + errString(err))
		}
		return nil
	})

	// The VIPs on the macvlan, announced with the virtual MAC.
	w := watchNeigh(t, l.c)
	a := newNode(t, l.a, "carp10", vip4, vip6)
	if !bytes.Equal(a.ann.HardwareAddr(), want) {
		t.Fatalf("announcer MAC %v; want %v", a.ann.HardwareAddr(), want)
	}
	l.c.IP("neigh", "replace", vip4.String(), "lladdr", anyMAC.String(), "dev", "eth0", "nud", "stale")
	l.c.IP("neigh", "replace", vip6.String(), "lladdr", anyMAC.String(), "dev", "eth0", "nud", "stale")
	master(a)
	w.waitFor(t, vip4, want)
	w.waitFor(t, vip6, want)
	// And the VIPs answer through the macvlan (the parent stays silent for
	// them: arp_ignore=1 in the node namespace).
	l.c.Run("ping", "-c", "1", "-W", "2", vip4.String())
	l.c.Run("ping", "-c", "1", "-W", "2", vip6.String())
	for _, v := range []netip.Addr{vip4, vip6} {
		if got := neighMAC(t, l.c, v); got != want.String() {
			t.Errorf("client's entry for %v: %q; want the virtual MAC", v, got)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestIntegrationVirtualMACVRRPv6: a VRRPv3 router of IPv6 addresses uses
// 00:00:5e:00:02:<vrid> (VirtualMACConfig.MAC), on its own link name, and
// the client learns that MAC for the VIP.
func TestIntegrationVirtualMACVRRPv6(t *testing.T) {
	netns.RequireBinary(t, "ping")
	l := newLAN(t, false)
	want := vip.VRRPVirtualMACAddr(10, true)
	var vm *vip.VirtualMAC
	inNS(t, l.a, func() error {
		parent, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		vm, err = vip.NewVirtualMAC(parent, 10, &vip.VirtualMACConfig{MAC: want})
		return err
	})
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Error(err)
		}
	})
	if got := vm.HardwareAddr(); !bytes.Equal(got, want) || vm.Interface().Name != "carp10v6" {
		t.Fatalf("link %s with %v; want carp10v6 with %v", vm.Interface().Name, got, want)
	}
	if out := l.a.IP("link", "show", "carp10v6"); !strings.Contains(out, "00:00:5e:00:02:0a") {
		t.Errorf("ip link show carp10v6 lacks 00:00:5e:00:02:0a:\n%s", out)
	}

	w := watchNeigh(t, l.c)
	a := newNode(t, l.a, "carp10v6", vip6)
	l.c.IP("neigh", "replace", vip6.String(), "lladdr", anyMAC.String(), "dev", "eth0", "nud", "stale")
	master(a)
	w.waitFor(t, vip6, want)
	l.c.Run("ping", "-c", "1", "-W", "2", vip6.String())
	if got := neighMAC(t, l.c, vip6); got != want.String() {
		t.Errorf("client's entry for %v: %q; want the virtual MAC", vip6, got)
	}

	// A MAC that cannot be a link's address is refused by name.
	inNS(t, l.a, func() error {
		parent, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		_, err = vip.NewVirtualMAC(parent, 11, &vip.VirtualMACConfig{MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}})
		if err == nil || !strings.Contains(err.Error(), "VirtualMACConfig.MAC 01:00:5e:00:00:01 is not a 6-byte unicast") {
			return errors.New("NewVirtualMAC with a multicast MAC: " + errString(err))
		}
		return nil
	})
}

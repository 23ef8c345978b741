package vip_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/vip"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestIntegrationSetAddresses: a MASTER given a new address set installs
// the added address (and the client learns it from the announcement),
// withdraws the removed one, and sends no notification at all about the
// unchanged one: it was neither removed nor re-added.
func TestIntegrationSetAddresses(t *testing.T) {
	l := newLAN(t, false)
	a := newNode(t, l.a, "eth0", vip4, vip6)
	master(a)
	waitVIPs(t, l.a, a.ifi, true)

	var c *rtnetlink.Conn
	inNS(t, l.a, func() error {
		var err error
		c, err = rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR})
		return err
	})
	defer c.Close()
	// Linux only updates existing entries from unsolicited announcements
	// (unless arp_accept): give the client a stale one pointing elsewhere.
	l.c.IP("neigh", "replace", vip3.String(), "lladdr", anyMAC.String(), "dev", "eth0", "nud", "stale")
	w := watchNeigh(t, l.c)

	if err := a.f.SetAddresses(vip.Host(vip4, vip3)); err != nil {
		t.Fatal(err)
	}
	// Read address notifications until vip3 was added and vip6 removed.
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	var added, removed bool
	for !added || !removed {
		msgs, raw, err := c.Receive()
		if err != nil {
			t.Fatalf("added %v=%v, removed %v=%v: %v", vip3, added, vip6, removed, err)
		}
		for i, m := range msgs {
			typ := raw[i].Header.Type
			am, ok := m.(*rtnetlink.AddressMessage)
			if !ok || am.Attributes == nil {
				continue
			}
			addr, _ := netip.AddrFromSlice(am.Attributes.Address)
			switch addr = addr.Unmap(); {
			case addr == vip4:
				t.Errorf("notification about the unchanged %v (type %d)", vip4, typ)
			case addr == vip3 && typ == unix.RTM_NEWADDR:
				added = true
			case addr == vip6 && typ == unix.RTM_DELADDR:
				removed = true
			}
		}
	}
	w.waitFor(t, vip3, a.ifi.HardwareAddr) // announced
	got := l.a.IP("addr", "show", "dev", "eth0")
	if !strings.Contains(got, "192.0.2.10/24") || !strings.Contains(got, "192.0.2.11/24") || strings.Contains(got, "2001:db8::10") {
		t.Errorf("addresses after SetAddresses:\n%s", got)
	}
}

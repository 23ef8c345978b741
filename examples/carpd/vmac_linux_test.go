package main

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// TestVRRPVirtualMACSource: carpd --protocol vrrp3 --vmac as MASTER sends
// its adverts with the virtual MAC as Ethernet source, 00:00:5e:00:01:VRID
// for IPv4 (keepalived, the backup, accepts them and stays BACKUP) and
// 00:00:5e:00:02:VRID for IPv6 from the parent's link-local address (a
// carpd backup accepts them and stays BACKUP).
func TestVRRPVirtualMACSource(t *testing.T) {
	t.Parallel()
	t.Run("ipv4", func(t *testing.T) {
		t.Parallel()
		tb := newTestbed(t, "a", "k")
		sniff := advertSniffer(t, tb.nodes["obs"].ns, 0x0800)
		tb.carpdVRRP("a", "--priority", "200", "-P", "--vmac")
		tb.waitEvent(0, "a up")
		k := tb.keepalived("k", "BACKUP", 100)
		if _, _, err := k.WaitLine(0, "(v) Entering BACKUP STATE", stateTimeout); err != nil {
			t.Fatal(err)
		}
		tb.obs.waitVRRP(t, tb.nodes["a"].ip, 10)
		if n := k.Count(0, "Entering MASTER STATE"); n != 0 {
			t.Fatalf("keepalived became MASTER under carpd --vmac at priority 200:\n%s", strings.Join(k.Output(), "\n"))
		}
		checkSourceMAC(t, sniff, net.HardwareAddr{0, 0, 0x5e, 0, 1, 1})
	})
	t.Run("ipv6", func(t *testing.T) {
		t.Parallel()
		tb := newTestbed(t, "a", "b")
		sniff := advertSniffer(t, tb.nodes["obs"].ns, 0x86dd)
		vip6 := netip.MustParseAddr("fd78::254")
		start := func(name string, extra ...string) *netns.Process {
			up, down := tb.scripts(false)
			args := []string{"-i", "eth0", "-v", testVHID, "--protocol", "vrrp3", "--advert-int", "200ms",
				"-a", vip6.String(), "-u", up, "-d", down, "-x", name, "--vmac"}
			return tb.nodes[name].ns.Start(carpdBin, append(args, extra...)...)
		}
		start("a", "--priority", "200")
		tb.waitEvent(0, "a up")
		from := len(tb.eventLines())
		b := start("b")
		tb.waitEvent(from, "b down")
		deadline := time.Now().Add(stateTimeout)
		for atoi(t, stats(t, b), "ipackets6") < 10 {
			if time.Now().After(deadline) {
				t.Fatal("b did not receive 10 IPv6 adverts")
			}
			time.Sleep(pollEvery)
		}
		if n := tb.countEvent("b up"); n != 0 {
			t.Fatalf("b became MASTER %d times under a at priority 200", n)
		}
		checkSourceMAC(t, sniff, net.HardwareAddr{0, 0, 0x5e, 0, 2, 1})
	})
}

// advertSniffer opens a packet socket for EtherType etype on eth0 of ns.
func advertSniffer(t *testing.T, ns *netns.NS, etype int) *packet.Conn {
	t.Helper()
	var c *packet.Conn
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, etype, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkSourceMAC reads the frames queued on c up to the first VRRP advert
// (IP protocol 112; only the MASTER sends) and checks it comes from mac.
func checkSourceMAC(t *testing.T, c *packet.Conn, mac net.HardwareAddr) {
	t.Helper()
	got, err := netns.AdvertSourceMAC(c, stateTimeout)
	if err != nil {
		t.Fatalf("VRRP advert: %v", err)
	}
	if !bytes.Equal(got, mac) {
		t.Fatalf("VRRP advert frame from MAC %v, want the virtual MAC %v", got, mac)
	}
}

package netns_test

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

func TestTopologyPingAndCleanup(t *testing.T) {
	netns.Require(t)
	netns.RequireBinary(t, "ping")
	var prefix string
	var names []string
	t.Run("topology", func(t *testing.T) {
		tp := netns.New(t, "nst")
		prefix = tp.Prefix()
		br := tp.Bridge("lan")
		a, b := tp.Node("a"), tp.Node("b")
		names = []string{tp.Switch().Name, a.Name, b.Name}
		tp.Attach(a, br, "eth0", netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("fd00:9::1/64"))
		tp.Attach(b, br, "eth0", netip.MustParsePrefix("10.9.0.2/24"), netip.MustParsePrefix("fd00:9::2/64"))

		a.Run("ping", "-c", "1", "-W", "5", "10.9.0.2")
		a.Run("ping", "-6", "-c", "1", "-W", "5", "fd00:9::2")

		// A point-to-point sync link next to the LAN.
		tp.Link(a, "sync0", []netip.Prefix{netip.MustParsePrefix("10.10.0.1/30")},
			b, "sync0", []netip.Prefix{netip.MustParsePrefix("10.10.0.2/30")})
		b.Run("ping", "-c", "1", "-W", "5", "-I", "sync0", "10.10.0.1")

		// The explicit sysctls are in place, per interface too.
		for _, k := range []string{"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/eth0/rp_filter", "net/ipv6/conf/eth0/accept_dad"} {
			if got := a.Sysctl(k); got != "0" {
				t.Errorf("%s = %s, want 0", k, got)
			}
		}

		// Do runs Go code inside the namespace: it sees eth0, the
		// original namespace does not (or has another eth0 without our
		// address).
		var addrs []string
		err := b.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			as, err := ifi.Addrs()
			for _, a := range as {
				addrs = append(addrs, a.String())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(addrs, " "), "10.9.0.2/24") {
			t.Errorf("addresses of eth0 inside b = %v, want 10.9.0.2/24 among them", addrs)
		}

		// A capture in the switch namespace sees the bridged traffic.
		c := tp.Switch().StartCapture(br, 2, "icmp")
		a.Run("ping", "-c", "1", "-W", "5", "10.9.0.2")
		if err := c.Wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(c.Path); err != nil || fi.Size() <= 24 {
			t.Errorf("pcap %s: %v, size %v; want more than the 24-byte header", c.Path, err, fi)
		}

		// Background processes: output is captured, Stop kills them.
		p := a.Start("sh", "-c", "echo ready; exec sleep 600")
		if _, _, err := p.WaitLine(0, "ready", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if !netns.Alive(p.Pid()) {
			t.Fatalf("process %d not alive", p.Pid())
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		if netns.Alive(p.Pid()) {
			t.Errorf("process %d alive after Stop", p.Pid())
		}
	})
	if prefix == "" {
		t.Fatal("subtest did not create a topology")
	}
	for _, n := range names {
		if netns.Exists(n) {
			t.Errorf("namespace %s still exists after cleanup", n)
		}
	}
	ents, err := os.ReadDir(netns.RunDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

// TestTwoTopologies: two topologies in one test get distinct prefixes and
// may use the same node names.
func TestTwoTopologies(t *testing.T) {
	t1 := netns.New(t, "nst")
	t1.Node("a")
	t2 := netns.New(t, "nst")
	t2.Node("a")
	if t1.Prefix() == t2.Prefix() {
		t.Fatalf("both topologies use prefix %s", t1.Prefix())
	}
}

// TestPinger: on a healthy link every request is answered, for both
// families; after the peer's port goes down the requests are lost and
// counted.
func TestPinger(t *testing.T) {
	tp := netns.New(t, "nsp")
	br := tp.Bridge("lan")
	a, b := tp.Node("a"), tp.Node("b")
	tp.Attach(a, br, "eth0", netip.MustParsePrefix("10.9.1.1/24"), netip.MustParsePrefix("fd00:91::1/64"))
	port := tp.Attach(b, br, "eth0", netip.MustParsePrefix("10.9.1.2/24"), netip.MustParsePrefix("fd00:91::2/64"))
	for i, dst := range []netip.Addr{netip.MustParseAddr("10.9.1.2"), netip.MustParseAddr("fd00:91::2")} {
		t.Run(dst.String(), func(t *testing.T) {
			p, err := netns.StartPinger(a.Path(), dst, os.Getpid()&0x7fff+i, 5*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := p.Close(); err != nil {
					t.Error(err)
				}
				if err := p.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			}()
			if err := p.WaitReplies(time.Time{}, 5, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			tp.Switch().SetLink(port, false)
			defer tp.Switch().SetLink(port, true)
			cut := time.Now()
			last := p.LastAnswered()
			if err := p.WaitReplies(cut, 1, 200*time.Millisecond); err == nil {
				t.Error("WaitReplies: a reply from behind a downed port")
			}
			sent, lost := p.Finish(100 * time.Millisecond)
			if sent <= last+1 || len(lost) == 0 || lost[len(lost)-1] != sent-1 {
				t.Errorf("Finish after the cut: %d sent, lost %v (last answered %d); want the requests after the cut lost", sent, lost, last)
			}
		})
	}
}

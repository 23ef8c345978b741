package carp_test

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// TestTsharkDecodesOurVRRP: tshark's VRRP dissector (the default for IP
// protocol 112) decodes the VRRPv3 adverts we encode and a RawTransport
// sends, IPv4 and IPv6, with our fields, TTL / hop limit 255 and a checksum
// it verifies over the pseudo-header, and raises no expert warning.
func TestTsharkDecodesOurVRRP(t *testing.T) {
	t.Parallel()
	tshark := netns.RequireBinary(t, "tshark")
	tp, nodes := rawLAN(t, "a", "b")
	a := nodes[0]
	tr := rawOpen(t, a.ns, a.ifname, nil)
	const perFamily = 3
	c := tp.Switch().StartCapture("lan", 2*perFamily, "ip proto 112 or ip6 proto 112")
	addrs := map[carp.Family][]netip.Addr{
		carp.IPv4: {netip.MustParseAddr("10.77.0.254"), netip.MustParseAddr("10.77.0.253")},
		carp.IPv6: {netip.MustParseAddr("fe80::254"), netip.MustParseAddr("fd77::254")},
	}
	for range perFamily {
		for _, f := range []carp.Family{carp.IPv4, carp.IPv6} {
			adv := carp.VRRPAdvertisement{VRID: 42, Priority: 150, Interval: 25, Addrs: addrs[f]}
			b, err := adv.Append(nil, tr.Source(f), tr.Destination(f))
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Send(f, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Wait(rawWait); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-r", c.Path, "-T", "fields", "-E", "separator=,",
		"-e", "ip.ttl", "-e", "ipv6.hlim", "-e", "ipv6.src",
		"-e", "vrrp.version", "-e", "vrrp.type", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio",
		"-e", "vrrp.addr_count", "-e", "vrrp.short_adver_int", "-e", "vrrp.reserved_mbz", "-e", "vrrp.checksum.status",
		"-e", "vrrp.ip_addr", "-e", "vrrp.ipv6_addr", "-e", "_ws.expert")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	// Columns: ttl, hop limit, IPv6 source, then the VRRP fields (the
	// interval in centiseconds, the reserved bits). Checksum status 1 is "good"; an empty last column means no expert
	// info (a bad checksum or a malformed packet would add one).
	v4 := "255,,,3,1,42,150,2,25,0,1,10.77.0.254,10.77.0.253,,"
	v6 := "," + "255," + a.ll.String() + ",3,1,42,150,2,25,0,1,,fe80::254,fd77::254,"
	var want []string
	for range perFamily {
		want = append(want, v4, v6)
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(string(out)), "\n")); diff != "" {
		t.Errorf("tshark fields (-want +got):\n%s", diff)
	}
}

// TestKeepalivedVRRPv3RoundTrip: the VRRPv3 adverts keepalived 2.2.7 sends
// (IPv4 and IPv6, two addresses each, a sub-second interval) reach a
// RawTransport, decode with the source and destination the transport
// reports, carry keepalived's configuration, and re-encode byte for byte.
//
// The bridge is captured meanwhile; with GOCARP_WRITE_TESTDATA=1 the
// capture replaces testdata/keepalived-vrrp3-two-addrs.pcap, which
// TestVRRPCaptures and the fuzz target read.
func TestKeepalivedVRRPv3RoundTrip(t *testing.T) {
	t.Parallel()
	tp, nodes := rawLAN(t, "ka", "go")
	k, g := nodes[0], nodes[1]
	tr := rawOpen(t, g.ns, g.ifname, nil)
	const captured = 8
	c := tp.Switch().StartCapture("lan", captured, "ip proto 112 or ip6 proto 112")
	rawStartKeepalived(t, k, `vrrp_instance four {
  version 3
  state MASTER
  interface eth0
  virtual_router_id 7
  priority 150
  advert_int 0.5
  virtual_ipaddress {
    10.77.0.201/24
    10.77.0.202/24
  }
}
vrrp_instance six {
  version 3
  state MASTER
  interface eth0
  virtual_router_id 8
  priority 150
  advert_int 0.5
  virtual_ipaddress {
    fd77::201/64
    fd77::202/64
  }
}
`)
	want := map[carp.Family]carp.VRRPAdvertisement{
		carp.IPv4: {VRID: 7, Priority: 150, Interval: 50, Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.201"), netip.MustParseAddr("10.77.0.202")}},
		carp.IPv6: {VRID: 8, Priority: 150, Interval: 50, Addrs: []netip.Addr{netip.MustParseAddr("fd77::201"), netip.MustParseAddr("fd77::202")}},
	}
	seen := map[carp.Family]int{}
	for seen[carp.IPv4] < 2 || seen[carp.IPv6] < 2 {
		p := tr.next(t, func(p carp.Packet) bool { return p.Src == k.v4 || p.Src == k.ll })
		var adv carp.VRRPAdvertisement
		if err := adv.Unmarshal(p.Payload, p.Src, p.Dst); err != nil {
			if errors.Is(err, carp.ErrVRRPChecksum) {
				t.Fatalf("keepalived's %v advert from %v to %v fails our checksum: %v", p.Family, p.Src, p.Dst, err)
			}
			t.Fatalf("keepalived's %v advert: %v", p.Family, err)
		}
		if p.TTL != 255 {
			t.Errorf("keepalived's %v advert has TTL %d, want 255", p.Family, p.TTL)
		}
		// keepalived sends an initial burst at the priority it starts
		// with; only the content matters here.
		if diff := cmp.Diff(want[p.Family], adv, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("keepalived's %v advert (-want +got):\n%s", p.Family, diff)
		}
		b, err := adv.Append(nil, p.Src, p.Dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, p.Payload) {
			t.Errorf("re-encoded %v advert\n got % x\nwant % x", p.Family, b, p.Payload)
		}
		seen[p.Family]++
	}
	if err := c.Wait(rawWait); err != nil {
		t.Fatal(err)
	}
	pkts := carp.ReadPcap(t, c.Path)
	if len(pkts) != captured {
		t.Fatalf("%d packets captured, want %d", len(pkts), captured)
	}
	for _, p := range pkts {
		var adv carp.VRRPAdvertisement
		if err := adv.Unmarshal(p.Payload, p.Src, p.Dst); err != nil {
			t.Errorf("frame %d: %v", p.Frame, err)
		}
	}
	if os.Getenv("GOCARP_WRITE_TESTDATA") == "1" {
		b, err := os.ReadFile(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/keepalived-vrrp3-two-addrs.pcap", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

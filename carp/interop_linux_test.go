package carp_test

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// Interop parameters shared with the ucarp command lines below.
var (
	rawUcarpVIP  = netip.MustParseAddr("10.77.0.254")
	rawUcarpPass = []byte("secret")
)

const rawUcarpVHID = 1

// rawUcarpTimeout bounds waits for ucarp state changes: its master-down
// check has ~1.4 s of jitter on top of 3 x advbase + advskew/256.
const rawUcarpTimeout = 15 * time.Second

// rawStartUcarp runs ucarp in node n (foreground, logging to stderr) with
// scripts that print "UPSCRIPT"/"DOWNSCRIPT" to ucarp's output.
func rawStartUcarp(t *testing.T, n *rawNode, advskew int, extra ...string) *netns.Process {
	t.Helper()
	netns.RequireBinary(t, "ucarp")
	dir := t.TempDir()
	up := filepath.Join(dir, "up.sh")
	down := filepath.Join(dir, "down.sh")
	for path, word := range map[string]string{up: "UPSCRIPT", down: "DOWNSCRIPT"} {
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho "+word+" \"$1\" \"$2\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{
		"-i", n.ifname, "-s", n.v4.String(), "-v", strconv.Itoa(rawUcarpVHID),
		"-p", string(rawUcarpPass), "-a", rawUcarpVIP.String(),
		"-k", strconv.Itoa(advskew), "-u", up, "-d", down, "-D", "-f", "none",
	}
	p := n.ns.Start("ucarp", append(args, extra...)...)
	// ucarp starts in BACKUP and runs its down script (no --neutral).
	if _, _, err := p.WaitLine(0, "DOWNSCRIPT", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}

// rawUcarpWindow lets twice ucarp's master-down interval (3 x 1 s +
// 100/256 s) plus its check jitter pass, failing if ucarp exits: an
// observation window for a property ("nothing happens"), not a
// synchronisation.
func rawUcarpWindow(t *testing.T, p *netns.Process) {
	t.Helper()
	window := time.NewTimer(2 * (3*time.Second + 400*time.Millisecond))
	defer window.Stop()
	select {
	case <-p.Done():
		t.Fatalf("ucarp exited: %v\n%s", p.Err(), strings.Join(p.Output(), "\n"))
	case <-window.C:
	}
}

// rawAdvertiser sends signed CARP adverts for the ucarp group from a
// RawTransport until stopped, like a gocarp master would.
type rawAdvertiser struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	sent int
	err  error
}

func rawAdvertise(t *testing.T, tr carp.Transport, password []byte, advskew uint8, every time.Duration) *rawAdvertiser {
	t.Helper()
	auth, err := carp.NewAuthenticator(password, rawUcarpVHID, []netip.Addr{rawUcarpVIP})
	if err != nil {
		t.Fatal(err)
	}
	a := &rawAdvertiser{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for counter := uint64(0x1000); ; counter++ {
			adv := carp.Advertisement{VHID: rawUcarpVHID, AdvBase: 1, AdvSkew: advskew, Counter: counter}
			auth.Sign(&adv)
			b, _ := adv.MarshalBinary()
			err := tr.Send(carp.IPv4, b)
			a.mu.Lock()
			a.sent++
			if err != nil && a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
			select {
			case <-a.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(a.Stop)
	return a
}

// Stop stops sending and waits for the sender; it is idempotent.
func (a *rawAdvertiser) Stop() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

func (a *rawAdvertiser) result() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent, a.err
}

// bowOut sends one OpenBSD bow-out advert (advbase 255, advskew 255).
func rawBowOut(t *testing.T, tr carp.Transport) {
	t.Helper()
	auth, err := carp.NewAuthenticator(rawUcarpPass, rawUcarpVHID, []netip.Addr{rawUcarpVIP})
	if err != nil {
		t.Fatal(err)
	}
	adv := carp.Advertisement{VHID: rawUcarpVHID, AdvBase: 255, AdvSkew: 255, Counter: 0xb0}
	auth.Sign(&adv)
	b, _ := adv.MarshalBinary()
	if err := tr.Send(carp.IPv4, b); err != nil {
		t.Fatal(err)
	}
}

// rawNextCARP returns the next IPv4 packet from src that decodes as CARP.
func rawNextCARP(t *testing.T, e *rawEndpoint, src netip.Addr) (carp.Packet, carp.Advertisement) {
	t.Helper()
	p := e.next(t, func(p carp.Packet) bool { return p.Family == carp.IPv4 && p.Src == src })
	var adv carp.Advertisement
	if err := adv.UnmarshalBinary(p.Payload); err != nil {
		t.Fatalf("packet from %v does not decode as CARP: %v (% x)", src, err, p.Payload)
	}
	return p, adv
}

// TestUcarpInterop runs ucarp 1.5.2 next to a RawTransport on one bridge
// and checks, at the wire level, that each side accepts the other's
// adverts: our codec and HMAC verify ucarp's adverts, ucarp stays BACKUP
// (its up script does not run) while we advertise faster, takes over at once
// on our bow-out advert, yields to our faster adverts while MASTER, and
// takes over when we fall silent.
func TestUcarpInterop(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ucarp", "go")
	u, g := nodes[0], nodes[1]
	tr := rawOpen(t, g.ns, g.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
	auth, err := carp.NewAuthenticator(rawUcarpPass, rawUcarpVHID, []netip.Addr{rawUcarpVIP})
	if err != nil {
		t.Fatal(err)
	}

	// We are master first (advskew 0 beats ucarp's 100).
	adv := rawAdvertise(t, tr, rawUcarpPass, 0, 300*time.Millisecond)
	p := rawStartUcarp(t, u, 100)

	// ucarp must stay BACKUP for longer than its master-down interval.
	mark := p.Len()
	rawUcarpWindow(t, p)
	if n := p.Count(mark, "MASTER") + p.Count(mark, "UPSCRIPT"); n != 0 {
		t.Fatalf("ucarp became MASTER while we advertised faster:\n%s", strings.Join(p.Output(), "\n"))
	}
	if n := p.Count(0, "Bad digest"); n != 0 {
		t.Fatalf("ucarp rejected our digest:\n%s", strings.Join(p.Output(), "\n"))
	}
	if sent, err := adv.result(); err != nil || sent < 10 {
		t.Fatalf("advertiser sent %d adverts, error %v", sent, err)
	}

	// Bow-out: ucarp treats a master advertising at 255/255 as timed out
	// and takes over at once.
	adv.Stop()
	mark = p.Len()
	rawBowOut(t, tr)
	if _, _, err := p.WaitLine(mark, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(mark, "UPSCRIPT", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}

	// ucarp's adverts verify with our codec and authenticator.
	for range 2 {
		pkt, a := rawNextCARP(t, tr, u.v4)
		if pkt.TTL != 255 || pkt.Dst != rawGroup4 || pkt.IfIndex != g.ifindex {
			t.Errorf("ucarp advert metadata %+v, want TTL 255 to %v on ifindex %d", pkt, rawGroup4, g.ifindex)
		}
		if a.VHID != rawUcarpVHID || a.AdvBase != 1 || a.AdvSkew != 100 || a.Demote != 0 {
			t.Errorf("ucarp advert %+v, want vhid 1, advbase 1, advskew 100, demote 0", a)
		}
		if err := auth.Verify(a); err != nil {
			t.Errorf("ucarp advert does not verify: %v", err)
		}
		wrong, err := carp.NewAuthenticator([]byte("wrong"), rawUcarpVHID, []netip.Addr{rawUcarpVIP})
		if err != nil {
			t.Fatal(err)
		}
		if err := wrong.Verify(a); !errors.Is(err, carp.ErrAuth) {
			t.Errorf("ucarp advert verifies with the wrong password: %v", err)
		}
	}

	// Faster adverts from us make the MASTER ucarp step down (no preempt
	// needed: a master yields to a faster one).
	mark = p.Len()
	adv = rawAdvertise(t, tr, rawUcarpPass, 0, 300*time.Millisecond)
	if _, _, err := p.WaitLine(mark, "Switching to state: BACKUP", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(mark, "DOWNSCRIPT", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}

	// Silence (a crash, no bow-out): ucarp takes over after its
	// master-down interval.
	adv.Stop()
	mark = p.Len()
	if _, _, err := p.WaitLine(mark, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(mark, "UPSCRIPT", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if sent, err := adv.result(); err != nil {
		t.Fatalf("advertiser: %d sent, %v", sent, err)
	}
}

// TestUcarpWrongPassword: adverts with another password are rejected by
// ucarp ("Bad digest") and it becomes MASTER although they are faster.
func TestUcarpWrongPassword(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ucarp", "go")
	u, g := nodes[0], nodes[1]
	tr := rawOpen(t, g.ns, g.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
	rawAdvertise(t, tr, []byte("not-the-secret"), 0, 300*time.Millisecond)
	p := rawStartUcarp(t, u, 100)
	if _, _, err := p.WaitLine(0, "Bad digest", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(0, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(0, "UPSCRIPT", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestTsharkDecodesOurAdverts: tshark's CARP dissector (as a heuristic,
// tried first) decodes the adverts a RawTransport sends, IPv4 and IPv6, with
// the fields we put in and a good checksum.
func TestTsharkDecodesOurAdverts(t *testing.T) {
	t.Parallel()
	tshark := netns.RequireBinary(t, "tshark")
	tp, nodes := rawLAN(t, "a", "b")
	a := nodes[0]
	tr := rawOpen(t, a.ns, a.ifname, nil)
	const perFamily = 3
	c := tp.Switch().StartCapture("lan", 2*perFamily, "ip proto 112 or ip6 proto 112")
	auth, err := carp.NewAuthenticator(rawUcarpPass, 42, []netip.Addr{rawUcarpVIP})
	if err != nil {
		t.Fatal(err)
	}
	for i := range perFamily {
		for _, f := range []carp.Family{carp.IPv4, carp.IPv6} {
			adv := carp.Advertisement{VHID: 42, AdvSkew: 17, AdvBase: 2, Demote: 3, Counter: uint64(i)}
			auth.Sign(&adv)
			b, _ := adv.MarshalBinary()
			if err := tr.Send(f, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Wait(rawWait); err != nil {
		t.Fatal(err)
	}
	fields := func(decode ...string) []string {
		t.Helper()
		args := append([]string{"-r", c.Path}, decode...)
		args = append(args, "-T", "fields", "-E", "separator=,",
			"-e", "ip.ttl", "-e", "ip.dsfield", "-e", "ipv6.hlim",
			"-e", "carp.version", "-e", "carp.type", "-e", "carp.vhid", "-e", "carp.advskew",
			"-e", "carp.adver_int", "-e", "carp.demotion", "-e", "carp.authlen", "-e", "carp.checksum.status")
		cmd := exec.Command(tshark, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	// Columns: ttl, tos, hop limit, then the CARP fields; checksum status
	// 1 = good. tshark 4.0 registers the CARP heuristic for IPv4 only, so
	// the IPv6 adverts are checked with decode-as.
	v4 := "255,0x10,,2,1,42,17,2,3,7,1"
	v6 := ",,255,2,1,42,17,2,3,7,1"
	for _, tt := range []struct {
		name   string
		decode []string
		want   []string
	}{
		{"ipv4 heuristic first", []string{"-o", "ip.try_heuristic_first:TRUE", "-Y", "ip"}, []string{v4}},
		{"ipv6 decode as carp", []string{"-d", "ip.proto==112,carp", "-Y", "ipv6"}, []string{v6}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for range perFamily {
				want = append(want, tt.want...)
			}
			if diff := cmp.Diff(want, fields(tt.decode...)); diff != "" {
				t.Errorf("tshark fields (-want +got):\n%s", diff)
			}
		})
	}
}

// rawStartKeepalived runs keepalived 2.2.7 (VRRP only, foreground,
// logging to the console) in node n with the given vrrp_instance blocks.
// Cleanup kills its whole process group: parent and VRRP child (docs/interop.md,
// "keepalived's two processes").
func rawStartKeepalived(t *testing.T, n *rawNode, instances string) *netns.Process {
	t.Helper()
	netns.RequireBinary(t, "keepalived")
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	err := os.WriteFile(conf, []byte("global_defs {\n  router_id gocarp-test\n  vrrp_garp_master_delay 0\n}\n"+instances), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return n.ns.Start("keepalived", "-n", "-l", "-D", "-P", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
}

// TestKeepalivedVRRPIsNotCARP: keepalived's VRRPv2 and VRRPv3 adverts
// (IPv4 and IPv6) on the same bridge reach a RawTransport, and the codec
// classifies every one of them as VRRP, never as CARP.
func TestKeepalivedVRRPIsNotCARP(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "go")
	k, g := nodes[0], nodes[1]
	tr := rawOpen(t, g.ns, g.ifname, nil)

	rawStartKeepalived(t, k, `vrrp_instance v3four {
  version 3
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.77.0.201/24
  }
}
vrrp_instance v2four {
  version 2
  state BACKUP
  interface eth0
  virtual_router_id 2
  priority 100
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass secret
  }
  virtual_ipaddress {
    10.77.0.202/24
  }
}
vrrp_instance v3six {
  version 3
  state BACKUP
  interface eth0
  virtual_router_id 3
  priority 100
  advert_int 1
  virtual_ipaddress {
    fd77::203/64
  }
}
`)

	// Wait for an advert of each instance: VRID in byte 1, version in the
	// high nibble of byte 0, family from the transport.
	type key struct {
		fam     carp.Family
		version byte
		vrid    byte
	}
	want := map[key]bool{{carp.IPv4, 3, 1}: true, {carp.IPv4, 2, 2}: true, {carp.IPv6, 3, 3}: true}
	seen := map[key]bool{}
	for len(seen) < len(want) {
		p := tr.next(t, func(p carp.Packet) bool { return p.Src == k.v4 || p.Src == k.ll })
		if len(p.Payload) < 2 {
			t.Fatalf("short packet from keepalived: % x", p.Payload)
		}
		var adv carp.Advertisement
		err := adv.UnmarshalBinary(p.Payload)
		if !errors.Is(err, carp.ErrVRRP) {
			t.Fatalf("keepalived packet % x decoded as %+v, %v; want ErrVRRP", p.Payload, adv, err)
		}
		kk := key{p.Family, p.Payload[0] >> 4, p.Payload[1]}
		if !want[kk] {
			t.Fatalf("unexpected keepalived packet %+v: % x", kk, p.Payload)
		}
		if p.TTL != 255 {
			t.Errorf("keepalived packet %+v with TTL %d", kk, p.TTL)
		}
		seen[kk] = true
	}
}

// TestMLDSnoopingQuerier reproduces a lab pitfall (docs/interop.md, "MLD
// snooping"): with multicast
// snooping and an active MLD querier on the bridge, a host that did not join
// ff02::12 stops receiving IPv6 adverts, while the RawTransport, which joins
// the group, keeps receiving all of them. Without the querier the same
// host sees them (everything is flooded), which shows the probe works.
func TestMLDSnoopingQuerier(t *testing.T) {
	t.Parallel()
	netns.RequireBinary(t, "tcpdump")
	netns.RequireBinary(t, "ping")
	tp, nodes := rawLAN(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ta := rawOpen(t, a.ns, a.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv6}})
	tb := rawOpen(t, b.ns, b.ifname, &carp.RawConfig{Families: []carp.Family{carp.IPv6}})

	// One probe on c, which never joins ff02::12: tcpdump prints every
	// IPv6 advert that reaches c's port.
	probe := c.ns.Start("tcpdump", "-i", c.ifname, "-n", "-l", "--immediate-mode",
		"ip6 proto 112 or (icmp6 and ip6[40] == 128)")
	if _, _, err := probe.WaitLine(0, "listening on", rawWait); err != nil {
		t.Fatal(err)
	}

	// round sends n adverts from a, then an echo request to ff02::1 (never
	// snooped, always flooded) as a marker. Frames from a to c keep their
	// order through the bridge, so c has seen every advert forwarded to it
	// once it sees the marker. It returns how many adverts c saw and checks
	// that b received all of them.
	counter := uint64(0)
	round := func(t *testing.T, n int) int {
		t.Helper()
		mark := probe.Len()
		var sent [][]byte
		for range n {
			counter++
			b := rawPayload(t, 5, 0, counter)
			sent = append(sent, b)
			if err := ta.Send(carp.IPv6, b); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			p := tb.next(t, func(p carp.Packet) bool { return p.Src == a.ll })
			if string(p.Payload) != string(sent[i]) {
				t.Fatalf("b: advert %d is % x, want % x", i, p.Payload, sent[i])
			}
		}
		a.ns.Run("ping", "-6", "-c", "1", "-W", "1", "-I", a.ifname, "ff02::1")
		_, idx, err := probe.WaitLine(mark, "echo request", rawWait)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, l := range probe.Output()[mark:idx] {
			if strings.Contains(l, " > ff02::12: ") { // tcpdump prints CARP as VRRPv2
				seen++
			}
		}
		return seen
	}

	const n = 5
	if seen := round(t, n); seen != n {
		t.Fatalf("without a querier c saw %d of %d adverts, want all (flooded)", seen, n)
	}

	tp.EnableQuerier("lan")
	if out := tp.Switch().Run("bridge", "mdb", "show", "dev", "lan"); !strings.Contains(out, "ff02::12") {
		t.Fatalf("b's membership of ff02::12 is not in the bridge MDB:\n%s", out)
	}
	// After enabling its querier the bridge keeps flooding for one query
	// response interval (0.5 s here), a kernel timer with no notification:
	// repeat rounds until c stops seeing adverts. b must get every advert
	// in every round; c must eventually see none.
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for i := 1; ; i++ {
		seen := round(t, n)
		if seen == 0 {
			t.Logf("snooping in effect after %d rounds", i)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with an active querier c (not a member) still saw %d of %d adverts after %d rounds", seen, n, i)
		}
		<-poll.C
	}
	// And it stays that way.
	if seen := round(t, n); seen != 0 {
		t.Errorf("c saw %d adverts after snooping took effect", seen)
	}
}

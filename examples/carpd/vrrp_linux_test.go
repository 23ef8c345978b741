package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// carpdVRRP starts carpd on node name with --protocol vrrp3 (no password),
// the event scripts and extra flags.
func (tb *testbed) carpdVRRP(name string, extra ...string) *netns.Process {
	tb.t.Helper()
	n := tb.nodes[name]
	up, down := tb.scripts(false)
	args := []string{"-i", "eth0", "-s", n.ip.String(), "-v", testVHID, "--protocol", "vrrp3",
		"--advert-int", "200ms", "-a", testVIP.String(), "-u", up, "-d", down, "-x", name}
	return n.ns.Start(carpdBin, append(args, extra...)...)
}

// keepalived starts keepalived 2.2.7 on node name with one VRRPv3
// instance "v" for the carpd group (VRID testVHID, testVIP, 200 ms).
func (tb *testbed) keepalived(name, state string, prio int) *netns.Process {
	tb.t.Helper()
	netns.RequireBinary(tb.t, "keepalived")
	dir := tb.t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`global_defs {
  router_id gocarp-carpd
  vrrp_garp_master_delay 0
}
vrrp_instance v {
  version 3
  state %s
  interface eth0
  virtual_router_id %s
  priority %d
  advert_int 0.2
  virtual_ipaddress {
    %v/24
  }
}
`, state, testVHID, prio, testVIP)), 0o644)
	if err != nil {
		tb.t.Fatal(err)
	}
	// The namespace's cleanup kills keepalived's process group: parent
	// and VRRP child.
	return tb.nodes[name].ns.Start("keepalived", "-n", "-l", "-D", "-P", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
}

// TestVRRPKeepalived: carpd --protocol vrrp3 and keepalived form one
// virtual router. carpd at priority 200 is master and keepalived backup;
// carpd's SIGTERM sends priority 0 and keepalived takes over; carpd back at
// priority 100 stays backup; keepalived's SIGTERM hands the address back
// (carpd logs the bow-out).
func TestVRRPKeepalived(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "k")
	a := tb.carpdVRRP("a", "--priority", "200", "-P")
	tb.waitEvent(0, "a up")
	k := tb.keepalived("k", "BACKUP", 100)
	if _, _, err := k.WaitLine(0, "(v) Entering BACKUP STATE", stateTimeout); err != nil {
		t.Fatal(err)
	}
	tb.obs.waitVRRP(t, tb.nodes["a"].ip, 15) // 3 s: keepalived's master-down is 0.66 s
	if n := k.Count(0, "Entering MASTER STATE"); n != 0 {
		t.Fatalf("keepalived became MASTER under carpd at priority 200:\n%s", strings.Join(k.Output(), "\n"))
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.WaitLine(0, "(v) Backup received priority 0 advertisement", stateTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.WaitLine(0, "(v) Entering MASTER STATE", stateTimeout); err != nil {
		t.Fatal(err)
	}
	waitExit(t, a, syscall.SIGTERM)

	from := len(tb.eventLines())
	a = tb.carpdVRRP("a")
	tb.waitEvent(from, "a down")
	tb.obs.waitVRRP(t, tb.nodes["k"].ip, 10)
	if n := tb.countEvent("a up"); n != 1 {
		t.Fatalf("carpd at priority 100 ran its upscript under keepalived at 100 (equal priority, lower address); events %q", tb.eventLines())
	}
	s := stats(t, a)
	if atoi(t, s, "badauth") != 0 || atoi(t, s, "badsum") != 0 || atoi(t, s, "badlen") != 0 || atoi(t, s, "badver") != 0 {
		t.Errorf("carpd dropped keepalived's adverts: %v", s)
	}
	aFrom := a.Len()
	if err := k.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	tb.waitEvent(from, "a up")
	line, _, err := a.WaitLine(aFrom, "state=MASTER", stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, `reason="bow-out received"`) {
		t.Errorf("carpd became MASTER with %q, want the bow-out (priority 0) as reason", line)
	}
	select {
	case <-k.Done():
	case <-time.After(stateTimeout):
		t.Fatal("keepalived did not exit after SIGTERM")
	}
}

// TestVRRPNoAccept: carpd --protocol vrrp3 --no-accept --manage-vip, as
// MASTER, holds the address and answers ARP for it, but a ping to it gets
// no answer (keepalived's no_accept); the rule is in place from start-up
// and gone after exit.
func TestVRRPNoAccept(t *testing.T) {
	netns.RequireBinary(t, "nft")
	netns.RequireBinary(t, "ping")
	tb := newTestbed(t, "a")
	p := tb.carpdVRRP("a", "--no-accept", "--manage-vip")
	tb.waitEvent(0, "a up")
	tb.waitVIP("a", true)
	a, obs := tb.nodes["a"].ns, tb.nodes["obs"].ns
	if _, err := a.Output("nft", "list", "table", "inet", "gocarp_noaccept_"+testVHID); err != nil {
		t.Fatalf("no-accept table missing while carpd runs: %v", err)
	}
	if out, err := obs.Output("ping", "-c", "1", "-W", "1", testVIP.String()); err == nil {
		t.Errorf("ping %v answered with --no-accept:\n%s", testVIP, out)
	}
	if out := obs.IP("neigh", "show", testVIP.String()); !strings.Contains(out, "lladdr") {
		t.Errorf("observer did not resolve %v (ARP must still be answered): %q", testVIP, out)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Errorf("carpd exited with %v", err)
	}
	if out, err := a.Output("nft", "list", "table", "inet", "gocarp_noaccept_"+testVHID); err == nil {
		t.Errorf("no-accept table left after exit:\n%s", out)
	}
}

package carp_test

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// The VRRPv3 interop tests run a dual-stack VRRPv3 Group against keepalived
// 2.2.7 on one bridge. keepalived runs one VRRP instance per family, both
// with VRID kaVRID; the Group runs both families in one group.
const (
	kaVRID     = 5
	kaInterval = 500 * time.Millisecond
)

// kaConf returns keepalived's vrrp_instance blocks "four" and "six" at the
// given priority and initial state, with the Group's addresses; families,
// if given, restrict them to those families.
func kaConf(state string, prio int, families ...carp.Family) string {
	if len(families) == 0 {
		families = []carp.Family{carp.IPv4, carp.IPv6}
	}
	var b strings.Builder
	for _, f := range families {
		name, vip := "four", grpVIP4.String()+"/24"
		if f == carp.IPv6 {
			name, vip = "six", grpVIP6.String()+"/64"
		}
		fmt.Fprintf(&b, `vrrp_instance %s {
  version 3
  state %s
  interface eth0
  virtual_router_id %d
  priority %d
  advert_int %v
  virtual_ipaddress {
    %s
  }
}
`, name, state, kaVRID, prio, kaInterval.Seconds(), vip)
	}
	return b.String()
}

// kaGroup starts a VRRPv3 Group in node n at the given priority, with the
// addresses of the given families (both if none).
func kaGroup(t *testing.T, n *rawNode, prio uint8, startAsMaster bool, families ...carp.Family) *grpNode {
	t.Helper()
	var addrs []netip.Addr
	if len(families) == 0 {
		families = []carp.Family{carp.IPv4, carp.IPv6}
	}
	for _, f := range families {
		if f == carp.IPv4 {
			addrs = append(addrs, grpVIP4)
		} else {
			addrs = append(addrs, grpVIP6)
		}
	}
	return grpStart(t, n, carp.Config{
		VHID: kaVRID, Protocol: carp.ProtocolVRRPv3, Priority: prio, AdvertInterval: kaInterval,
		Addrs: addrs, Preempt: true, StartAsMaster: startAsMaster, Password: []byte{},
	}, &carp.RawConfig{Families: families})
}

// kaWait waits for keepalived to log line (from output line mark on) for
// each instance name given.
func kaWait(t *testing.T, k *netns.Process, mark int, what string, instances ...string) {
	t.Helper()
	for _, inst := range instances {
		if _, _, err := k.WaitLine(mark, "("+inst+") "+what, grpWait); err != nil {
			t.Fatal(err)
		}
	}
}

// kaClean checks that the Group dropped none of keepalived's adverts as
// malformed, for another VRID or with other addresses.
func kaClean(t *testing.T, gn *grpNode) {
	t.Helper()
	s := gn.g.Stats()
	if bad := s.Badauth + s.Badsum + s.Badlen + s.Hdrops + s.Badver + s.Badvhid + s.Badttl + s.VRRPv2 + s.CARP; bad != 0 {
		t.Errorf("%s dropped keepalived's adverts: %+v", gn.ns.Short, s)
	}
}

// kaSent waits until gn has sent n more adverts on IPv4: an observation
// window counted in adverts, not a synchronisation.
func kaSent(t *testing.T, gn *grpNode, n uint64) {
	t.Helper()
	base := gn.g.Stats().Opackets
	grpWaitFor(t, fmt.Sprintf("%d adverts from %s", n, gn.ns.Short), func() bool { return gn.g.Stats().Opackets >= base+n })
}

// TestKeepalivedVRRPv3GocarpMaster: a Group of priority 200 is master,
// keepalived (priority 100, both families) stays backup while it hears our
// adverts, and takes over both families when the Group closes (priority 0,
// then keepalived's skew time).
func TestKeepalivedVRRPv3GocarpMaster(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "go", "ka")
	g := kaGroup(t, nodes[0], 200, true)
	g.await(t, 0, carp.Master)
	k := rawStartKeepalived(t, nodes[1], kaConf("BACKUP", 100))
	kaWait(t, k, 0, "Entering BACKUP STATE", "four", "six")
	kaSent(t, g, 10)
	if n := k.Count(0, "Entering MASTER STATE"); n != 0 {
		t.Fatalf("keepalived became MASTER while we advertised priority 200:\n%s", strings.Join(k.Output(), "\n"))
	}
	grpHeard(t, g, carp.IPv4, 0)
	kaClean(t, g)
	mark := k.Len()
	if err := g.g.Close(); err != nil {
		t.Fatal(err)
	}
	kaWait(t, k, mark, "Backup received priority 0 advertisement", "four", "six")
	kaWait(t, k, mark, "Entering MASTER STATE", "four", "six")
}

// TestKeepalivedVRRPv3KeepalivedMaster: keepalived (priority 200) is master
// and the Group (priority 100) stays backup on both families; keepalived's
// graceful stop (SIGTERM: priority 0) hands over after the skew time, with
// the reason of a bow-out.
func TestKeepalivedVRRPv3KeepalivedMaster(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "go")
	k := rawStartKeepalived(t, nodes[0], kaConf("MASTER", 200))
	kaWait(t, k, 0, "Entering MASTER STATE", "four", "six")
	g := kaGroup(t, nodes[1], 100, false)
	g.await(t, 0, carp.Backup)
	grpHeard(t, g, carp.IPv4, 10)
	grpHeard(t, g, carp.IPv6, 2)
	if n := g.count(0, carp.Master); n != 0 {
		t.Fatalf("the group became MASTER under keepalived at priority 200: %s", g.describe())
	}
	kaClean(t, g)
	mark := g.mark()
	if err := k.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.await(t, mark, carp.Master, carp.ReasonBowOut)
}

// TestKeepalivedVRRPv3Crash: keepalived, master, is killed (no priority 0):
// the Group takes over when its master-down interval runs out.
func TestKeepalivedVRRPv3Crash(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "go")
	k := rawStartKeepalived(t, nodes[0], kaConf("MASTER", 200))
	kaWait(t, k, 0, "Entering MASTER STATE", "four", "six")
	g := kaGroup(t, nodes[1], 100, false)
	g.await(t, 0, carp.Backup)
	grpHeard(t, g, carp.IPv4, 4)
	mark := g.mark()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	g.await(t, mark, carp.Master, carp.ReasonMasterTimedOut)
}

// TestKeepalivedVRRPv3Preemption: a Group of higher priority joining
// keepalived's virtual router takes over (both preempt), and keepalived
// goes back to backup on both families.
func TestKeepalivedVRRPv3Preemption(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "go")
	k := rawStartKeepalived(t, nodes[0], kaConf("MASTER", 100))
	kaWait(t, k, 0, "Entering MASTER STATE", "four", "six")
	mark := k.Len()
	g := kaGroup(t, nodes[1], 200, false)
	g.await(t, 0, carp.Master, carp.ReasonPreempt)
	kaWait(t, k, mark, "Entering BACKUP STATE", "four", "six")
	kaClean(t, g)

	// And back: keepalived at a higher priority preempts the Group.
	mark = g.mark()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	k = rawStartKeepalived(t, nodes[0], kaConf("BACKUP", 250))
	g.await(t, mark, carp.Backup, carp.ReasonMoreFrequent)
	kaWait(t, k, 0, "Entering MASTER STATE", "four", "six")
}

// TestKeepalivedVRRPv3EqualPriority: two masters of equal priority (IPv4)
// settle on the one with the higher primary address, both when it is the
// Group and when it is keepalived.
func TestKeepalivedVRRPv3EqualPriority(t *testing.T) {
	t.Parallel()
	for _, groupHigher := range []bool{true, false} {
		name := "group has the higher address"
		if !groupHigher {
			name = "keepalived has the higher address"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			names := []string{"ka", "go"} // 10.77.0.1, 10.77.0.2
			if !groupHigher {
				names = []string{"go", "ka"}
			}
			_, nodes := rawLAN(t, names...)
			kn, gnode := nodes[0], nodes[1]
			if !groupHigher {
				kn, gnode = nodes[1], nodes[0]
			}
			k := rawStartKeepalived(t, kn, kaConf("MASTER", 100, carp.IPv4))
			kaWait(t, k, 0, "Entering MASTER STATE", "four")
			mark := k.Len()
			g := kaGroup(t, gnode, 100, true, carp.IPv4)
			g.await(t, 0, carp.Master)
			if groupHigher {
				kaWait(t, k, mark, "Entering BACKUP STATE", "four")
				kaSent(t, g, 6)
				if n := g.count(0, carp.Backup); n != 0 {
					t.Fatalf("the group, of higher address, yielded: %s", g.describe())
				}
				return
			}
			g.await(t, 0, carp.Backup, carp.ReasonMoreFrequent)
			grpHeard(t, g, carp.IPv4, 6)
			if n := k.Count(mark, "Entering BACKUP STATE"); n != 0 {
				t.Fatalf("keepalived, of higher address, yielded:\n%s", strings.Join(k.Output(), "\n"))
			}
			if n := g.count(0, carp.Master); n != 1 {
				t.Fatalf("the group became MASTER again: %s", g.describe())
			}
		})
	}
}

// TestKeepalivedVRRPv3Unicast: keepalived with unicast_peer and a Group
// with RawConfig.Peer4 exchange unicast VRRPv3 adverts (the checksum then
// covers the unicast destination): keepalived's graceful stop hands over,
// and the Group's in turn.
func TestKeepalivedVRRPv3Unicast(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "go")
	kn, gnode := nodes[0], nodes[1]
	conf := strings.Replace(kaConf("MASTER", 200, carp.IPv4), "  virtual_ipaddress {",
		fmt.Sprintf("  unicast_src_ip %v\n  unicast_peer {\n    %v\n  }\n  virtual_ipaddress {", kn.v4, gnode.v4), 1)
	k := rawStartKeepalived(t, kn, conf)
	kaWait(t, k, 0, "Entering MASTER STATE", "four")
	g := grpStart(t, gnode, carp.Config{
		VHID: kaVRID, Protocol: carp.ProtocolVRRPv3, Priority: 100, AdvertInterval: kaInterval,
		Addrs: []netip.Addr{grpVIP4}, Preempt: true, Password: []byte{},
	}, &carp.RawConfig{Families: []carp.Family{carp.IPv4}, Peer4: kn.v4})
	g.await(t, 0, carp.Backup)
	grpHeard(t, g, carp.IPv4, 6)
	if n := g.count(0, carp.Master); n != 0 {
		t.Fatalf("the group became MASTER under keepalived at priority 200: %s", g.describe())
	}
	kaClean(t, g)
	mark := g.mark()
	kmark := k.Len()
	if err := k.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.await(t, mark, carp.Master, carp.ReasonBowOut)
	select {
	case <-k.Done():
	case <-time.After(grpWait):
		t.Fatalf("keepalived did not exit after SIGTERM:\n%s", strings.Join(k.Output()[kmark:], "\n"))
	}

	// keepalived back as a backup of lower priority: it follows our
	// unicast adverts, and takes over when the Group closes.
	k = rawStartKeepalived(t, kn, strings.NewReplacer("priority 200", "priority 50", "state MASTER", "state BACKUP").Replace(conf))
	kaWait(t, k, 0, "Entering BACKUP STATE", "four")
	kaSent(t, g, 6)
	if n := k.Count(0, "Entering MASTER STATE"); n != 0 {
		t.Fatalf("keepalived became MASTER while we advertised priority 100 to it:\n%s", strings.Join(k.Output(), "\n"))
	}
	mark = k.Len()
	if err := g.g.Close(); err != nil {
		t.Fatal(err)
	}
	kaWait(t, k, mark, "Backup received priority 0 advertisement", "four")
	kaWait(t, k, mark, "Entering MASTER STATE", "four")
}

// TestKeepalivedVRRPv3ThreeNodes: two keepalived (priorities 254 and 10)
// and a Group at 240 in one virtual router, as when an operator replaces
// one node of a keepalived pair by gocarp. When the keepalived master stops
// (priority 0), the Group, of the higher backup priority and so the
// shorter skew time, takes over and the other keepalived stays backup;
// when the Group closes, that keepalived takes over. The priorities are far
// apart so that the skew times differ by much more than scheduling delays
// (31 ms against 480 ms at 500 ms adverts).
func TestKeepalivedVRRPv3ThreeNodes(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka1", "ka2", "go")
	k1 := rawStartKeepalived(t, nodes[0], kaConf("MASTER", 254))
	kaWait(t, k1, 0, "Entering MASTER STATE", "four", "six")
	k2 := rawStartKeepalived(t, nodes[1], kaConf("BACKUP", 10))
	kaWait(t, k2, 0, "Entering BACKUP STATE", "four", "six")
	g := kaGroup(t, nodes[2], 240, false)
	g.await(t, 0, carp.Backup)
	grpHeard(t, g, carp.IPv4, 6)
	if n := g.count(0, carp.Master); n != 0 {
		t.Fatalf("the group became MASTER under keepalived at priority 254: %s", g.describe())
	}
	kaClean(t, g)

	mark, k2mark := g.mark(), k2.Len()
	if err := k1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.await(t, mark, carp.Master, carp.ReasonBowOut)
	kaWait(t, k2, k2mark, "Backup received priority 0 advertisement", "four", "six")
	kaSent(t, g, 6)
	if n := k2.Count(k2mark, "Entering MASTER STATE"); n != 0 {
		t.Fatalf("keepalived at priority 10 became MASTER beside the group at 240:\n%s", strings.Join(k2.Output(), "\n"))
	}
	if n := g.count(mark, carp.Backup); n != 0 {
		t.Fatalf("the group left MASTER: %s", g.describe())
	}

	k2mark = k2.Len()
	if err := g.g.Close(); err != nil {
		t.Fatal(err)
	}
	kaWait(t, k2, k2mark, "Entering MASTER STATE", "four", "six")
}

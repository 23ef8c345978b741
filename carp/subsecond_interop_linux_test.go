package carp_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/carp"
)

// TestUcarpAdvbaseZero shows what docs/sub-second.md says of ucarp and
// sub-second CARP, against a gocarp master advertising with advbase 0
// every 13/256 s (51 ms):
//
//   - ucarp at advbase 0 (-b 0 -k 26) cannot follow it: its master-down
//     interval is one advert interval (26/256 s), and it reads packets in
//     batches, so it becomes MASTER between two batches although the
//     master is alive, and BACKUP again when the batch arrives. If a ucarp
//     release ever follows, this test fails and the document must change.
//   - ucarp at advbase 1 (-k 100) is a correct, slow backup: it stays
//     BACKUP while the master advertises, and takes over at once on the
//     master's bow-out; as MASTER it is replaced by a sub-second gocarp
//     backup, which times out between two of its adverts.
func TestUcarpAdvbaseZero(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ucarp", "go")
	u, g := nodes[0], nodes[1]
	gm := grpStart(t, g, carp.Config{
		VHID: rawUcarpVHID, Addrs: []netip.Addr{rawUcarpVIP}, Password: rawUcarpPass,
		AdvBase: 0, ZeroAdvBase: true, AdvSkew: 13, StartAsMaster: true,
	}, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
	gm.await(t, 0, carp.Master, carp.ReasonStartAsMaster)

	// ucarp at advbase 0 takes over from the live master, and yields
	// again (rawStartUcarp returns once ucarp is BACKUP).
	p := rawStartUcarp(t, u, 26, "-b", "0")
	_, i, err := p.WaitLine(0, "Switching to state: MASTER", rawUcarpTimeout)
	if err != nil {
		t.Fatalf("ucarp -b 0 stayed BACKUP under a faster live master: %v\n%s", err, strings.Join(p.Output(), "\n"))
	}
	if _, _, err := p.WaitLine(i+1, "Switching to state: BACKUP", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Logf("stopping ucarp: %v", err)
	}
	if n := gm.count(0, carp.Backup); n != 0 {
		t.Fatalf("the gocarp master yielded to ucarp's slower adverts: %s", gm.describe())
	}

	// ucarp at advbase 1 stays BACKUP, then takes over on the bow-out.
	p = rawStartUcarp(t, u, 100)
	mark := p.Len()
	rawUcarpWindow(t, p)
	if n := p.Count(mark, "Switching to state: MASTER"); n != 0 {
		t.Fatalf("ucarp at advbase 1 became MASTER under a sub-second master:\n%s", strings.Join(p.Output(), "\n"))
	}
	if err := gm.g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.WaitLine(mark, "Switching to state: MASTER", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}

	// A sub-second gocarp backup replaces the MASTER ucarp at advbase 1
	// without preempt: it times out between two of ucarp's adverts, and
	// ucarp yields to its faster ones.
	mark = p.Len()
	gb := grpStart(t, g, carp.Config{
		VHID: rawUcarpVHID, Addrs: []netip.Addr{rawUcarpVIP}, Password: rawUcarpPass,
		AdvBase: 0, ZeroAdvBase: true, AdvSkew: 13,
	}, &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
	gb.await(t, 0, carp.Master, carp.ReasonMasterTimedOut)
	if _, _, err := p.WaitLine(mark, "Switching to state: BACKUP", rawUcarpTimeout); err != nil {
		t.Fatal(err)
	}
}

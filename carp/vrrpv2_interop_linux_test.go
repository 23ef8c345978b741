package carp_test

import (
	"strings"
	"testing"

	"github.com/gocarp/gocarp/carp"
)

// TestKeepalivedVRRPv2NotObeyed: keepalived in VRRPv2 mode (its default
// "version 2"), master at a higher priority, shares the VRID with a VRRPv3
// Group. The Group recognises keepalived's adverts, counts them
// (Stats.VRRPv2) and does not obey them: with no VRRPv3 master heard it
// takes over when its master-down interval runs out. VRRPv2 and VRRPv3
// routers do not form one virtual router (docs/interop.md, "VRRPv2").
func TestKeepalivedVRRPv2NotObeyed(t *testing.T) {
	t.Parallel()
	_, nodes := rawLAN(t, "ka", "go")
	conf := strings.Replace(kaConf("MASTER", 200, carp.IPv4), "version 3", "version 2", 1)
	if !strings.Contains(conf, "version 2") {
		t.Fatalf("keepalived configuration without version 2:\n%s", conf)
	}
	k := rawStartKeepalived(t, nodes[0], conf)
	kaWait(t, k, 0, "Entering MASTER STATE", "four")
	g := kaGroup(t, nodes[1], 100, false, carp.IPv4)
	// Obeyed, keepalived's priority 200 would keep the Group (100) BACKUP.
	g.await(t, 0, carp.Master, carp.ReasonMasterTimedOut)
	s := g.g.Stats()
	if s.VRRPv2 == 0 {
		t.Errorf("no VRRPv2 advert counted while keepalived v2 was master: %+v", s)
	}
}

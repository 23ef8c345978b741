package metrics_test

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/metrics"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
)

// TestFollower promotes a Follower over the viptest fakes and reads its
// collector.
func TestFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &viptest.Recorder{}
		f, err := vip.NewFollower(vip.Config{
			VHID:      4,
			Addrs:     vip.Host(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")),
			Manager:   viptest.NewAddrManager(rec, netip.MustParsePrefix("192.0.2.1/24")),
			Announcer: viptest.NewAnnouncer(rec),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		c := metrics.NewFollower(4, f)
		f.Handle(carp.Transition{VHID: 4, From: carp.Backup, To: carp.Master, Reason: carp.ReasonMasterTimedOut})
		synctest.Wait()
		compare(t, c, `
# HELP gocarp_vip_state 1 for the group state the follower last applied (init, backup or master), 0 for the others.
# TYPE gocarp_vip_state gauge
gocarp_vip_state{state="backup",vhid="4"} 0
gocarp_vip_state{state="init",vhid="4"} 0
gocarp_vip_state{state="master",vhid="4"} 1
# HELP gocarp_vip_installs_total Addresses added on promotion.
# TYPE gocarp_vip_installs_total counter
gocarp_vip_installs_total{vhid="4"} 2
# HELP gocarp_vip_withdrawals_total Addresses removed (demotion, start-up, close, reconciliation).
# TYPE gocarp_vip_withdrawals_total counter
gocarp_vip_withdrawals_total{vhid="4"} 0
# HELP gocarp_vip_repairs_total Addresses re-added by reconciliation while master (something removed them).
# TYPE gocarp_vip_repairs_total counter
gocarp_vip_repairs_total{vhid="4"} 0
# HELP gocarp_vip_announcement_rounds_total Rounds of gratuitous ARP and unsolicited neighbour adverts.
# TYPE gocarp_vip_announcement_rounds_total counter
gocarp_vip_announcement_rounds_total{vhid="4"} 1
# HELP gocarp_vip_errors_total Background errors: failed installs, removals, listings, announcements or BeforeInstall hooks.
# TYPE gocarp_vip_errors_total counter
gocarp_vip_errors_total{vhid="4"} 0
`, "gocarp_vip_state", "gocarp_vip_installs_total", "gocarp_vip_withdrawals_total", "gocarp_vip_repairs_total",
			"gocarp_vip_announcement_rounds_total", "gocarp_vip_errors_total")
	})
}

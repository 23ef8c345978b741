package metrics

import (
	"strconv"

	"github.com/gocarp/gocarp/vip"
	"github.com/prometheus/client_golang/prometheus"
)

// FollowerCollector exports the counters of one vip.Follower. Build it
// with [NewFollower].
type FollowerCollector struct {
	f *vip.Follower
	t table[vip.Stats]
}

// NewFollower returns a collector for f, labelled with the vhid of the
// group it follows (vip.Config.VHID).
func NewFollower(vhid uint8, f *vip.Follower) *FollowerCollector {
	c := &FollowerCollector{f: f}
	l := prometheus.Labels{"vhid": strconv.Itoa(int(vhid))}
	t := &c.t
	state := t.metric(prometheus.GaugeValue, "gocarp_vip_state",
		"1 for the group state the follower last applied (init, backup or master), 0 for the others.", l, "state")
	for _, s := range states {
		state(func(v *vip.Stats) float64 { return boolean(v.State == s) }, stateLabel(s))
	}
	t.counter("gocarp_vip_installs_total", "Addresses added on promotion.", l, func(s *vip.Stats) uint64 { return s.Installs })
	t.counter("gocarp_vip_withdrawals_total", "Addresses removed (demotion, start-up, close, reconciliation).", l, func(s *vip.Stats) uint64 { return s.Withdrawals })
	t.counter("gocarp_vip_repairs_total", "Addresses re-added by reconciliation while master (something removed them).", l, func(s *vip.Stats) uint64 { return s.Repairs })
	t.counter("gocarp_vip_announcement_rounds_total", "Rounds of gratuitous ARP and unsolicited neighbour adverts.", l, func(s *vip.Stats) uint64 { return s.Announcements })
	t.counter("gocarp_vip_reconciles_total", "Reconciliation passes over the interface's addresses.", l, func(s *vip.Stats) uint64 { return s.Reconciles })
	t.counter("gocarp_vip_errors_total", "Background errors: failed installs, removals, listings, announcements or BeforeInstall hooks.", l, func(s *vip.Stats) uint64 { return s.Errors })
	return c
}

// Describe implements prometheus.Collector.
func (c *FollowerCollector) Describe(ch chan<- *prometheus.Desc) { c.t.describe(ch) }

// Collect implements prometheus.Collector: it reads the follower's Stats
// once.
func (c *FollowerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	c.t.collect(&s, ch)
}

package metrics

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gocarp/gocarp/carp"
	"github.com/prometheus/client_golang/prometheus"
)

// states are the values of the state label, in carp.State order.
var states = []carp.State{carp.Init, carp.Backup, carp.Master}

// stateLabel is the value of the state label: the state in lower case.
func stateLabel(s carp.State) string { return strings.ToLower(s.String()) }

// groupSnapshot is what a Group collector reads at a scrape.
type groupSnapshot struct {
	state    carp.State
	demotion int
	stats    carp.Stats
}

// GroupCollector exports the state and counters of one carp.Group. Build it
// with [NewGroup].
type GroupCollector struct {
	g           *carp.Group
	t           table[groupSnapshot]
	transitions *prometheus.Desc
}

// NewGroup returns a collector for g. Every metric carries the label vhid,
// so the collectors of a node's groups can be registered together.
func NewGroup(g *carp.Group) *GroupCollector {
	c := &GroupCollector{g: g}
	vhid := prometheus.Labels{"vhid": strconv.Itoa(int(g.VHID()))}
	t := &c.t
	state := t.metric(prometheus.GaugeValue, "gocarp_carp_state",
		"1 for the state the group is in (init, backup or master), 0 for the others.", vhid, "state")
	for _, s := range states {
		state(func(g *groupSnapshot) float64 { return boolean(g.state == s) }, stateLabel(s))
	}
	t.gauge("gocarp_carp_demotion", "Demotion the group advertises: the sum over its sources, capped at 255.", vhid,
		func(g *groupSnapshot) float64 { return float64(g.demotion) })
	ival := g.AdvertInterval().Seconds()
	t.gauge("gocarp_carp_advert_interval_seconds", "Interval between adverts while master (advbase + advskew/256).", vhid,
		func(*groupSnapshot) float64 { return ival })
	md := g.MasterDownInterval().Seconds()
	t.gauge("gocarp_carp_master_down_interval_seconds", "How long a backup waits without an advert before it takes over.", vhid,
		func(*groupSnapshot) float64 { return md })

	in := t.metric(prometheus.CounterValue, "gocarp_carp_packets_received_total",
		"Packets received on IP protocol 112, valid or not (carpstats ipackets, ipackets6).", vhid, "family")
	in(u64(func(g *groupSnapshot) uint64 { return g.stats.Ipackets }), "ipv4")
	in(u64(func(g *groupSnapshot) uint64 { return g.stats.Ipackets6 }), "ipv6")
	out := t.metric(prometheus.CounterValue, "gocarp_carp_adverts_sent_total",
		"Adverts sent (carpstats opackets, opackets6).", vhid, "family")
	out(u64(func(g *groupSnapshot) uint64 { return g.stats.Opackets }), "ipv4")
	out(u64(func(g *groupSnapshot) uint64 { return g.stats.Opackets6 }), "ipv6")
	t.counter("gocarp_carp_send_errors_total", "Adverts the transport failed to send (carpstats onomem).", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.Oerrors })

	rej := t.metric(prometheus.CounterValue, "gocarp_carp_rejected_total",
		"Received packets dropped, by the BSD carpstats counter that names the reason.", vhid, "reason")
	for _, r := range []struct {
		name string
		v    func(*carp.Stats) uint64
	}{
		{"badif", func(s *carp.Stats) uint64 { return s.Badif }},
		{"badttl", func(s *carp.Stats) uint64 { return s.Badttl }},
		{"hdrops", func(s *carp.Stats) uint64 { return s.Hdrops }},
		{"badsum", func(s *carp.Stats) uint64 { return s.Badsum }},
		{"badver", func(s *carp.Stats) uint64 { return s.Badver }},
		{"badlen", func(s *carp.Stats) uint64 { return s.Badlen }},
		{"badauth", func(s *carp.Stats) uint64 { return s.Badauth }},
		{"badvhid", func(s *carp.Stats) uint64 { return s.Badvhid }},
		{"badloop", func(s *carp.Stats) uint64 { return s.Badloop }},
		{"replay", func(s *carp.Stats) uint64 { return s.Replay }},
	} {
		rej(u64(func(g *groupSnapshot) uint64 { return r.v(&g.stats) }), r.name)
	}
	t.counter("gocarp_carp_vrrp_packets_total", "VRRP packets seen on protocol 112 and ignored.", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.VRRP })
	t.counter("gocarp_carp_vrrpv2_packets_total", "VRRPv2 adverts a VRRPv3 group received: recognised, counted, not obeyed.", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.VRRPv2 })
	t.counter("gocarp_carp_carp_packets_total", "CARP adverts a VRRPv3 group received and ignored.", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.CARP })
	t.counter("gocarp_carp_preemptions_total", "Changes to master, whatever the reason (carpstats preempt).", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.Preempt })
	t.counter("gocarp_carp_suppressed_answers_total", "Immediate answers to worse adverts not sent because one had just gone out.", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.Suppressed })
	t.counter("gocarp_carp_contested_total", "Adverts of another, worse master this master answered at once (a split brain healing, a backup that missed an advert).", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.Contested })
	t.counter("gocarp_carp_late_timers_total", "Master-down timers that fired so late the process had been stopped; given a second look instead of a takeover.", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.LateTimers })
	t.counter("gocarp_carp_unread_timers_total", "Master-down timers that fired while received packets waited unread; given a second look instead of a takeover.", vhid,
		func(g *groupSnapshot) uint64 { return g.stats.Unread })

	c.transitions = prometheus.NewDesc("gocarp_carp_transitions_total",
		"State changes, by the state entered and the reason carp gives.", []string{"state", "reason"}, vhid)
	return c
}

// Describe implements prometheus.Collector.
func (c *GroupCollector) Describe(ch chan<- *prometheus.Desc) {
	c.t.describe(ch)
	ch <- c.transitions
}

// Collect implements prometheus.Collector: it reads the group's State,
// Demotion, Stats and Transitions once.
func (c *GroupCollector) Collect(ch chan<- prometheus.Metric) {
	s := groupSnapshot{state: c.g.State(), demotion: c.g.Demotion(), stats: c.g.Stats()}
	c.t.collect(&s, ch)
	counts := c.g.Transitions()
	for _, k := range knownTransitions {
		if !slices.ContainsFunc(counts, func(tc carp.TransitionCount) bool { return tc.To == k.To && tc.Reason == k.Reason }) {
			counts = append(counts, k)
		}
	}
	for _, tc := range counts {
		ch <- prometheus.MustNewConstMetric(c.transitions, prometheus.CounterValue, float64(tc.N), stateLabel(tc.To), tc.Reason)
	}
}

// knownTransitions are the changes a Group makes, by state entered and
// reason. They are exported at 0 until they first happen, so that a
// query's rate or increase sees the first one (a series that appears
// already at 1 shows no increase).
var knownTransitions = []carp.TransitionCount{
	{To: carp.Init, Reason: string(carp.ReasonLinkDown)},
	{To: carp.Init, Reason: string(carp.ReasonClosed)},
	{To: carp.Backup, Reason: string(carp.ReasonInit)},
	{To: carp.Backup, Reason: string(carp.ReasonLinkUp)},
	{To: carp.Backup, Reason: string(carp.ReasonMoreFrequent)},
	{To: carp.Backup, Reason: string(carp.ReasonUser)},
	{To: carp.Master, Reason: string(carp.ReasonMasterTimedOut)},
	{To: carp.Master, Reason: string(carp.ReasonPreempt)},
	{To: carp.Master, Reason: string(carp.ReasonDemotedMaster)},
	{To: carp.Master, Reason: string(carp.ReasonWillTimeOut)},
	{To: carp.Master, Reason: string(carp.ReasonBowOut)},
	{To: carp.Master, Reason: string(carp.ReasonSteppedDown)},
	{To: carp.Master, Reason: string(carp.ReasonStartAsMaster)},
}

package metrics

import (
	"github.com/gocarp/gocarp/pfsync/conntrack"
	"github.com/prometheus/client_golang/prometheus"
)

// ConntrackStats is what a ConntrackCollector reads: a *conntrack.Backend,
// or a stand-in where there is no kernel to replicate (tests, other
// operating systems).
type ConntrackStats interface {
	Stats() conntrack.Stats
}

// ConntrackCollector exports the counters of the conntrack backend. Build
// it with [NewConntrack].
type ConntrackCollector struct {
	b ConntrackStats
	t table[conntrack.Stats]
}

// NewConntrack returns a collector for b, usually a *conntrack.Backend.
func NewConntrack(b ConntrackStats) *ConntrackCollector {
	c := &ConntrackCollector{b: b}
	t := &c.t
	for _, r := range []struct {
		name, help string
		v          func(*conntrack.Stats) uint64
	}{
		{"gocarp_conntrack_events_total", "Kernel conntrack events received (new, update, destroy).", func(s *conntrack.Stats) uint64 { return s.Events }},
		{"gocarp_conntrack_filtered_total", "Events and dumped flows not replicated because of the filter.", func(s *conntrack.Stats) uint64 { return s.Filtered }},
		{"gocarp_conntrack_echoes_total", "Events of injected flows that only repeated what was injected.", func(s *conntrack.Stats) uint64 { return s.Echoes }},
		{"gocarp_conntrack_upserts_total", "Inserts and updates reported to the sync engine.", func(s *conntrack.Stats) uint64 { return s.Upserts }},
		{"gocarp_conntrack_deletes_total", "Deletes reported to the sync engine.", func(s *conntrack.Stats) uint64 { return s.Deletes }},
		{"gocarp_conntrack_resyncs_total", "Full-table resyncs (initial, periodic, after overruns, on request).", func(s *conntrack.Stats) uint64 { return s.Resyncs }},
		{"gocarp_conntrack_overruns_total", "Event socket overruns (ENOBUFS): lost events, repaired by a resync.", func(s *conntrack.Stats) uint64 { return s.Overruns }},
		{"gocarp_conntrack_errors_total", "Other receive, dump, conversion and sink errors.", func(s *conntrack.Stats) uint64 { return s.Errors }},
		{"gocarp_conntrack_kernel_drops_total", "Packets of new flows the kernel dropped and flows it evicted for want of table room.", func(s *conntrack.Stats) uint64 { return s.KernelDrops }},
		{"gocarp_conntrack_injected_total", "Remote records created in the kernel.", func(s *conntrack.Stats) uint64 { return s.Injected }},
		{"gocarp_conntrack_table_full_total", "Remote records the kernel refused because its table was full (also in inject errors).", func(s *conntrack.Stats) uint64 { return s.TableFull }},
		{"gocarp_conntrack_refused_total", "Remote records not written because the filter ignores them.", func(s *conntrack.Stats) uint64 { return s.Refused }},
		{"gocarp_conntrack_capped_total", "Remote records whose lifetime was cut to the kernel's timeout for their state.", func(s *conntrack.Stats) uint64 { return s.Capped }},
		{"gocarp_conntrack_inject_updates_total", "Remote records that updated an existing kernel entry.", func(s *conntrack.Stats) uint64 { return s.InjectUpdates }},
		{"gocarp_conntrack_recreated_total", "Updates the kernel refused, done as delete and create.", func(s *conntrack.Stats) uint64 { return s.Recreated }},
		{"gocarp_conntrack_inject_errors_total", "Remote records that could not be written.", func(s *conntrack.Stats) uint64 { return s.InjectErrors }},
		{"gocarp_conntrack_unchanged_total", "Remote records the kernel already held in that state.", func(s *conntrack.Stats) uint64 { return s.Unchanged }},
		{"gocarp_conntrack_conflicts_total", "Remote records whose tuple is a local flow under another identity.", func(s *conntrack.Stats) uint64 { return s.Conflicts }},
		{"gocarp_conntrack_liberalized_total", "This node's TCP flows set to liberal window tracking.", func(s *conntrack.Stats) uint64 { return s.Liberalized }},
		{"gocarp_conntrack_parked_total", "Related records that had to wait for their master connection.", func(s *conntrack.Stats) uint64 { return s.Parked }},
	} {
		t.counter(r.name, r.help, nil, r.v)
	}
	t.gauge("gocarp_conntrack_tracked_flows", "Flows the backend currently knows, local and injected.", nil,
		func(s *conntrack.Stats) float64 { return float64(s.Tracked) })
	return c
}

// Describe implements prometheus.Collector.
func (c *ConntrackCollector) Describe(ch chan<- *prometheus.Desc) { c.t.describe(ch) }

// Collect implements prometheus.Collector: it reads the backend's Stats
// once.
func (c *ConntrackCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	c.t.collect(&s, ch)
}

package metrics

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/prometheus/client_golang/prometheus"
)

// EngineCollector exports the counters and gauges of a pfsync.Engine, per
// peer where the engine keeps them per peer, and the takeover commits made
// through its PrepareTakeover. Build it with [NewEngine].
type EngineCollector struct {
	e *pfsync.Engine
	t table[pfsync.Stats]
	p table[pfsync.PeerStats]

	takeover        prometheus.Histogram
	takeoverRecords prometheus.Counter
	takeoverErrors  prometheus.Counter
}

// NewEngine returns a collector for e. Per-peer metrics carry the label
// peer, the peer's NodeID in decimal.
func NewEngine(e *pfsync.Engine) *EngineCollector {
	c := &EngineCollector{e: e}
	t := &c.t
	type field = func(*pfsync.Stats) uint64
	counters := func(rows []struct {
		name, help string
		v          field
	}) {
		for _, r := range rows {
			t.counter(r.name, r.help, nil, r.v)
		}
	}
	counters([]struct {
		name, help string
		v          field
	}{
		{"gocarp_pfsync_frames_received_total", "Frames received, all peers together.", func(s *pfsync.Stats) uint64 { return s.FramesIn }},
		{"gocarp_pfsync_frames_sent_total", "Frames sent, all peers together.", func(s *pfsync.Stats) uint64 { return s.FramesOut }},
		{"gocarp_pfsync_received_bytes_total", "Bytes of frames received.", func(s *pfsync.Stats) uint64 { return s.BytesIn }},
		{"gocarp_pfsync_sent_bytes_total", "Bytes of frames sent.", func(s *pfsync.Stats) uint64 { return s.BytesOut }},
		{"gocarp_pfsync_send_errors_total", "Transport send failures (pfsync oerrors).", func(s *pfsync.Stats) uint64 { return s.SendErrors }},
		{"gocarp_pfsync_unknown_sections_total", "Sections of an unknown kind, skipped.", func(s *pfsync.Stats) uint64 { return s.UnknownKind }},
		{"gocarp_pfsync_stale_records_total", "Received copies older than this node's (pfsync stale).", func(s *pfsync.Stats) uint64 { return s.Stale }},
		{"gocarp_pfsync_suppressed_records_total", "Received copies a remembered delete suppressed.", func(s *pfsync.Stats) uint64 { return s.Suppressed }},
		{"gocarp_pfsync_table_errors_total", "Table calls that returned an error.", func(s *pfsync.Stats) uint64 { return s.TableErrors }},
		{"gocarp_pfsync_expired_records_total", "Remote records not committed because their lifetime ran out.", func(s *pfsync.Stats) uint64 { return s.Expired }},
		{"gocarp_pfsync_retransmits_total", "Records queued again because a peer reported their frame lost.", func(s *pfsync.Stats) uint64 { return s.Retransmits }},
		{"gocarp_pfsync_nacks_sent_total", "Reports of lost frames sent to peers.", func(s *pfsync.Stats) uint64 { return s.NacksSent }},
		{"gocarp_pfsync_nacks_received_total", "Reports of lost frames received from peers.", func(s *pfsync.Stats) uint64 { return s.NacksReceived }},
		{"gocarp_pfsync_requests_sent_total", "Records asked for by id (pfsync UPD_REQ).", func(s *pfsync.Stats) uint64 { return s.RequestsSent }},
		{"gocarp_pfsync_requests_answered_total", "Requests for records answered.", func(s *pfsync.Stats) uint64 { return s.RequestsAnswered }},
		{"gocarp_pfsync_requests_ignored_total", "Requests for records this node neither holds nor remembers deleting.", func(s *pfsync.Stats) uint64 { return s.RequestsIgnored }},
		{"gocarp_pfsync_queue_drops_total", "Local changes dropped because the send queue was full (MaxPending).", func(s *pfsync.Stats) uint64 { return s.QueueDrops }},
		{"gocarp_pfsync_resend_drops_total", "References dropped because the resend queue was full (ResendLimit).", func(s *pfsync.Stats) uint64 { return s.ResendDrops }},
		{"gocarp_pfsync_peer_flushes_total", "Local changes sent at once because a peer had just changed the record.", func(s *pfsync.Stats) uint64 { return s.PeerFlushes }},
		{"gocarp_pfsync_gaps_given_up_total", "Sequence gaps in a peer's stream given up for good, then resynchronised.", func(s *pfsync.Stats) uint64 { return s.GapsGivenUp }},
		{"gocarp_pfsync_bulk_started_total", "Bulk syncs started as receiver.", func(s *pfsync.Stats) uint64 { return s.BulkStarted }},
		{"gocarp_pfsync_bulk_completed_total", "Bulk syncs completed as receiver.", func(s *pfsync.Stats) uint64 { return s.BulkCompleted }},
		{"gocarp_pfsync_bulk_failed_total", "Bulk sync attempts that timed out or failed the digest check.", func(s *pfsync.Stats) uint64 { return s.BulkFailed }},
		{"gocarp_pfsync_bulk_gave_up_total", "Peers for which every bulk sync retry failed.", func(s *pfsync.Stats) uint64 { return s.BulkGaveUp }},
		{"gocarp_pfsync_bulk_sent_total", "Bulk transfers sent to peers.", func(s *pfsync.Stats) uint64 { return s.BulkSent }},
		{"gocarp_pfsync_bulk_records_sent_total", "Records sent in bulk transfers (first transmissions).", func(s *pfsync.Stats) uint64 { return s.BulkRecordsSent }},
		{"gocarp_pfsync_bulk_ranges_failed_total", "Bulk ranges whose digest did not match the records received.", func(s *pfsync.Stats) uint64 { return s.BulkRangesFailed }},
		{"gocarp_pfsync_bulk_buckets_retried_total", "Buckets asked for again in bulk syncs.", func(s *pfsync.Stats) uint64 { return s.BulkBucketsRetried }},
		{"gocarp_pfsync_digests_sent_total", "Anti-entropy digests sent.", func(s *pfsync.Stats) uint64 { return s.DigestsSent }},
		{"gocarp_pfsync_digest_mismatches_total", "Anti-entropy buckets found different from the owner's.", func(s *pfsync.Stats) uint64 { return s.DigestMismatches }},
		{"gocarp_pfsync_digests_refused_total", "Digest parts not compared (too small, repeated, or too frequent).", func(s *pfsync.Stats) uint64 { return s.DigestsRefused }},
		{"gocarp_pfsync_resyncs_total", "Resynchronisations by digest started after frames lost for good.", func(s *pfsync.Stats) uint64 { return s.Resyncs }},
		{"gocarp_pfsync_resync_buckets_total", "Buckets resynchronisations found different and fetched.", func(s *pfsync.Stats) uint64 { return s.ResyncBuckets }},
		{"gocarp_pfsync_resync_timeouts_total", "Peers that sent no digest in time for a resynchronisation (a whole-table bulk instead).", func(s *pfsync.Stats) uint64 { return s.ResyncTimeouts }},
	})
	rej := t.metric(prometheus.CounterValue, "gocarp_pfsync_rejected_frames_total",
		"Frames dropped before merging, by reason (pfsync badver, badlen, badval; frames not for this node; senders not confirmed; peers over the limit).", nil, "reason")
	rej(u64(func(s *pfsync.Stats) uint64 { return s.BadVersion }), "bad_version")
	rej(u64(func(s *pfsync.Stats) uint64 { return s.BadLength }), "bad_length")
	rej(u64(func(s *pfsync.Stats) uint64 { return s.BadValue }), "bad_value")
	rej(u64(func(s *pfsync.Stats) uint64 { return s.NotForUs }), "not_for_us")
	rej(u64(func(s *pfsync.Stats) uint64 { return s.Unconfirmed }), "unconfirmed")
	rej(u64(func(s *pfsync.Stats) uint64 { return s.PeersRefused }), "peers_refused")
	auth := t.metric(prometheus.CounterValue, "gocarp_pfsync_auth_failures_total",
		"Frames the sealer refused to open, by its error.", nil, "reason")
	auth(u64(func(s *pfsync.Stats) uint64 { return s.BadAuth }), "bad_auth")
	auth(u64(func(s *pfsync.Stats) uint64 { return s.Replay }), "replay")
	auth(u64(func(s *pfsync.Stats) uint64 { return s.StaleEpoch }), "stale_epoch")
	auth(u64(func(s *pfsync.Stats) uint64 { return s.UnknownKey }), "unknown_key")
	auth(u64(func(s *pfsync.Stats) uint64 { return s.Truncated }), "truncated")

	gauges := []struct {
		name, help string
		v          func(*pfsync.Stats) float64
	}{
		{"gocarp_pfsync_pending_records", "Records queued for the next frame (send queue depth).", func(s *pfsync.Stats) float64 { return float64(s.Pending) }},
		{"gocarp_pfsync_resend_queue", "Record references waiting for peers' acks (resend queue depth).", func(s *pfsync.Stats) float64 { return float64(s.ResendQueue) }},
		{"gocarp_pfsync_peers_up", "Peers heard within DeadAfter heartbeats.", func(s *pfsync.Stats) float64 { return float64(s.PeersUp) }},
		{"gocarp_pfsync_records", "Live records held by the engine.", func(s *pfsync.Stats) float64 { return float64(s.Records) }},
		{"gocarp_pfsync_local_records", "Live records created by this node.", func(s *pfsync.Stats) float64 { return float64(s.LocalRecords) }},
		{"gocarp_pfsync_external_records", "Remote records not yet committed to the table (CommitOnTakeover).", func(s *pfsync.Stats) float64 { return float64(s.External) }},
		{"gocarp_pfsync_tombstones", "Remembered deletes.", func(s *pfsync.Stats) float64 { return float64(s.Tombstones) }},
		{"gocarp_pfsync_bulk_expected_records", "Records announced by the running bulk syncs.", func(s *pfsync.Stats) float64 { return float64(s.BulkExpected) }},
		{"gocarp_pfsync_bulk_received_records", "Records received so far in the running bulk syncs.", func(s *pfsync.Stats) float64 { return float64(s.BulkReceived) }},
		{"gocarp_pfsync_in_sync", "1 when the node is in sync: a bulk sync from every peer up, or it founded the cluster.", func(s *pfsync.Stats) float64 { return boolean(s.BulkDone) }},
		{"gocarp_pfsync_degraded", "1 when in sync but a required peer's bulk sync failed every retry.", func(s *pfsync.Stats) float64 { return boolean(s.Degraded) }},
		{"gocarp_pfsync_demotion", "CARP demotion the engine asks for (while not in sync).", func(s *pfsync.Stats) float64 { return float64(s.Demotion) }},
	}
	for _, g := range gauges {
		t.gauge(g.name, g.help, nil, g.v)
	}

	p := &c.p
	pg := func(name, help string, v func(*pfsync.PeerStats) float64) {
		p.metric(prometheus.GaugeValue, name, help, nil, "peer")(v)
	}
	pc := func(name, help string, v func(*pfsync.PeerStats) uint64) {
		p.metric(prometheus.CounterValue, name, help, nil, "peer")(u64(v))
	}
	pg("gocarp_pfsync_peer_up", "1 if the peer was heard within DeadAfter heartbeats.", func(s *pfsync.PeerStats) float64 { return boolean(s.Up) })
	pg("gocarp_pfsync_peer_confirmed", "1 if the peer has echoed this node's epoch (it is live, not a recording).", func(s *pfsync.PeerStats) float64 { return boolean(s.Confirmed) })
	pg("gocarp_pfsync_peer_last_heard_timestamp_seconds", "When the peer was last heard, in Unix seconds (0 if never): time() minus it is the peer's silence.", func(s *pfsync.PeerStats) float64 {
		if s.LastHeard.IsZero() {
			return 0
		}
		return float64(s.LastHeard.UnixNano()) / 1e9
	})
	pg("gocarp_pfsync_peer_acked_sequence", "Highest sequence number of this node's stream the peer acknowledged.", func(s *pfsync.PeerStats) float64 { return float64(s.Acked) })
	pg("gocarp_pfsync_peer_received_sequence", "Highest in-order sequence number received from the peer.", func(s *pfsync.PeerStats) float64 { return float64(s.Received) })
	pc("gocarp_pfsync_peer_frames_received_total", "Frames received from the peer.", func(s *pfsync.PeerStats) uint64 { return s.FramesIn })
	pc("gocarp_pfsync_peer_frames_sent_total", "Frames sent to the peer, broadcasts included.", func(s *pfsync.PeerStats) uint64 { return s.FramesOut })
	pc("gocarp_pfsync_peer_received_bytes_total", "Bytes received from the peer.", func(s *pfsync.PeerStats) uint64 { return s.BytesIn })
	pc("gocarp_pfsync_peer_sent_bytes_total", "Bytes sent to the peer, broadcasts included.", func(s *pfsync.PeerStats) uint64 { return s.BytesOut })
	pc("gocarp_pfsync_peer_restarts_total", "Epoch changes of the peer seen (its restarts).", func(s *pfsync.PeerStats) uint64 { return s.Restarts })
	pc("gocarp_pfsync_peer_retransmits_total", "Records sent to the peer again because it reported their frame lost.", func(s *pfsync.PeerStats) uint64 { return s.Retransmits })
	pc("gocarp_pfsync_peer_nacks_sent_total", "Reports of lost frames sent to the peer.", func(s *pfsync.PeerStats) uint64 { return s.NacksSent })
	pc("gocarp_pfsync_peer_nacks_received_total", "Reports of lost frames received from the peer.", func(s *pfsync.PeerStats) uint64 { return s.NacksReceived })
	pc("gocarp_pfsync_peer_gaps_total", "Sequence gaps that opened in the peer's stream (frames missing, usually resent).", func(s *pfsync.PeerStats) uint64 { return s.Gaps })
	pc("gocarp_pfsync_peer_gaps_given_up_total", "Sequence gaps in the peer's stream given up for good, then resynchronised.", func(s *pfsync.PeerStats) uint64 { return s.GapsGivenUp })
	pg("gocarp_pfsync_peer_bulk_expected_records", "Records the running bulk sync from the peer announced (0 when none runs).", func(s *pfsync.PeerStats) float64 { return float64(s.BulkExpected) })
	pg("gocarp_pfsync_peer_bulk_received_records", "Distinct records received so far in the running bulk sync from the peer.", func(s *pfsync.PeerStats) float64 { return float64(s.BulkReceived) })
	pg("gocarp_pfsync_peer_bulk_ranges", "Ranges (digest buckets) the running bulk sync from the peer must settle (0 when none runs).", func(s *pfsync.PeerStats) float64 { return float64(s.BulkRanges) })
	pg("gocarp_pfsync_peer_bulk_ranges_done", "Ranges of the running bulk sync from the peer settled so far.", func(s *pfsync.PeerStats) float64 { return float64(s.BulkRangesDone) })

	c.takeover = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gocarp_pfsync_takeover_commit_duration_seconds",
		Help:    "Duration of PrepareTakeover calls made through the collector: committing replicated records before the addresses move.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms to 8 s
	})
	c.takeoverRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gocarp_pfsync_takeover_committed_records_total",
		Help: "Records committed to the table by PrepareTakeover calls made through the collector.",
	})
	c.takeoverErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gocarp_pfsync_takeover_errors_total",
		Help: "PrepareTakeover calls made through the collector that returned an error.",
	})
	return c
}

// PrepareTakeover calls the engine's PrepareTakeover and records its
// duration, the records it committed and its failure, if any. The engine
// does not time its takeover commits itself: call this one instead of
// Engine.PrepareTakeover (in vip.Config.BeforeInstall, typically) to see
// them on the dashboard.
func (c *EngineCollector) PrepareTakeover(ctx context.Context) (int, error) {
	start := time.Now()
	n, err := c.e.PrepareTakeover(ctx)
	c.takeover.Observe(time.Since(start).Seconds())
	c.takeoverRecords.Add(float64(n))
	if err != nil {
		c.takeoverErrors.Inc()
	}
	return n, err
}

// Describe implements prometheus.Collector.
func (c *EngineCollector) Describe(ch chan<- *prometheus.Desc) {
	c.t.describe(ch)
	c.p.describe(ch)
	c.takeover.Describe(ch)
	c.takeoverRecords.Describe(ch)
	c.takeoverErrors.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the engine's Stats
// once.
func (c *EngineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	c.t.collect(&s, ch)
	ids := make([]pfsync.NodeID, 0, len(s.Peers))
	for id := range s.Peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ps := s.Peers[id]
		peer := strconv.FormatUint(uint64(id), 10)
		for _, r := range c.p.rows {
			ch <- prometheus.MustNewConstMetric(r.desc, r.typ, r.value(&ps), peer)
		}
	}
	c.takeover.Collect(ch)
	c.takeoverRecords.Collect(ch)
	c.takeoverErrors.Collect(ch)
}

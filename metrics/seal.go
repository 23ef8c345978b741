package metrics

import (
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/prometheus/client_golang/prometheus"
)

// SealerCollector exports the counters of a seal.Sealer. Build it with
// [NewSealer].
type SealerCollector struct {
	s *seal.Sealer
	t table[seal.Stats]
}

// NewSealer returns a collector for s.
func NewSealer(s *seal.Sealer) *SealerCollector {
	c := &SealerCollector{s: s}
	t := &c.t
	t.counter("gocarp_seal_frames_sealed_total", "Frames sealed for sending.", nil, func(s *seal.Stats) uint64 { return s.Sealed })
	t.counter("gocarp_seal_frames_opened_total", "Frames authenticated and accepted.", nil, func(s *seal.Stats) uint64 { return s.Opened })
	rej := t.metric(prometheus.CounterValue, "gocarp_seal_rejected_frames_total", "Frames refused, by the sealer's error.", nil, "reason")
	rej(u64(func(s *seal.Stats) uint64 { return s.BadAuth }), "bad_auth")
	rej(u64(func(s *seal.Stats) uint64 { return s.Replay }), "replay")
	rej(u64(func(s *seal.Stats) uint64 { return s.StaleEpoch }), "stale_epoch")
	rej(u64(func(s *seal.Stats) uint64 { return s.UnknownKey }), "unknown_key")
	rej(u64(func(s *seal.Stats) uint64 { return s.Truncated }), "truncated")
	t.counter("gocarp_seal_throttled_total", "Frames refused because new-epoch key derivation was over its rate (part of reason bad_auth).", nil, func(s *seal.Stats) uint64 { return s.Throttled })
	t.counter("gocarp_seal_keys_derived_total", "Traffic keys derived for runs not yet authenticated.", nil, func(s *seal.Stats) uint64 { return s.Derived })
	return c
}

// Describe implements prometheus.Collector.
func (c *SealerCollector) Describe(ch chan<- *prometheus.Desc) { c.t.describe(ch) }

// Collect implements prometheus.Collector: it reads the sealer's Stats
// once.
func (c *SealerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	c.t.collect(&s, ch)
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

// table maps the fields of a statistics snapshot S to metrics. A collector
// builds one at construction and, at every scrape, reads one snapshot and
// emits every row from it: one pass, no state kept between scrapes.
type table[S any] struct {
	descs []*prometheus.Desc
	rows  []row[S]
}

// row is one sample: a metric, its variable label values and how to read
// its value from the snapshot.
type row[S any] struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	labels []string
	value  func(*S) float64
}

// metric declares a metric of the table and returns a function that adds
// a row (one set of label values) to it.
func (t *table[S]) metric(typ prometheus.ValueType, name, help string, constLabels prometheus.Labels, labels ...string) func(value func(*S) float64, labelValues ...string) {
	d := prometheus.NewDesc(name, help, labels, constLabels)
	t.descs = append(t.descs, d)
	return func(value func(*S) float64, labelValues ...string) {
		t.rows = append(t.rows, row[S]{desc: d, typ: typ, labels: labelValues, value: value})
	}
}

// counter declares a counter with one row, read by v.
func (t *table[S]) counter(name, help string, constLabels prometheus.Labels, v func(*S) uint64) {
	t.metric(prometheus.CounterValue, name, help, constLabels)(func(s *S) float64 { return float64(v(s)) })
}

// gauge declares a gauge with one row, read by v.
func (t *table[S]) gauge(name, help string, constLabels prometheus.Labels, v func(*S) float64) {
	t.metric(prometheus.GaugeValue, name, help, constLabels)(v)
}

func (t *table[S]) describe(ch chan<- *prometheus.Desc) {
	for _, d := range t.descs {
		ch <- d
	}
}

func (t *table[S]) collect(s *S, ch chan<- prometheus.Metric) {
	for _, r := range t.rows {
		ch <- prometheus.MustNewConstMetric(r.desc, r.typ, r.value(s), r.labels...)
	}
}

// u64 adapts a uint64 field reader to a row value.
func u64[S any](v func(*S) uint64) func(*S) float64 {
	return func(s *S) float64 { return float64(v(s)) }
}

// boolean is 1 for true and 0 for false, Prometheus' convention for
// conditions.
func boolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

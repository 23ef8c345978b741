package main

import (
	"github.com/gocarp/gocarp/internal/httpmetrics"
	"github.com/gocarp/gocarp/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// openMetrics starts --metrics, if set: /metrics for the group and the
// address follower, /healthz. It runs before the group starts, so an
// address already in use stops carpd before it advertises; /healthz turns
// to 200 at metricsRunning(true).
func (d *daemon) openMetrics() error {
	if d.o.Metrics == "" {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewGroup(d.group))
	if d.follower != nil {
		reg.MustRegister(metrics.NewFollower(d.o.VHID, d.follower))
	}
	var err error
	if d.metrics, err = httpmetrics.Listen(d.o.Metrics, reg); err != nil {
		return err
	}
	d.log.Info("carpd: serving metrics", "addr", d.metrics.Addr().String())
	return nil
}

// metricsRunning makes /healthz report whether the group runs.
func (d *daemon) metricsRunning(up bool) {
	if d.metrics != nil {
		d.metrics.SetRunning(up)
	}
}

// closeMetrics stops serving --metrics.
func (d *daemon) closeMetrics() {
	if d.metrics == nil {
		return
	}
	if err := d.metrics.Close(); err != nil {
		d.log.Warn("carpd: closing the metrics server", "err", err)
	}
}

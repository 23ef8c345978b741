package main

import (
	"fmt"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/httpmetrics"
	"github.com/gocarp/gocarp/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// openMetrics starts metrics.listen, if set: /metrics for every group and
// address follower, the sync engine (its peers, and the takeover commits:
// the engine's part of commit goes through the collector, which times it),
// the sealer and the conntrack backend; and /healthz. It runs before the
// groups start, so an address already in use stops fwpair before it
// advertises; /healthz turns to 200 at metricsRunning(true).
func (d *daemon) openMetrics() error {
	if d.cfg.Metrics.Listen == "" {
		return nil
	}
	reg := prometheus.NewRegistry()
	d.metricsReg, d.groupCollectors = reg, map[*carp.Group][]prometheus.Collector{}
	for _, gr := range d.groupList() {
		if err := d.metricsAddGroup(gr); err != nil {
			return err
		}
	}
	ec := metrics.NewEngine(d.engine)
	reg.MustRegister(ec, metrics.NewSealer(d.sealer), metrics.NewConntrack(d.backend))
	var err error
	if d.metrics, err = httpmetrics.Listen(d.cfg.Metrics.Listen, reg); err != nil {
		return err
	}
	d.prepare = ec.PrepareTakeover
	d.log.Info("fwpair: serving metrics", "addr", d.metrics.Addr().String())
	return nil
}

// metricsRunning makes /healthz report whether the groups run.
func (d *daemon) metricsRunning(up bool) {
	if d.metrics != nil {
		d.metrics.SetRunning(up)
	}
}

// closeMetrics stops serving metrics.listen.
func (d *daemon) closeMetrics() error {
	if d.metrics == nil {
		return nil
	}
	return d.metrics.Close()
}

// metricsAddGroup registers the collectors of a group (at start, and when
// a reload adds one). Without metrics.listen it does nothing.
func (d *daemon) metricsAddGroup(gr *groupRun) error {
	if d.metricsReg == nil {
		return nil
	}
	cs := []prometheus.Collector{metrics.NewGroup(gr.group), metrics.NewFollower(gr.cfg.VHID, gr.fol)}
	for i, c := range cs {
		if err := d.metricsReg.Register(c); err != nil {
			for _, c := range cs[:i] {
				d.metricsReg.Unregister(c)
			}
			return fmt.Errorf("metrics: group %s: %w", gr.cfg.Name, err)
		}
	}
	d.groupCollectors[gr.group] = cs
	return nil
}

// metricsRemoveGroup unregisters the collectors of a group a reload
// removed.
func (d *daemon) metricsRemoveGroup(gr *groupRun) {
	if d.metricsReg == nil {
		return
	}
	for _, c := range d.groupCollectors[gr.group] {
		d.metricsReg.Unregister(c)
	}
	delete(d.groupCollectors, gr.group)
}

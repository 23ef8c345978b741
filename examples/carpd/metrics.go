package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gocarp/gocarp/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves --metrics: /metrics (Prometheus, from package
// metrics' collectors) and /healthz, which answers 200 while the daemon
// runs its group and 503 before and after. It listens on the given
// address only.
type metricsServer struct {
	srv     *http.Server
	addr    net.Addr // where it listens
	running atomic.Bool
	served  chan error // Serve's result
	log     *slog.Logger
}

// metricsShutdown bounds how long closing waits for scrapes in flight.
const metricsShutdown = 2 * time.Second

// listenMetrics opens addr and starts serving reg. Health starts false:
// call setRunning once the group runs.
func listenMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (*metricsServer, error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &metricsServer{served: make(chan error, 1), log: log}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", m.healthz)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m.addr = ln.Addr()
	go func() { m.served <- m.srv.Serve(ln) }()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return m, nil
}

func (m *metricsServer) healthz(w http.ResponseWriter, _ *http.Request) {
	if !m.running.Load() {
		http.Error(w, "not running", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// setRunning sets what /healthz reports.
func (m *metricsServer) setRunning(up bool) { m.running.Store(up) }

// close stops serving, waiting at most metricsShutdown for scrapes in
// flight.
func (m *metricsServer) close() error {
	m.running.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	if serr := <-m.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// openMetrics starts --metrics, if set, for the group and the address
// follower. It runs before the group starts, so an address already in use
// stops carpd before it advertises; /healthz turns to 200 at
// metricsRunning.
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
	d.metrics, err = listenMetrics(d.o.Metrics, reg, d.log)
	return err
}

// metricsRunning makes /healthz report whether the group runs.
func (d *daemon) metricsRunning(up bool) {
	if d.metrics != nil {
		d.metrics.setRunning(up)
	}
}

// closeMetrics stops serving --metrics.
func (d *daemon) closeMetrics() {
	if d.metrics == nil {
		return
	}
	if err := d.metrics.close(); err != nil {
		d.log.Warn("closing the metrics server", "err", err)
	}
}

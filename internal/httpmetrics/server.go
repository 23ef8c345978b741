// Package httpmetrics is the daemons' metrics endpoint: an HTTP server on
// one address serving /metrics (Prometheus text) from a registry and
// /healthz, which answers 200 while the daemon says it runs its groups and
// 503 otherwise.
package httpmetrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shutdownWait bounds how long Close waits for scrapes in flight.
const shutdownWait = 2 * time.Second

// Server serves /metrics and /healthz. Build it with Listen.
type Server struct {
	srv     *http.Server
	addr    net.Addr
	running atomic.Bool
	served  chan error // Serve's result
}

// Listen opens addr (an IP address and port: it listens there only) and
// serves reg, to which it adds the Go runtime and process collectors.
// /healthz reports 503 until SetRunning(true).
func Listen(addr string, reg *prometheus.Registry) (*Server, error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{served: make(chan error, 1)}
	mux := http.NewServeMux()
	// At most two scrapes at once (two Prometheus servers of an HA pair):
	// a scrape costs about 0.5 ms of CPU, and a flood of them competes
	// with the protocol loops for the CPUs (BENCHMARKS.md); more get 503.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 2}))
	mux.HandleFunc("GET /healthz", s.healthz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpmetrics: %w", err)
	}
	s.addr = ln.Addr()
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if !s.running.Load() {
		http.Error(w, "not running", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// SetRunning sets what /healthz reports: 200 while up, 503 otherwise.
func (s *Server) SetRunning(up bool) { s.running.Store(up) }

// Close stops serving: /healthz turns to 503 for scrapes in flight, which
// it waits for at most 2 s. It returns the server's error, if any.
func (s *Server) Close() error {
	s.running.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("httpmetrics: %w", err)
	}
	return nil
}

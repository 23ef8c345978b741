package httpmetrics

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// get fetches path and returns the status and body.
func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_events_total", Help: "Events."})
	c.Add(3)
	reg.MustRegister(c)
	s, err := Listen("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, s, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before SetRunning: %d, want 503", code)
	}
	s.SetRunning(true)
	if code, body := get(t, s, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz while running: %d %q, want 200 \"ok\\n\"", code, body)
	}
	code, body := get(t, s, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "\ntest_events_total 3\n") {
		t.Errorf("/metrics: %d, want 200 with test_events_total 3:\n%s", code, body)
	}
	for _, m := range []string{"go_goroutines ", "process_start_time_seconds "} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s(Go and process collectors)", m)
		}
	}
	if code, _ := get(t, s, "/"); code != http.StatusNotFound {
		t.Errorf("/: %d, want 404", code)
	}
	s.SetRunning(false)
	if code, _ := get(t, s, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz after SetRunning(false): %d, want 503", code)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("still serving after Close")
	}
}

func TestListenError(t *testing.T) {
	s, err := Listen("127.0.0.1:0", prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Listen(s.Addr().String(), prometheus.NewRegistry()); err == nil || !strings.HasPrefix(err.Error(), "httpmetrics: ") {
		t.Errorf("Listen on a used address: %v, want an error starting with \"httpmetrics: \"", err)
	}
}

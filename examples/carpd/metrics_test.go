package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/google/go-cmp/cmp"
)

func TestMetricsFlag(t *testing.T) {
	o, err := parseArgs(append(base, "--metrics", "127.0.0.1:9310"))
	if err != nil || o.Metrics != "127.0.0.1:9310" {
		t.Errorf("parseArgs: Metrics %q, %v; want 127.0.0.1:9310", o.Metrics, err)
	}
	if o, _ := parseArgs(base); o.Metrics != "" {
		t.Errorf("without --metrics: %q, want off", o.Metrics)
	}
	for _, v := range []string{"9310", ":9310", "localhost:9310", "127.0.0.1"} {
		_, err := parseArgs(append(base, "--metrics", v))
		var ue *usageError
		want := "--metrics " + v + " is not an IP address and port (e.g. 127.0.0.1:9310 or [::1]:9310)"
		if !errors.As(err, &ue) || err.Error() != want {
			t.Errorf("--metrics %s: %v, want %q", v, err, want)
		}
	}
}

// TestOpenMetrics: with --metrics, /metrics serves the group's collector
// and /healthz follows the daemon's running flag.
func TestOpenMetrics(t *testing.T) {
	g, err := carp.NewGroup(carp.Config{VHID: 7, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.254")},
		Password: []byte("secret"), Transport: carptest.NewSegment(1).Join(carp.IPv4)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d := &daemon{o: &options{VHID: 7, Metrics: "127.0.0.1:0"}, log: slog.New(slog.DiscardHandler), group: g}
	if err := d.openMetrics(); err != nil {
		t.Fatal(err)
	}
	defer d.closeMetrics()
	base := "http://" + d.metrics.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
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
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before the group runs: %d, want 503", code)
	}
	d.metricsRunning(true)
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while running: %d, want 200", code)
	}
	_, body := get("/metrics")
	var got []string
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "gocarp_carp_state{") {
			got = append(got, strings.TrimSpace(line))
		}
	}
	want := []string{
		`gocarp_carp_state{state="backup",vhid="7"} 0`,
		`gocarp_carp_state{state="init",vhid="7"} 1`,
		`gocarp_carp_state{state="master",vhid="7"} 0`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/metrics state lines (-want +got):\n%s", diff)
	}
}

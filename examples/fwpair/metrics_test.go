package main

import (
	"strings"
	"testing"
)

// TestMetricsConfig: metrics.listen is off by default, takes an IP address
// and port, names itself in its error, and -check prints it only when set.
func TestMetricsConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Listen != "" || strings.Contains(c.String(), "metrics") {
		t.Errorf("default: Listen %q, printed %s; want off and not printed", c.Metrics.Listen, c.String())
	}
	on := edit(t, func(m map[string]any) { m["metrics"] = map[string]any{"listen": "[::1]:9310"} })
	c, err = ParseConfig(strings.NewReader(on))
	if err != nil || c.Metrics.Listen != "[::1]:9310" {
		t.Fatalf("metrics.listen [::1]:9310: %+v, %v", c.Metrics, err)
	}
	back, err := ParseConfig(strings.NewReader(c.String()))
	if err != nil || back.Metrics != c.Metrics {
		t.Errorf("-check output parses back to %+v, %v; want %+v", back.Metrics, err, c.Metrics)
	}
	for _, v := range []string{"9310", ":9310", "localhost:9310", "10.0.0.1"} {
		bad := edit(t, func(m map[string]any) { m["metrics"] = map[string]any{"listen": v} })
		_, err := ParseConfig(strings.NewReader(bad))
		want := `metrics.listen "` + v + `" is not an IP address and port (e.g. "127.0.0.1:9310")`
		if err == nil || err.Error() != want {
			t.Errorf("metrics.listen %q: %v, want %q", v, err, want)
		}
	}
}

package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// parseWithTrack parses the example configuration with its track list
// replaced by track (a JSON array).
func parseWithTrack(t *testing.T, track string) (*Config, error) {
	t.Helper()
	b := exampleJSON(t)
	i := strings.Index(b, `"track": [`)
	if i < 0 {
		t.Fatal("fwpair.example.json has no track list")
	}
	s := b[:i] + `"track": ` + track + "\n}\n"
	return ParseConfig(strings.NewReader(s))
}

func TestTrackConfigDefaults(t *testing.T) {
	c, err := parseWithTrack(t, `[{"name": "web", "type": "http", "url": "http://127.0.0.1:8080/health"}]`)
	if err != nil {
		t.Fatal(err)
	}
	want := []TrackConfig{{Name: "web", Type: "http", URL: "http://127.0.0.1:8080/health",
		Interval: Duration{time.Second}, Timeout: Duration{time.Second}, Rise: 1, Fall: 1}}
	if diff := cmp.Diff(want, c.Track); diff != "" {
		t.Errorf("track with defaults (-want +got):\n%s", diff)
	}
}

// Every error names the key, the value and what is allowed.
func TestTrackConfigErrors(t *testing.T) {
	for _, tc := range []struct{ track, want string }{
		{`[{"type": "script", "script": "true"}]`, `track[0].name "" is not a name`},
		{`[{"name": "a", "type": "script", "script": "true"}, {"name": "a", "type": "script", "script": "true"}]`, `track[1].name "a" used by two trackers`},
		{`[{"name": "a", "type": "ping"}]`, `track[0].type "ping" not one of script, interface, process, tcp, http`},
		{`[{"name": "a", "type": "script"}]`, `track[0].script required with type script`},
		{`[{"name": "a", "type": "script", "script": "true", "url": "http://x/"}]`, `track[0].url set with track[0].type script, want it unset`},
		{`[{"name": "a", "type": "interface", "interface": "a/b"}]`, `track[0].interface "a/b" is not an interface name`},
		{`[{"name": "a", "type": "process"}]`, `set exactly one of track[0].pid_file and track[0].process`},
		{`[{"name": "a", "type": "process", "pid_file": "/run/x.pid", "process": "x"}]`, `set exactly one of`},
		{`[{"name": "a", "type": "process", "process": "a-very-long-process-name"}]`, `track[0].process "a-very-long-process-name" is not a process name`},
		{`[{"name": "a", "type": "tcp", "address": "127.0.0.1"}]`, `track[0].address "127.0.0.1" is not host:port`},
		{`[{"name": "a", "type": "http", "url": "ftp://x/"}]`, `track[0].url "ftp://x/" is not an http or https URL`},
		{`[{"name": "a", "type": "http", "url": "http://x/", "status": 99}]`, `track[0].status 99 out of range 100-599`},
		{`[{"name": "a", "type": "script", "script": "true", "interval": "5ms"}]`, `track[0].interval 5ms out of range 10ms-1h`},
		{`[{"name": "a", "type": "script", "script": "true", "timeout": "2h"}]`, `track[0].timeout 2h0m0s out of range 10ms-1h`},
		{`[{"name": "a", "type": "script", "script": "true", "rise": 1001}]`, `track[0].rise 1001 out of range 1-1000`},
		{`[{"name": "a", "type": "script", "script": "true", "fall": -1}]`, `track[0].fall -1 out of range 1-1000`},
		{`[{"name": "a", "type": "script", "script": "true", "weight": 256}]`, `track[0].weight 256 out of range 0-255`},
	} {
		_, err := parseWithTrack(t, tc.track)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.track, err, tc.want)
		}
	}
}

// exampleJSON returns fwpair.example.json.
func exampleJSON(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("fwpair.example.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

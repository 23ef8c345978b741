package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseArgsTrack(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *options
	}{
		{"scripts and interfaces repeat, keepalived tuning", append(base,
			"--track-script", "pidof nginx", "--track-interface=eth1", "--track-script", "test -e /run/ok",
			"--track-interface", "bond0", "--track-interval", "2s", "--track-timeout=500ms",
			"--track-rise", "3", "--track-fall", "2", "--track-weight", "50"),
			want(func(o *options) {
				o.Track = trackOptions{Scripts: []string{"pidof nginx", "test -e /run/ok"}, Interfaces: []string{"eth1", "bond0"},
					Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, Rise: 3, Fall: 2, Weight: 50, WeightSet: true}
			})},
		{"weight 0 is the default, and may be given", append(base, "--track-script", "true", "--track-weight", "0"),
			want(func(o *options) { o.Track = trackOptions{Scripts: []string{"true"}, WeightSet: true} })},
		{"bounds", append(base, "--track-interface", "eth1", "--track-interval", "10ms", "--track-timeout", "1ms",
			"--track-rise", "1000", "--track-fall", "1", "--track-weight", "255"),
			want(func(o *options) {
				o.Track = trackOptions{Interfaces: []string{"eth1"}, Interval: 10 * time.Millisecond, Timeout: time.Millisecond,
					Rise: 1000, Fall: 1, Weight: 255, WeightSet: true}
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("parseArgs(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseArgsTrackErrors(t *testing.T) {
	// script returns base with one tracker and extra, in a fresh array.
	script := func(extra ...string) []string { return slices.Concat(base, []string{"--track-script", "true"}, extra) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"empty script", append(base, "--track-script", " "), `--track-script " " is not a command`},
		{"script twice", script("--track-script", "true"), "--track-script true is given twice"},
		{"bad interface", append(base, "--track-interface", "a/b"), "--track-interface a/b is not an interface name (1-15 bytes, no '/' or space)"},
		{"interface twice", append(base, "--track-interface", "eth1", "--track-interface", "eth1"), "--track-interface eth1 is given twice"},
		{"interval too short", script("--track-interval", "5ms"), "--track-interval 5ms out of range 10ms-24h (a duration, e.g. 2s)"},
		{"interval not a duration", script("--track-interval", "2"), "--track-interval 2 out of range 10ms-24h (a duration, e.g. 2s)"},
		{"timeout 0", script("--track-timeout", "0s"), "--track-timeout 0s out of range 1ms-24h (a duration, e.g. 2s)"},
		{"rise 0", script("--track-rise", "0"), "--track-rise 0 out of range 1-1000"},
		{"fall too large", script("--track-fall", "1001"), "--track-fall 1001 out of range 1-1000"},
		{"weight too large", script("--track-weight", "256"), "--track-weight 256 out of range 0-255"},
		{"tuning without a tracker", append(base, "--track-fall", "3"), "--track-fall: no --track-script or --track-interface to apply it to"},
		{"weight without a tracker", append(base, "--track-weight", "0"), "--track-weight: no --track-script or --track-interface to apply it to"},
		{"ambiguous prefix", append(base, "--track-i", "x"), "--track-i is ambiguous (--track-interface, --track-interval)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseArgs(%q) = %v, want a usage error %q", tt.args, err, tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("parseArgs(%q) error (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestUsageListsTrackFlags(t *testing.T) {
	var b strings.Builder
	writeUsage(&b)
	for _, f := range trackFlags {
		if !strings.Contains(b.String(), "--"+f.long) {
			t.Errorf("usage lacks --%s", f.long)
		}
	}
}

func TestTrackSpecs(t *testing.T) {
	o := trackOptions{Scripts: []string{"a", "b c"}, Interfaces: []string{"eth1"}}
	var got []string
	for _, s := range o.specs() {
		got = append(got, s.name)
	}
	if diff := cmp.Diff([]string{"script a", "script b c", "interface eth1"}, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

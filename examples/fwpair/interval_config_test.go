package main

import (
	"strings"
	"testing"

	"github.com/gocarp/gocarp/carp"
)

// TestParseConfigInterval checks carp.interval: sub-second CARP, advbase 0
// on the wire with the nearest advskew, and a String form that parses back.
func TestParseConfigInterval(t *testing.T) {
	tests := []struct {
		interval string
		skew     uint8
	}{
		{"100ms", 26}, // 25.6/256 s
		{"10ms", 3},
		{"992ms", 254},
		{"250ms", 64},
	}
	for _, tt := range tests {
		c, err := ParseConfig(strings.NewReader(edit(t, func(m map[string]any) {
			m["carp"] = map[string]any{"interval": tt.interval, "preempt": true}
		})))
		if err != nil {
			t.Fatalf("%s: %v", tt.interval, err)
		}
		if c.CARP.AdvBase != 0 || c.CARP.AdvSkew != 0 {
			t.Errorf("%s: carp section %+v, want advbase and advskew left unset", tt.interval, c.CARP)
		}
		g := c.CARP.groupConfig(carp.Config{VHID: 1})
		if g.Protocol != carp.ProtocolCARP || g.AdvBase != 0 || !g.ZeroAdvBase || g.AdvSkew != tt.skew {
			t.Errorf("%s: group config advbase %d (zero %v) advskew %d, want 0 (zero true) %d", tt.interval, g.AdvBase, g.ZeroAdvBase, g.AdvSkew, tt.skew)
		}
		back, err := ParseConfig(strings.NewReader(c.String()))
		if err != nil {
			t.Fatalf("%s: String output does not parse: %v\n%s", tt.interval, err, c.String())
		}
		if back.CARP != c.CARP {
			t.Errorf("%s: round trip %+v, want %+v", tt.interval, back.CARP, c.CARP)
		}
	}
}

func TestParseConfigIntervalErrors(t *testing.T) {
	carpKeys := func(kv map[string]any) func(m map[string]any) {
		return func(m map[string]any) { m["carp"] = kv }
	}
	const rng = "out of range 10ms-992ms (rounded to 1/256 s; longer: carp.advbase, carp.advskew)"
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"too short", carpKeys(map[string]any{"interval": "5ms"}), "carp.interval 5ms " + rng},
		{"too long", carpKeys(map[string]any{"interval": "1s"}), "carp.interval 1s " + rng},
		{"negative", carpKeys(map[string]any{"interval": "-100ms"}), "carp.interval -100ms " + rng},
		{"with advskew", carpKeys(map[string]any{"interval": "100ms", "advskew": 100}),
			"carp.interval 100ms set with carp.advbase 0 and carp.advskew 100, want them unset (carp.interval sets both)"},
		{"with advbase", carpKeys(map[string]any{"interval": "100ms", "advbase": 1}),
			"carp.interval 100ms set with carp.advbase 1 and carp.advskew 0, want them unset (carp.interval sets both)"},
		{"with vrrp3", carpKeys(map[string]any{"interval": "100ms", "protocol": "vrrp3"}), "carp.interval set with carp.protocol vrrp3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(edit(t, tt.edit)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A duration must stay a duration.
	if _, err := ParseConfig(strings.NewReader(edit(t, carpKeys(map[string]any{"interval": 100})))); err == nil {
		t.Error("carp.interval 100 (a number) accepted")
	}
}

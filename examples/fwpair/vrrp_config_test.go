package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
)

func TestParseConfigVRRP(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(edit(t, func(m map[string]any) {
		m["carp"] = map[string]any{"protocol": "vrrp3", "priority": 150, "advert_int": "100ms", "preempt": true}
	})))
	if err != nil {
		t.Fatal(err)
	}
	if c.CARP.Protocol != "vrrp3" || c.CARP.Priority != 150 || c.CARP.AdvertInt.Duration != 100*time.Millisecond || c.CARP.AdvBase != 0 {
		t.Errorf("carp section %+v", c.CARP)
	}
	g := c.CARP.groupConfig(carp.Config{VHID: 1})
	if g.Protocol != carp.ProtocolVRRPv3 || g.Priority != 150 || g.AdvertInterval != 100*time.Millisecond ||
		g.DemotionWeight != 255 || g.AdvBase != 0 || g.Password != nil {
		t.Errorf("group config %+v", g)
	}

	// Defaults: priority 100, 1 s.
	c, err = ParseConfig(strings.NewReader(edit(t, func(m map[string]any) { m["carp"] = map[string]any{"protocol": "vrrp3"} })))
	if err != nil {
		t.Fatal(err)
	}
	if c.CARP.Priority != carp.DefaultPriority || c.CARP.AdvertInt.Duration != time.Second {
		t.Errorf("defaults %+v", c.CARP)
	}
	// The String form parses back to the same.
	back, err := ParseConfig(strings.NewReader(c.String()))
	if err != nil {
		t.Fatalf("String output does not parse: %v\n%s", err, c.String())
	}
	if back.CARP != c.CARP {
		t.Errorf("round trip: %+v, want %+v", back.CARP, c.CARP)
	}

	// CARP stays the default and maps as before.
	c, err = ParseConfig(strings.NewReader(edit(t, func(m map[string]any) { m["carp"] = map[string]any{"advskew": 100} })))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.CARP.groupConfig(carp.Config{}); g.Protocol != carp.ProtocolCARP || g.AdvSkew != 100 || g.AdvBase != 1 || g.Priority != 0 {
		t.Errorf("CARP group config %+v", g)
	}
}

func TestParseConfigVRRPErrors(t *testing.T) {
	vrrp := func(kv map[string]any) func(m map[string]any) {
		return func(m map[string]any) {
			kv["protocol"] = "vrrp3"
			m["carp"] = kv
		}
	}
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"unknown protocol", func(m map[string]any) { m["carp"] = map[string]any{"protocol": "vrrp2"} }, `carp.protocol "vrrp2" not one of carp, vrrp3`},
		{"priority 255", vrrp(map[string]any{"priority": 255}), "carp.priority 255 out of range 1-254"},
		{"interval 5ms", vrrp(map[string]any{"advert_int": "5ms"}), "carp.advert_int 5ms out of range 10ms-40.95s in steps of 10ms"},
		{"interval 15ms", vrrp(map[string]any{"advert_int": "15ms"}), "carp.advert_int 15ms out of range 10ms-40.95s in steps of 10ms"},
		{"interval 41s", vrrp(map[string]any{"advert_int": "41s"}), "carp.advert_int 41s out of range 10ms-40.95s in steps of 10ms"},
		{"password with vrrp3", vrrp(map[string]any{"password": "x"}), "carp.password set with carp.protocol vrrp3"},
		{"advskew with vrrp3", vrrp(map[string]any{"advskew": 100}), "carp.advskew set with carp.protocol vrrp3"},
		{"advbase with vrrp3", vrrp(map[string]any{"advbase": 2}), "carp.advbase set with carp.protocol vrrp3"},
		{"dead ratio with vrrp3", vrrp(map[string]any{"dead_ratio": 3}), "carp.dead_ratio set with carp.protocol vrrp3"},
		{"priority with carp", func(m map[string]any) { m["carp"] = map[string]any{"priority": 100} }, "carp.priority 100 set with carp.protocol carp"},
		{"interval with carp", func(m map[string]any) { m["carp"] = map[string]any{"advert_int": "1s"} }, "carp.advert_int 1s set with carp.protocol carp"},
		{"accept with carp", func(m map[string]any) { m["carp"] = map[string]any{"accept": false} }, "carp.accept false set with carp.protocol carp, want it unset (vrrp3 only"},
		{"accept not a bool", vrrp(map[string]any{"accept": "no"}), "carp.accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(edit(t, tt.edit)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestAcceptMode: VRRPv3 accepts unless carp.accept is false (keepalived's
// default and its no_accept); CARP always accepts.
func TestAcceptMode(t *testing.T) {
	for _, tt := range []struct {
		carp map[string]any
		want bool
	}{
		{map[string]any{}, true},
		{map[string]any{"protocol": "vrrp3"}, true},
		{map[string]any{"protocol": "vrrp3", "accept": true}, true},
		{map[string]any{"protocol": "vrrp3", "accept": false}, false},
	} {
		c, err := ParseConfig(strings.NewReader(edit(t, func(m map[string]any) { m["carp"] = tt.carp })))
		if err != nil {
			t.Fatalf("carp %v: %v", tt.carp, err)
		}
		if got := c.CARP.accepts(); got != tt.want {
			t.Errorf("carp %v: accepts() = %v, want %v", tt.carp, got, tt.want)
		}
		back, err := ParseConfig(strings.NewReader(c.String()))
		if err != nil || back.CARP.accepts() != tt.want {
			t.Errorf("carp %v: -check output parses back to accepts() %v (%v)", tt.carp, back.CARP.accepts(), err)
		}
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
)

// The timeline explains each CARP word once, before the first event, and
// does not call the rebooted node's table empty and full at once.
func TestLegend(t *testing.T) {
	o := defaultOptions()
	o.Conns = 200
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), o, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		s := out.String()
		first := strings.Index(s, "s  node1 ") // the first timed event
		for _, word := range []string{"advbase/advskew:", "master-down:", "demotion:"} {
			if n := strings.Count(s, word); n != 1 {
				t.Errorf("legend %q shown %d times, want once", word, n)
			}
			if i := strings.Index(s, word); i > first {
				t.Errorf("legend %q after the first event", word)
			}
		}
		if strings.Contains(s, "all in its table (its own") {
			t.Errorf("the rebooted node's table is called empty, then full:\n%s", s)
		}
	})
}

// With -protocol vrrp3 the timeline explains the VRRP words instead, each
// once and before the first event, and none of CARP's.
func TestLegendVRRP(t *testing.T) {
	o := defaultOptions()
	o.Conns, o.Protocol = 200, "vrrp3"
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), o, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		s := out.String()
		first := strings.Index(s, "s  node1 ")
		for _, word := range []string{"priority:", "advert interval:", "skew:", "master-down:", "demotion:"} {
			if n := strings.Count(s, word); n != 1 {
				t.Errorf("legend %q shown %d times, want once", word, n)
			}
			if i := strings.Index(s, word); i > first {
				t.Errorf("legend %q after the first event", word)
			}
		}
		for _, carpWord := range []string{"advskew", "advbase", "demote "} {
			if strings.Contains(s, carpWord) {
				t.Errorf("VRRP timeline uses CARP's %q:\n%s", carpWord, s)
			}
		}
	})
}

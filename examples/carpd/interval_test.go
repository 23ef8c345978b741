package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// TestIntervalGroup checks that --interval and --advbase 0 reach the group
// as sub-second CARP: advbase 0 on the wire, an advert every advskew/256 s
// and a master-down interval of three adverts (not ucarp's single one).
func TestRealtimeFlag(t *testing.T) {
	o, err := parseArgs(append(base, "--realtime", "50"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Realtime != 50 {
		t.Errorf("Realtime %d, want 50", o.Realtime)
	}
	for _, v := range []string{"0", "100", "x"} {
		if _, err := parseArgs(append(base, "--realtime", v)); err == nil || err.Error() != "--realtime "+v+" out of range 1-99" {
			t.Errorf("--realtime %s: %v", v, err)
		}
	}
}

func TestIntervalGroup(t *testing.T) {
	tests := []struct {
		args       []string
		skew       uint8
		advert     time.Duration
		masterDown time.Duration
	}{
		{[]string{"--interval", "100ms"}, 26, 26 * tick, 3 * 26 * tick},
		{[]string{"-b", "0", "-k", "51", "-r", "4"}, 51, 51 * tick, 4 * 51 * tick},
		{[]string{"--interval", "250ms", "-r", "2"}, 64, 250 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		o, err := parseArgs(append(base, tt.args...))
		if err != nil {
			t.Fatal(err)
		}
		c := o.groupConfig(carp.Config{
			Addrs:     []netip.Addr{netip.MustParseAddr("10.0.0.254")},
			Transport: carptest.NewSegment(1).Join(carp.IPv4),
		})
		if c.AdvBase != 0 || !c.ZeroAdvBase || c.AdvSkew != tt.skew {
			t.Errorf("%v: advbase %d (zero %v) advskew %d, want 0 (zero true) %d", tt.args, c.AdvBase, c.ZeroAdvBase, c.AdvSkew, tt.skew)
		}
		g, err := carp.NewGroup(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.AdvertInterval(); got != tt.advert {
			t.Errorf("%v: advert interval %v, want %v", tt.args, got, tt.advert)
		}
		if got := g.MasterDownInterval(); got != tt.masterDown {
			t.Errorf("%v: master-down interval %v, want %v", tt.args, got, tt.masterDown)
		}
		g.Close()
	}
}

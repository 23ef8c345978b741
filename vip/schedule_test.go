package vip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScheduleOffsets(t *testing.T) {
	s := time.Second
	tests := []struct {
		name   string
		sched  Schedule
		advert time.Duration
		want   []time.Duration // offsets of rounds 0..; listing stops at 6 rounds
	}{
		{"zero value: OpenBSD", Schedule{}, s, []time.Duration{0, 2 * s}},
		{"zero value, advbase 2", Schedule{}, 2 * s, []time.Duration{0, 4 * s}},
		{"burst", BurstSchedule(), s, []time.Duration{0, 1100 * time.Millisecond, 2200 * time.Millisecond, 3300 * time.Millisecond, 4400 * time.Millisecond}},
		{"no repeats", Schedule{Repeats: NoRepeats}, s, []time.Duration{0}},
		{"refresh", Schedule{Repeats: NoRepeats, Refresh: 30 * s}, s, []time.Duration{0, 30 * s, 60 * s, 90 * s, 120 * s, 150 * s}},
		{"repeats then refresh", Schedule{Interval: s, Repeats: 2, Refresh: 10 * s}, s, []time.Duration{0, s, 2 * s, 12 * s, 22 * s, 32 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.sched.validate(); err != nil {
				t.Fatal(err)
			}
			p := tt.sched.plan(tt.advert)
			var got []time.Duration
			for i := 0; i < 6; i++ {
				d, ok := p.offset(i)
				if !ok {
					break
				}
				got = append(got, d)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("offsets (-want +got):\n%s", diff)
			}
			if _, ok := p.offset(-1); ok {
				t.Error("offset(-1) exists")
			}
		})
	}
}

func TestVIPResolve(t *testing.T) {
	pfx := netip.MustParsePrefix
	onIf := []netip.Prefix{
		pfx("10.0.0.1/32"),    // a host address: no subnet
		pfx("192.0.2.1/24"),   // on-link IPv4 subnet
		pfx("fe80::1/64"),     // link-local
		pfx("2001:db8::1/64"), // on-link IPv6 subnet
		pfx("198.51.100.7/25"),
	}
	tests := []struct {
		vip  VIP
		want netip.Prefix
	}{
		{VIP{Addr: netip.MustParseAddr("192.0.2.10")}, pfx("192.0.2.10/24")},
		{VIP{Addr: netip.MustParseAddr("192.0.2.10"), Bits: 32}, pfx("192.0.2.10/32")},
		{VIP{Addr: netip.MustParseAddr("192.0.2.10"), Bits: 28}, pfx("192.0.2.10/28")},
		{VIP{Addr: netip.MustParseAddr("198.51.100.200")}, pfx("198.51.100.200/32")}, // outside the /25
		{VIP{Addr: netip.MustParseAddr("10.0.0.2")}, pfx("10.0.0.2/32")},
		{VIP{Addr: netip.MustParseAddr("2001:db8::10")}, pfx("2001:db8::10/64")},
		{VIP{Addr: netip.MustParseAddr("2001:db8:1::10")}, pfx("2001:db8:1::10/128")},
		{VIP{Addr: netip.MustParseAddr("fe80::10")}, pfx("fe80::10/64")},
	}
	for _, tt := range tests {
		t.Run(tt.vip.String(), func(t *testing.T) {
			if got := tt.vip.resolve(onIf); got != tt.want {
				t.Errorf("resolve = %v; want %v", got, tt.want)
			}
		})
	}
	// The VIP already installed as a /24 keeps its length when it is
	// resolved again from a list that contains it.
	v := VIP{Addr: netip.MustParseAddr("203.0.113.5")}
	if got := v.resolve([]netip.Prefix{pfx("203.0.113.5/24")}); got != pfx("203.0.113.5/32") {
		t.Errorf("resolve from itself = %v; want /32 (the VIP says nothing about the subnet)", got)
	}
}

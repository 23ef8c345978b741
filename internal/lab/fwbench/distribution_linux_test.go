package fwbench

import (
	"testing"
	"time"
)

func TestDistribution(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		in   []time.Duration
		want string
	}{
		{nil, "none"},
		{ms(450), "n 1, p50 450, p90 450, p99 450, max 450 ms; [0s,300ms) 0 [300ms,500ms) 1 [500ms,750ms) 0 [750ms,1s) 0 [1s,2s) 0 >=2s 0"},
		// A gap on a band's edge falls in the band above it.
		{ms(1000, 300, 299, 2500, 500, 750, 1999), "n 7, p50 750, p90 1999, p99 1999, max 2500 ms; [0s,300ms) 1 [300ms,500ms) 1 [500ms,750ms) 1 [750ms,1s) 1 [1s,2s) 2 >=2s 1"},
	} {
		if got := distribution(tc.in); got != tc.want {
			t.Errorf("distribution(%v) =\n%s\nwant\n%s", tc.in, got, tc.want)
		}
	}
}

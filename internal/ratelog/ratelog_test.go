package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var l Limiter[string]
	t0 := time.Unix(1000, 0)
	type step struct {
		kind     string
		at       time.Duration
		wantOK   bool
		wantHeld uint64
	}
	steps := []step{
		{"a", 0, true, 0},                 // the first line of a kind goes through
		{"a", time.Second, false, 0},      // held back
		{"b", time.Second, true, 0},       // kinds are independent
		{"a", DefaultEvery - 1, false, 0}, // still inside the interval
		{"a", DefaultEvery, true, 2},      // the next line says 2 were held back
		{"a", DefaultEvery + time.Second, false, 0},
		{"a", 3 * DefaultEvery, true, 1},
	}
	for i, s := range steps {
		held, ok := l.Allow(s.kind, t0.Add(s.at))
		if ok != s.wantOK || held != s.wantHeld {
			t.Errorf("step %d: Allow(%q, +%v) = %d, %v; want %d, %v", i, s.kind, s.at, held, ok, s.wantHeld, s.wantOK)
		}
	}
}

func TestLimiterEvery(t *testing.T) {
	l := Limiter[int]{Every: time.Second}
	t0 := time.Unix(1000, 0)
	if _, ok := l.Allow(1, t0); !ok {
		t.Fatal("first line held back")
	}
	if _, ok := l.Allow(1, t0.Add(time.Second-1)); ok {
		t.Error("a second line inside Every went through")
	}
	if held, ok := l.Allow(1, t0.Add(time.Second)); !ok || held != 1 {
		t.Errorf("after Every: %d, %v; want 1, true", held, ok)
	}
}

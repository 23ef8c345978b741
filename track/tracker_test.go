package track

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recDemoter records every SetDemotion call.
type recDemoter struct {
	mu    sync.Mutex
	calls []string
	cur   map[string]int
}

func (r *recDemoter) SetDemotion(source string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		r.cur = map[string]int{}
	}
	r.calls = append(r.calls, source+"="+strconv.Itoa(n))
	if n <= 0 {
		delete(r.cur, source)
	} else {
		r.cur[source] = n
	}
}

func (r *recDemoter) demotion(source string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur[source]
}

func (r *recDemoter) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// scripted is a check whose results follow a pattern ('+' healthy, '-'
// failed, 'h' hang until the context ends), repeating the last.
type scripted struct {
	mu      sync.Mutex
	pattern string
	i       int
}

func (s *scripted) Check(ctx context.Context) error {
	s.mu.Lock()
	c := s.pattern[min(s.i, len(s.pattern)-1)]
	s.i++
	s.mu.Unlock()
	switch c {
	case '+':
		return nil
	case 'h':
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("down")
}

func start(t *testing.T, c Check, d Demoter, cfg Config) *Tracker {
	t.Helper()
	tr, err := New(c, d, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestHysteresis walks a tracker through a result pattern, one interval at
// a time, and checks the demotion after each result.
func TestHysteresis(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		pattern    string
		want       string // demotion after each check: '0' none, 'D' demoted
	}{
		{"first result sets state (healthy)", 2, 3, "+--+---", "000000D"},
		{"first result sets state (failed)", 3, 2, "-++-+++", "DDDDDD0"},
		{"fall 3 needs three in a row", 1, 3, "+--+---+", "000000D0"},
		{"rise 2 then fall 1", 2, 1, "+-+-++-", "0DDDD0D"},
		{"flapping script never settles with rise/fall 2", 2, 2, "+-+-+-+-+-", "0000000000"},
		{"flapping with fall 1 and rise 1 follows every result", 1, 1, "+-+-", "0D0D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &recDemoter{}
				c := &scripted{pattern: tt.pattern}
				tr := start(t, c, d, Config{Name: "x", Interval: time.Second, Rise: tt.rise, Fall: tt.fall, Weight: 7})
				var got strings.Builder
				for range tt.pattern {
					synctest.Wait() // the check at this instant has run
					if n := d.demotion("track:x"); n == 7 {
						got.WriteByte('D')
					} else if n == 0 {
						got.WriteByte('0')
					} else {
						t.Fatalf("demotion %d, want 0 or 7", n)
					}
					time.Sleep(time.Second)
				}
				if diff := cmp.Diff(tt.want, got.String()); diff != "" {
					t.Errorf("demotion per check (-want +got):\n%s", diff)
				}
				if s := tr.Status(); s.Checks < uint64(len(tt.pattern)) {
					t.Errorf("Checks = %d, want >= %d", s.Checks, len(tt.pattern))
				}
			})
		})
	}
}

// TestTimeout: a check that hangs is cancelled after Timeout and counts
// as a failure; with Weight 0 the demotion is FaultDemotion.
func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &recDemoter{}
		tr := start(t, &scripted{pattern: "h"}, d, Config{Name: "hang", Interval: time.Second, Timeout: 300 * time.Millisecond})
		time.Sleep(299 * time.Millisecond)
		synctest.Wait()
		if n := d.demotion("track:hang"); n != 0 {
			t.Fatalf("demoted %d before the timeout", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := d.demotion("track:hang"); n != FaultDemotion {
			t.Fatalf("demotion after timeout = %d, want %d", n, FaultDemotion)
		}
		s := tr.Status()
		if s.Healthy || !errors.Is(s.LastErr, context.DeadlineExceeded) || !strings.Contains(s.LastErr.Error(), "timed out after 300ms") {
			t.Errorf("status = %+v, want failed with a timeout", s)
		}
	})
}

// TestCloseClears: closing a failed tracker clears its demotion, also while
// a check hangs, and nothing raises it afterwards.
func TestCloseClears(t *testing.T) {
	for _, pattern := range []string{"-", "-h"} {
		t.Run(pattern, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &recDemoter{}
				tr := start(t, &scripted{pattern: pattern}, d, Config{Name: "c", Interval: time.Second, Timeout: time.Hour, Weight: 3})
				synctest.Wait()
				time.Sleep(time.Second) // the second check runs (hangs for "-h")
				synctest.Wait()
				if n := d.demotion("track:c"); n != 3 {
					t.Fatalf("demotion = %d, want 3", n)
				}
				if err := tr.Close(); err != nil {
					t.Fatal(err)
				}
				if err := tr.Close(); err != nil { // idempotent
					t.Fatal(err)
				}
				if n := d.demotion("track:c"); n != 0 {
					t.Fatalf("demotion after Close = %d, want 0", n)
				}
				time.Sleep(10 * time.Second)
				synctest.Wait()
				log := d.log()
				if last := log[len(log)-1]; last != "track:c=0" {
					t.Errorf("calls %v: a call after Close's clear", log)
				}
				if err := tr.Start(); !errors.Is(err, ErrClosed) {
					t.Errorf("Start after Close = %v, want ErrClosed", err)
				}
			})
		})
	}
}

// TestCloseUnstarted: Close of a tracker never started clears the source
// too (it may have been set by an earlier tracker of the same name).
func TestCloseUnstarted(t *testing.T) {
	d := &recDemoter{}
	tr, err := New(CheckFunc(func(context.Context) error { return nil }), d, &Config{Name: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"track:u=0"}, d.log()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := CheckFunc(func(context.Context) error { return nil })
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "track: Config.Name empty"},
		{Config{Name: "a", Interval: 5 * time.Millisecond}, "track: Config.Interval 5ms out of range (0 or at least 10ms)"},
		{Config{Name: "a", Timeout: -1}, "track: Config.Timeout -1ns out of range (0 or positive)"},
		{Config{Name: "a", Rise: -1}, "track: Config.Rise -1 out of range 0-1000 (0 means 1)"},
		{Config{Name: "a", Fall: 1001}, "track: Config.Fall 1001 out of range 0-1000 (0 means 1)"},
		{Config{Name: "a", Weight: 256}, "track: Config.Weight 256 out of range 0-255 (0 means fault)"},
	}
	for _, tt := range tests {
		_, err := New(ok, &recDemoter{}, &tt.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := New(nil, &recDemoter{}, &Config{Name: "a"}); err == nil {
		t.Error("New(nil check) succeeded")
	}
	if _, err := New(ok, nil, &Config{Name: "a"}); err == nil {
		t.Error("New(nil demoter) succeeded")
	}
}

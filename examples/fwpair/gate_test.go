package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/google/go-cmp/cmp"
)

func TestGateRuleset(t *testing.T) {
	want := `table inet fwpair_gate
delete table inet fwpair_gate
table inet fwpair_gate {
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname { "lan0", "wan0" } counter drop
	}
}
`
	if diff := cmp.Diff(want, GateRuleset([]string{"lan0", "wan0"})); diff != "" {
		t.Errorf("closed gate (-want +got):\n%s", diff)
	}
	if got, want := gateOpenRuleset(), "table inet fwpair_gate\ndelete table inet fwpair_gate\n"; got != want {
		t.Errorf("open gate = %q, want %q", got, want)
	}
}

// fakeNft records the scripts a gate runs and fails while fail holds an
// error.
type fakeNft struct {
	mu      sync.Mutex
	scripts []string
	fail    error
	ran     chan struct{} // receives after every run, if not nil
}

func (f *fakeNft) run(ctx context.Context, nft, script string) error {
	f.mu.Lock()
	f.scripts = append(f.scripts, script)
	err := f.fail
	f.mu.Unlock()
	if f.ran != nil {
		f.ran <- struct{}{}
	}
	return err
}

func (f *fakeNft) setFail(err error) { f.mu.Lock(); f.fail = err; f.mu.Unlock() }

func (f *fakeNft) runs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.scripts...)
}

func testGate(f *fakeNft) *gate {
	return &gate{nft: "nft", ifaces: []string{"lan0", "wan0"}, log: slog.New(slog.DiscardHandler), run: f.run,
		stop: make(chan struct{})}
}

func TestGateCloseThenOpenOnce(t *testing.T) {
	f := &fakeNft{}
	g := testGate(f)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if st := g.Status(); st.State != "closed" || !st.OpenedAt.IsZero() {
		t.Errorf("after Close: %+v", st)
	}
	if err := g.Open(gateReasonBulk); err != nil {
		t.Fatal(err)
	}
	if err := g.Open(gateReasonMaster); err != nil { // open already: nothing to run
		t.Fatal(err)
	}
	want := []string{GateRuleset([]string{"lan0", "wan0"}), gateOpenRuleset()}
	if diff := cmp.Diff(want, f.runs()); diff != "" {
		t.Errorf("nft scripts (-want +got):\n%s", diff)
	}
	st := g.Status()
	if st.State != "open" || st.Reason != gateReasonBulk || st.OpenedAt.IsZero() || st.Err != "" {
		t.Errorf("after Open: %+v", st)
	}
}

func TestGateErrorsNamed(t *testing.T) {
	f := &fakeNft{fail: errors.New("nft: exit status 1: Error: Could not process rule")}
	g := testGate(f)
	if err := g.Close(); err == nil || !strings.HasPrefix(err.Error(), "forwarding gate: closing on lan0, wan0: ") || !errors.Is(err, f.fail) {
		t.Errorf("Close error %v", err)
	}
	err := g.Open(gateReasonMaster)
	if err == nil || !strings.HasPrefix(err.Error(), "forwarding gate: opening (became MASTER): ") || !errors.Is(err, f.fail) {
		t.Errorf("Open error %v", err)
	}
	if st := g.Status(); st.State != "closed" || st.Err != err.Error() {
		t.Errorf("after a failed Open: %+v", st)
	}
}

// OpenAsync retries a failing nft every gateRetry until it succeeds, one
// attempt at a time.
func TestGateOpenAsyncRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNft{fail: errors.New("busy"), ran: make(chan struct{})}
		g := testGate(f)
		start := time.Now()
		g.OpenAsync(gateReasonFounder)
		g.OpenAsync(gateReasonBulk) // one attempt at a time: ignored
		<-f.ran                     // first attempt failed
		f.setFail(nil)
		<-f.ran // the retry
		if err := g.Stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != gateRetry {
			t.Errorf("retried after %v, want %v", d, gateRetry)
		}
		st := g.Status()
		if st.State != "open" || st.Reason != gateReasonFounder || st.Err != "" {
			t.Errorf("after the retry: %+v", st)
		}
		if n := len(f.runs()); n != 2 {
			t.Errorf("%d nft runs, want 2", n)
		}
	})
}

// Stop ends the retries of a gate that cannot open.
func TestGateStopEndsRetries(t *testing.T) {
	f := &fakeNft{fail: errors.New("busy"), ran: make(chan struct{}, 1)}
	g := testGate(f)
	g.OpenAsync(gateReasonBulk)
	<-f.ran
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := g.Status(); st.State != "closed" || st.Err == "" {
		t.Errorf("after Stop: %+v", st)
	}
}

func TestGateNilIsDisabled(t *testing.T) {
	var g *gate
	if err := errors.Join(g.Close(), g.Open(gateReasonMaster), g.Stop()); err != nil {
		t.Fatal(err)
	}
	g.OpenAsync(gateReasonBulk)
	if st := g.Status(); st.State != "disabled" {
		t.Errorf("nil gate: %+v", st)
	}
}

// recordDemoter is a Demoter that records its calls.
type recordDemoter struct{ calls []string }

func (r *recordDemoter) SetDemotion(source string, n int) { r.calls = append(r.calls, source) }

// syncDemoter passes every demotion on, also without a gate.
func TestSyncDemoterPassesOn(t *testing.T) {
	r := &recordDemoter{}
	s := syncDemoter{next: r, d: &daemon{}}
	s.SetDemotion(pfsync.DemoteSourceBulk, 32)
	s.SetDemotion("other", 1)
	if diff := cmp.Diff([]string{pfsync.DemoteSourceBulk, "other"}, r.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestConfigForwardingGate(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  bool
	}{{"", true}, {`, "forwarding": {"gate": true}`, true}, {`, "forwarding": {"gate": false}`, false}} {
		c, err := ParseConfig(strings.NewReader(strings.TrimSuffix(minimal, "}") + tc.extra + "}"))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if got := c.Forwarding.gateOn(); got != tc.want {
			t.Errorf("%q: gate %v, want %v", tc.extra, got, tc.want)
		}
		if diff := cmp.Diff([]string{"lan0"}, c.groupInterfaces()); diff != "" {
			t.Errorf("data interfaces (-want +got):\n%s", diff)
		}
	}
}

// A second fwpair must not close the gate of a running one: it finds the
// first one's control socket answering before it touches the gate.
func TestCheckNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwpair.sock")
	if err := checkNotRunning(path); err != nil {
		t.Errorf("no socket: %v", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skip(err)
	}
	defer ln.Close()
	if err := checkNotRunning(path); err == nil || !strings.Contains(err.Error(), "another fwpair is running") {
		t.Errorf("socket answering: %v", err)
	}
}

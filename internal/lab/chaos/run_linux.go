package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// Run builds the daemons and the two labs, starts the carpd group and the
// firewall pair with flows, injects events for cfg.Duration while checking
// the invariants, and logs a summary. It returns the violations; setup
// problems fail t.
func Run(t testing.TB, cfg Config) []Violation {
	t.Helper()
	netns.Require(t)
	netns.RequireBinary(t, "nft")
	netns.RequireBinary(t, "tc")
	t.Logf("chaos: seed %d (reproduce the schedule with -chaos.seed=%d), duration %v, slack %v, poll %v, kinds %q (none: all)",
		cfg.Seed, cfg.Seed, cfg.Duration, cfg.Slack, cfg.Poll, cfg.Kinds)
	cs := newCarpd(t, build(t, "carpd", cfg.Race))
	fw := newFwpair(t, build(t, "fwpair", cfg.Race))
	host := &system{name: "host"}
	s := NewSoak(t, cfg, cs, fw)
	host.track = map[string]*split{}

	// Start-up: the carpd nodes together (the preferred one wins after a
	// master-down interval), fw1 alone until it is master, then fw2.
	for _, n := range cs.nodes {
		s.start(n)
	}
	s.start(fw.nodes[0])
	if !s.waitModel(30*time.Second, func() bool { return len(fw.masters(1)) == 1 && len(fw.masters(2)) == 1 }) {
		t.Fatalf("chaos: fw1 did not become master")
	}
	s.start(fw.nodes[1])
	s.started = time.Now()
	for _, sys := range []*system{cs, fw} {
		if err := s.settle(sys, &event{sys: sys}); err != nil {
			t.Fatalf("chaos: start-up: %v; violations %v", err, s.Violations())
		}
	}
	srv, err := fwbench.StartEchoServer(fw.pair.Server, fwbench.ServerAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	fs, err := fwbench.StartFlows(fw.pair.Client, fwbench.ServerAddr, cfg.TCPFlows, cfg.UDPFlows, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Stop(0) })
	s.flows, s.echo = fs, srv
	if n := fs.WaitRecovered(time.Now(), 30*time.Second); n != fs.Len() {
		t.Fatalf("chaos: %d of %d flows work before any event", n, fs.Len())
	}
	if !fwbench.Poll(30*time.Second, func() bool {
		st, err := fwbench.QueryFwpair(fw.nodes[1].socket)
		return err == nil && st.Sync.Records >= fs.Len()
	}) {
		t.Fatalf("chaos: the flows were not replicated to fw2")
	}

	// The soak proper.
	s.mu.Lock()
	s.started = time.Now()
	s.violations = nil // start-up is not under test
	s.mu.Unlock()
	stop, obsDone := make(chan struct{}), make(chan struct{})
	go s.observe(stop, obsDone)
	deadline := time.Now().Add(cfg.Duration)
	errc := make(chan error, 2)
	for i, sys := range []*system{cs, fw} {
		r := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		go func() { errc <- s.inject(sys, r, deadline, stop) }()
	}
	stressDone := make(chan struct{})
	go func() {
		defer close(stressDone)
		s.stress(host, cs.sw, rand.New(rand.NewPCG(cfg.Seed, 2)), deadline, stop)
	}()
	var runErr error
	for range 2 {
		if err := <-errc; err != nil && runErr == nil {
			runErr = err
			close(stop) // a system that does not settle ends the soak
		}
	}
	if runErr == nil {
		close(stop)
	}
	<-stressDone
	<-obsDone
	elapsed := time.Since(s.started)

	// Every live flow still moves at the end. The final summary does not
	// count a TCP message sent but not echoed: Flows.Stop can let a
	// writer send one more message after its drain check and then close
	// the socket under it, and a TCP stream cannot lose bytes silently
	// anyway (a reset or a stall is caught by the checks).
	if runErr == nil {
		s.checkFlows(fw)
	}
	final := fwbench.Summarize(fs.Stop(10*time.Second), false)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks["flows-survive"]++
	if final.TCPFailed > 0 || final.UDPFailed > 0 || srv.Resets() > 0 {
		s.violate(fw, "flows-survive", fmt.Sprintf("at the end: %v; server resets %d; %v", final, srv.Resets(), final.Examples))
	}
	s.checkGrowth()
	s.checkSeen()
	s.ending = true
	t.Logf("chaos: summary after %v (seed %d)%s", elapsed.Round(time.Second), cfg.Seed, s.summary(final))
	if runErr != nil {
		t.Logf("chaos: stopped early: %v", runErr)
	}
	return append([]Violation(nil), s.violations...)
}

// checkSeen reports a virtual address that the observer never saw on
// exactly one node: the observation itself would be broken, and the
// one-holder checks would mean nothing. Called with mu held.
func (s *Soak) checkSeen() {
	for _, sys := range s.systems {
		for a := range sys.vips {
			if s.seen[a] == 0 {
				s.violate(sys, "observer", fmt.Sprintf("%v was never seen on exactly one node", a))
			}
		}
	}
}

// summary formats events, checks, violations, flows and memory. Called
// with mu held.
func (s *Soak) summary(flows fwbench.Summary) string {
	var b strings.Builder
	var ks []string
	total := 0
	for k, n := range s.kinds {
		ks = append(ks, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(ks)
	fmt.Fprintf(&b, "\n  events injected: %d (%s)", total, strings.Join(ks, ", "))
	var cs []string
	for k, n := range s.checks {
		cs = append(cs, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(cs)
	fmt.Fprintf(&b, "\n  invariant checks: %s", strings.Join(cs, ", "))
	var seen []string
	for a, n := range s.seen {
		seen = append(seen, fmt.Sprintf("%v %d", a, n))
	}
	sort.Strings(seen)
	fmt.Fprintf(&b, "\n  address polls that found the address on exactly one node: %s", strings.Join(seen, ", "))
	fmt.Fprintf(&b, "\n  violations: %d", len(s.violations))
	for _, v := range s.violations {
		fmt.Fprintf(&b, "\n    %v", v)
	}
	fmt.Fprintf(&b, "\n  flows: %v; largest gap at a settle check %v", flows, s.maxGap.Round(time.Millisecond))
	fmt.Fprintf(&b, "\n  memory and goroutines per node (samples every %v, goroutines from the status line logged on SIGUSR1; requests unanswered %d):", memEvery, s.unanswered)
	for _, sys := range s.systems {
		for _, n := range sys.nodes {
			var long, first, last *procMem
			peak, peakG := 0, 0
			for _, m := range n.mem {
				if m.samples == 0 {
					continue
				}
				if first == nil {
					first = m
				}
				last = m
				if long == nil || m.lastAt.Sub(m.started) > long.lastAt.Sub(long.started) {
					long = m
				}
				peak = max(peak, m.peakHWM)
				peakG = max(peakG, m.peakGoroutines)
			}
			if long == nil {
				continue
			}
			fmt.Fprintf(&b, "\n    %s: %d processes, peak VmHWM %d KiB, peak goroutines %d; first process at start %v; last process at end %v;"+
				" longest-lived process (pid %d, %v): %v -> %v, peak VmHWM %d KiB, peak goroutines %d",
				n.name, len(n.mem), peak, peakG, first.first, last.last, long.pid, long.lastAt.Sub(long.started).Round(time.Second),
				long.first, long.last, long.peakHWM, long.peakGoroutines)
		}
	}
	return b.String()
}

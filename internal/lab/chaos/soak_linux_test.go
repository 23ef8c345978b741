package chaos

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

var (
	duration = flag.Duration("chaos.duration", 30*time.Second, "how long events are injected (CI: the default; a soak: 30m, with -timeout raised)")
	seed     = flag.Uint64("chaos.seed", 0, "seed of the schedule; 0 picks one from the clock (printed)")
	slack    = flag.Duration("chaos.slack", 500*time.Millisecond, "added to every time bound (observation cadence, a loaded machine)")
	poll     = flag.Duration("chaos.poll", 50*time.Millisecond, "cadence of the address and master checks")
	tcpFlows = flag.Int("chaos.tcp", 20, "long-lived TCP flows through the firewall pair")
	udpFlows = flag.Int("chaos.udp", 4, "UDP flows through the firewall pair")
	race     = flag.Bool("chaos.race", false, "build carpd and fwpair with the race detector")
	only     = flag.String("chaos.kinds", "", "comma-separated event kinds to inject (\"freeze\", \"fwpair/sync-partition\"); empty: all")
)

// TestSoak is the chaos soak (see the package documentation): short by
// default, as long as -chaos.duration asks.
func TestSoak(t *testing.T) {
	cfg := Config{Duration: *duration, Seed: *seed, Slack: *slack, Poll: *poll,
		TCPFlows: *tcpFlows, UDPFlows: *udpFlows, Race: *race}
	if *only != "" {
		cfg.Kinds = strings.Split(*only, ",")
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a positive duration (e.g. 30m)", s)
		}
		cfg.Duration = d
	}
	for _, v := range Run(t, cfg) {
		t.Errorf("%v", v)
	}
}

// TestSoakSeesDuplicateAddress is the control of the address observer: the
// carpd group alone, settled, then its address added by hand on a backup
// whose daemon is frozen (a running one removes it at once: "removing a VIP
// found while not MASTER"). The soak must report a one-holder violation,
// and not before the bound.
func TestSoakSeesDuplicateAddress(t *testing.T) {
	netns.Require(t)
	cs := newCarpd(t, build(t, "carpd", false))
	s := NewSoak(t, Config{Slack: *slack, Poll: *poll}, cs)
	for _, n := range cs.nodes {
		s.start(n)
	}
	s.started = time.Now()
	if err := s.settle(cs, &event{sys: cs}); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go s.observe(stop, done)
	defer func() {
		close(stop)
		<-done
	}()
	c3 := cs.nodes[2]
	if err := c3.signal(c3.proc, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer c3.proc.Signal(syscall.SIGCONT)
	added := time.Now()
	c3.ns.AddAddr("eth0", netip.PrefixFrom(carpdVIP, 24))
	var got []Violation
	if !s.waitModel(advertInterval+*slack+10*time.Second, func() bool {
		got = append(got[:0], s.violations...)
		return len(got) > 0
	}) {
		t.Fatalf("%v on c1 and c3 was not reported", carpdVIP)
	}
	took := time.Since(added)
	t.Logf("reported after %v: %v", took.Round(time.Millisecond), got)
	if got[0].Invariant != "one-holder" || !strings.Contains(got[0].Detail, carpdVIP.String()+" on 2 nodes (c1,c3)") {
		t.Errorf("first violation %v, want one-holder of %v on c1 and c3", got[0], carpdVIP)
	}
	if took < advertInterval+*slack {
		t.Errorf("reported after %v, before its bound %v", took, advertInterval+*slack)
	}
	s.mu.Lock()
	s.ending = true
	s.mu.Unlock()
}

// TestGoroutinesOf reads the goroutine count from status lines written the
// way the daemons write them (slog's text handler): carpd's attribute,
// fwpair's JSON status as a quoted attribute. Other lines have none.
func TestGoroutinesOf(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.With("iface", "eth0", "vhid", 7).Info("status", "state", "MASTER", "demotion", 0, "goroutines", 17, "ipackets", 3)
	log.With("node", 2).Info("status", "status", json.RawMessage(`{"node":2,"uptime":"1m0s","started_as_master":false,"goroutines":42,"groups":[]}`))
	log.Info("final status", "state", "BACKUP", "goroutines", 9)
	log.Info("carp: state changed", "vhid", 7, "state", "MASTER")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, tt := range []struct {
		status bool // the line is a SIGUSR1 status line
		want   int
		ok     bool
	}{
		{status: true, want: 17, ok: true},
		{status: true, want: 42, ok: true},
		{status: false, want: 9, ok: true},
		{status: false, ok: false},
	} {
		line := lines[i]
		if got := strings.Contains(line, statusMark); got != tt.status {
			t.Errorf("%q contains %q = %v, want %v", line, statusMark, got, tt.status)
		}
		if got, ok := goroutinesOf(line); got != tt.want || ok != tt.ok {
			t.Errorf("goroutinesOf(%q) = %d, %v, want %d, %v", line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestCheckGrowthGoroutines: a daemon process whose goroutine count grew
// by more than maxGoroutineGrowth over growthAfter breaks flat-memory; one
// that grew by exactly that much, or ran too briefly to judge, does not.
func TestCheckGrowthGoroutines(t *testing.T) {
	base := memSample{RSS: 10 << 10, HWM: 12 << 10, Threads: 8, FDs: 20, Goroutines: 30}
	at := time.Now()
	for _, tt := range []struct {
		name      string
		grow      int
		ran       time.Duration
		violation bool
	}{
		{"within the bound", maxGoroutineGrowth, growthAfter, false},
		{"past the bound", maxGoroutineGrowth + 1, growthAfter, true},
		{"too short to judge", 10 * maxGoroutineGrowth, growthAfter - time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sys := &system{name: "carpd"}
			n := &node{sys: sys, name: "c3"}
			sys.nodes = []*node{n}
			last := base
			last.Goroutines += tt.grow
			b := base
			n.mem = []*procMem{{pid: 1234, baseline: &b, baselineAt: at, last: last, lastAt: at.Add(tt.ran)}}
			s := NewSoak(t, Config{}, sys)
			s.started = at
			s.mu.Lock()
			s.checkGrowth()
			vs := append([]Violation(nil), s.violations...)
			s.mu.Unlock()
			if got := len(vs) > 0; got != tt.violation {
				t.Fatalf("violations %v, want a flat-memory violation: %v", vs, tt.violation)
			}
			if tt.violation && (vs[0].Invariant != "flat-memory" || !strings.Contains(vs[0].Detail, fmt.Sprintf("goroutines %d", last.Goroutines))) {
				t.Errorf("violation %v, want flat-memory naming goroutines %d", vs[0], last.Goroutines)
			}
		})
	}
}

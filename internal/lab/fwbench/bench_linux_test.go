package fwbench

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// fwpairBin is examples/fwpair, built on first use by the benchmarks.
var fwpairBin FwpairBinary

func TestMain(m *testing.M) {
	code := m.Run()
	if err := fwpairBin.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// stackNames are the stacks compared: fwpair writing replicated flows into
// the backup's kernel as they arrive (its default), fwpair keeping them in
// the engine until the takeover commit (conntrackd's external cache), and
// keepalived + conntrackd.
var stackNames = []string{"gocarp-fwpair-direct", "gocarp-fwpair-on-takeover", "keepalived+conntrackd"}

// startStack starts the stack called name on lab l: fw1 until it is
// master, then fw2 until it is backup.
func startStack(b *testing.B, l *Lab, name string) Stack {
	var s Stack
	switch name {
	case "gocarp-fwpair-direct":
		s = &Gocarp{L: l, Bin: fwpairBin.Path(b), Opts: FwpairOptions{Commit: "direct"}, Label: name}
	case "gocarp-fwpair-on-takeover":
		s = &Gocarp{L: l, Bin: fwpairBin.Path(b), Opts: FwpairOptions{Commit: "on-takeover"}, Label: name}
	case fastCARP:
		s = &Gocarp{L: l, Bin: fwpairBin.Path(b), Opts: FwpairOptions{Interval: fastInterval}, Label: name}
	case fastVRRP:
		s = &Gocarp{L: l, Bin: fwpairBin.Path(b), Opts: FwpairOptions{Protocol: "vrrp3", AdvertInt: fastInterval}, Label: name}
	case fastKeepalived:
		s = &Conntrackd{L: l, AdvertInt: fastInterval}
	default:
		s = &Conntrackd{L: l}
	}
	s.Start(1)
	s.WaitMaster(1, 30*time.Second)
	s.Start(2)
	s.WaitBackup(2, 30*time.Second)
	return s
}

// BenchmarkFailover runs FWBENCH_FLOWS (default 1000) long-lived TCP flows
// and 50 UDP flows through fw1, SIGKILLs fw1's HA daemons and cuts its
// links, and reports how many TCP flows survived without a reset or lost
// byte, the largest gap of any flow, the median of the flows' largest gaps,
// and the time until fw2 held both virtual addresses. Run with
// -benchtime 1x.
func BenchmarkFailover(b *testing.B) {
	for _, name := range stackNames {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				runFailover(b, name, 0)
			}
		})
	}
}

// BenchmarkFailoverLoaded is BenchmarkFailover with FWBENCH_EXTRA (default
// 20000) more established flows in the tables (injected on fw1 and
// replicated before the failover), so the takeover has a real commit to
// do.
func BenchmarkFailoverLoaded(b *testing.B) {
	for _, name := range stackNames {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				runFailover(b, name, envInt(b, "FWBENCH_EXTRA", 20000))
			}
		})
	}
}

// runFailover runs one failover of the stack called name and returns every
// flow's statistics and the time from the crash until fw2 was master.
func runFailover(b *testing.B, name string, extra int) ([]FlowStats, time.Duration) {
	l := NewLab(b, "gfb")
	s := startStack(b, l, name)
	nTCP, nUDP := envInt(b, "FWBENCH_FLOWS", 1000), 50
	srv, err := StartEchoServer(l.Server, ServerAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	fs, err := StartFlows(l.Client, ServerAddr, nTCP, nUDP, 150*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Stop(0)
	if n := fs.WaitRecovered(time.Now(), 30*time.Second); n != nTCP+nUDP {
		b.Fatalf("%d of %d flows work before the failover", n, nTCP+nUDP)
	}
	if extra > 0 {
		l.InjectEstablished(1, extra)
	}
	want := nTCP + nUDP + extra
	if !Poll(60*time.Second, func() bool { return s.Replicated(2) >= want }) {
		b.Fatalf("fw2 holds %d of %d flows", s.Replicated(2), want)
	}
	fs.ResetPhase()
	srvResets := srv.Resets()
	crash := time.Now()
	s.Crash(1)
	s.WaitMaster(2, 30*time.Second)
	takeover := time.Since(crash)
	recovered := fs.WaitRecovered(time.Now(), 40*time.Second)
	stats := fs.Stop(15 * time.Second)
	sum := Summarize(stats, true)
	resets := srv.Resets() - srvResets
	if g, ok := s.(*Gocarp); ok {
		b.Logf("fw2 takeover commits: %v", g.Commits(2))
	}
	b.Logf("%s (%d extra entries): takeover %v, recovered %d/%d, server saw %d resets, %v", name, extra,
		takeover.Round(time.Millisecond), recovered, nTCP+nUDP, resets, sum)
	b.ReportMetric(float64(sum.TCP-sum.TCPFailed), "tcp_survived")
	b.ReportMetric(float64(sum.TCP), "tcp_flows")
	b.ReportMetric(float64(sum.UDP-sum.UDPFailed), "udp_survived")
	b.ReportMetric(float64(sum.MaxGap.Milliseconds()), "max_gap_ms")
	b.ReportMetric(float64(sum.P50Gap.Milliseconds()), "p50_gap_ms")
	b.ReportMetric(float64(takeover.Milliseconds()), "takeover_ms")
	return stats, takeover
}

// BenchmarkReplication opens FWBENCH_CONNS (default 4000: client and server sockets share the
// test process, and 10 000 descriptors were the limit seen here) TCP connections
// through fw1 as fast as 32 parallel dialers can and measures how long
// until the backup fw2 holds all of them (gocarp: engine records;
// conntrackd: external cache), reported as replicated connections per
// second from the first connect, as the lag after the last connect, and as
// the CPU time both firewalls' replication daemons spent per connection.
func BenchmarkReplication(b *testing.B) {
	for _, name := range stackNames {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				l := NewLab(b, "gfr")
				s := startStack(b, l, name)
				n := envInt(b, "FWBENCH_CONNS", 4000)
				srv, err := StartEchoServer(l.Server, ServerAddr)
				if err != nil {
					b.Fatal(err)
				}
				base := s.Replicated(2)
				cpu0 := s.CPU()
				start := time.Now()
				conns, err := OpenConns(l.Client, ServerAddr, n, 32)
				if err != nil {
					b.Fatal(err)
				}
				opened := time.Since(start)
				if !Poll(60*time.Second, func() bool { return s.Replicated(2) >= base+n }) {
					b.Fatalf("fw2 holds %d of %d connections after 60 s", s.Replicated(2)-base, n)
				}
				done := time.Since(start)
				cpu := s.CPU() - cpu0
				for _, c := range conns {
					c.Close()
				}
				srv.Close()
				b.Logf("%s: %d connections opened in %v, all on the backup after %v (lag %v)", name, n,
					opened.Round(time.Millisecond), done.Round(time.Millisecond), (done - opened).Round(time.Millisecond))
				b.ReportMetric(float64(n)/done.Seconds(), "replicated_conn/s")
				b.ReportMetric(float64(n)/opened.Seconds(), "opened_conn/s")
				b.ReportMetric(float64((done - opened).Milliseconds()), "lag_ms")
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu_us/conn")
			}
		})
	}
}

// envInt returns the positive integer in environment variable name, or def.
func envInt(b *testing.B, name string, def int) int {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive integer", name, s)
		}
		return n
	}
	return def
}

// BenchmarkReplicationInject writes FWBENCH_INJECT (default 50000)
// established flows into fw1's conntrack table through ctnetlink, faster
// than connections can be opened, and measures how long until the backup
// holds all of them: the event-to-backup replication rate of each stack,
// and the CPU time of both firewalls' replication daemons per flow.
func BenchmarkReplicationInject(b *testing.B) {
	for _, name := range stackNames {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				l := NewLab(b, "gfi")
				s := startStack(b, l, name)
				n := envInt(b, "FWBENCH_INJECT", 50000)
				base := s.Replicated(2)
				cpu0 := s.CPU()
				start := time.Now()
				injected := l.InjectEstablished(1, n)
				if !Poll(120*time.Second, func() bool { return s.Replicated(2) >= base+n }) {
					b.Fatalf("fw2 holds %d of %d flows after 120 s", s.Replicated(2)-base, n)
				}
				done := time.Since(start)
				cpu := s.CPU() - cpu0
				b.Logf("%s: %d flows injected in %v, all on the backup after %v (lag %v)", name, n,
					injected.Round(time.Millisecond), done.Round(time.Millisecond), (done - injected).Round(time.Millisecond))
				b.ReportMetric(float64(n)/done.Seconds(), "replicated_flows/s")
				b.ReportMetric(float64(n)/injected.Seconds(), "injected_flows/s")
				b.ReportMetric(float64((done - injected).Milliseconds()), "lag_ms")
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu_us/flow")
			}
		})
	}
}

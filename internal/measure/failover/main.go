// Command failover measures failover times of carpd (CARP and VRRPv3),
// ucarp and keepalived in network namespaces. It is a measuring tool, not
// a test: it needs root, takes minutes, and prints figures for
// BENCHMARKS.md.
//
//	go run ./internal/measure/failover -runs 5
//	go run ./internal/measure/failover -runs 5 -daemons carpd,ucarp -intervals 1s
//	go run ./internal/measure/failover -runs 5 -scenarios carpd-kill,ucarp+carpd-kill,carpd+ucarp-term
//
// A scenario is MASTER[+BACKUP][@INTERVAL]-FAILURE: the daemon of both
// nodes ("carpd-kill") or the master's and the backup's
// ("carpd+ucarp-term"), the advertisement interval (1 s unless given:
// "keepalived@100ms-crash"), and the failure. Daemons: carpd (CARP),
// carpd.vrrp3 (carpd --protocol vrrp3), ucarp (CARP, 1 s only) and
// keepalived (VRRPv3). Without -scenarios the tool runs every combination
// of -daemons, -intervals and -failures.
//
// Timing of the pair (scenario.go): CARP at 1 s runs advbase 1 with
// advskew 0 on the master and 100 on the backup (master-down 3.3906 s);
// CARP below a second runs advbase 0, the master's advskew giving the
// interval and the backup's a master-down interval of at most VRRPv3's;
// VRRPv3 runs priority 200 on the master and 100 on the backup (carpd and
// keepalived alike: master-down 3 + 156/256 intervals).
//
// Each scenario gets its own throw-away topology (a bridge in a "switch"
// namespace and two nodes, names prefixed "gcf-<pid>-"). The trials are
// interleaved: round after round, one trial of every scenario in a new
// random order, so that whatever else loads the machine loads every
// scenario alike (-parallel runs the scenarios side by side instead). A
// trial starts the master, waits until it advertises, starts the backup,
// waits until it logs that it is a backup and has heard two more adverts,
// waits a random fraction of the advert interval (so the failure lands at
// a random phase of the advert cycle, docs/interop.md, "Detection
// jitter"; the same fraction for every scenario of a round), then fails
// the master:
//
//   - kill: SIGKILL of the daemon's process group (keepalived's parent and
//     VRRP child together: killing the parent alone is a graceful stop);
//   - crash: the master's switch port goes down (the host vanishes);
//   - term: SIGTERM (carpd sends a bow-out advert in CARP mode and
//     priority 0 in VRRPv3 mode, as keepalived does; ucarp sends nothing).
//
// tcpdump on the bridge timestamps every advert (IP protocol 112) and ARP
// packet. The figures are the time from the old master's last advert to
// the backup's first advert (which a backup sends only as master), from
// the failure to that advert, and from the failure to the new master's
// first gratuitous ARP for the virtual address (carpd runs with
// --manage-vip, so it installs and announces the address as keepalived
// does; ucarp runs no script and announces nothing). Each trial also
// records the host's CPU pressure during the failover (the share of the
// time some runnable task waited for a CPU, /proc/pressure/cpu), so that
// a late takeover can be told from a loaded moment; every trial is logged
// on stderr as it ends. A backup that takes over from a live master before
// the failure (a spurious takeover: the master's adverts came late) is
// counted, and the trial repeated (at most twice).
//
// Everything the tool creates is removed on exit, also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	vhid = "1"
	pass = "secret"
	vip  = "10.79.0.254"
	// stateTimeout bounds every wait for a daemon.
	stateTimeout = 20 * time.Second
)

func main() {
	runs := flag.Int("runs", 3, "trials per scenario")
	scen := flag.String("scenarios", "", "comma-separated scenarios MASTER[+BACKUP][@INTERVAL]-{kill,crash,term} (default: every combination of -daemons, -intervals, -failures)")
	daemons := flag.String("daemons", "carpd,carpd.vrrp3,keepalived", "daemons of the default scenarios: carpd, carpd.vrrp3, ucarp, keepalived")
	intervals := flag.String("intervals", "1s,100ms", "advert intervals of the default scenarios")
	failures := flag.String("failures", "kill,crash,term", "failures of the default scenarios")
	parallel := flag.Bool("parallel", false, "run the scenarios side by side instead of interleaving their trials")
	carpd := flag.String("carpd", "", "carpd binary (default: build ./examples/carpd)")
	logs := flag.String("logs", "", "keep the daemons' logs and the captures in this directory (default: a temporary one, removed)")
	flag.Parse()
	names := split(*scen)
	if len(names) == 0 {
		for _, iv := range split(*intervals) {
			for _, d := range split(*daemons) {
				for _, f := range split(*failures) {
					at := "@" + iv
					if iv == "1s" {
						at = ""
					}
					names = append(names, d+at+"-"+f)
				}
			}
		}
	}
	if err := run(*runs, names, *carpd, *logs, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// result is one trial.
type result struct {
	gap      time.Duration // old master's last advert -> new master's first
	detect   time.Duration // failure -> new master's first advert
	announce time.Duration // failure -> new master's first ARP for the address; -1: none
	pressure float64       // share of the failover the host's CPU pressure stalled some task; -1: unknown
}

// bench is one scenario with its topology and results.
type bench struct {
	s        scenario
	topo     *topology
	capt     *capture
	results  []result
	spurious int // trials repeated because the backup took over from a live master
	err      error
}

// errSpurious is a trial in which the backup became master before the
// master failed: a takeover a loaded machine caused, which the trial
// counts and repeats.
var errSpurious = errors.New("the backup became MASTER while the master was alive")

func run(runs int, names []string, carpd, logs string, parallel bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, raw sockets)")
	}
	for _, p := range []string{"ip", "tcpdump"} {
		if _, err := exec.LookPath(p); err != nil {
			return err
		}
	}
	var scens []scenario
	for _, n := range names {
		s, err := parseScenario(n)
		if err != nil {
			return err
		}
		scens = append(scens, s)
	}
	tmp := logs
	if tmp == "" {
		d, err := os.MkdirTemp("", "failover-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		tmp = d
	} else if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	bins := map[string]string{}
	for _, s := range scens {
		for _, d := range []string{s.master, s.backup} {
			if bins[d] != "" {
				continue
			}
			switch d {
			case carpdCARP, carpdVRRP:
				if carpd == "" {
					carpd = filepath.Join(tmp, "carpd")
					out, err := exec.Command("go", "build", "-o", carpd, "github.com/gocarp/gocarp/examples/carpd").CombinedOutput()
					if err != nil {
						return fmt.Errorf("building carpd: %v\n%s", err, out)
					}
				}
				bins[d] = carpd
			default:
				p, err := exec.LookPath(d)
				if err != nil {
					return fmt.Errorf("scenario %s: %w", s.name, err)
				}
				bins[d] = p
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	benches := make([]*bench, len(scens))
	defer func() {
		for _, b := range benches {
			if b != nil {
				b.close()
			}
		}
	}()
	for i, s := range scens {
		b := &bench{s: s}
		benches[i] = b
		if b.topo, b.err = newTopology(fmt.Sprintf("gcf-%d-%d", os.Getpid(), i)); b.err != nil {
			return b.err
		}
		if b.capt, b.err = b.topo.capture(filepath.Join(tmp, s.name+"-tcpdump.log")); b.err != nil {
			return b.err
		}
	}
	// Every scenario fails its master at the same phase of its advert
	// cycle in a round, so that the rows' "failure -> new master" compare
	// trial by trial, not only as samples of a random phase.
	phases := make([]float64, runs)
	for i := range phases {
		phases[i] = rand.Float64()
	}
	one := func(b *bench, i int) {
		if b.err != nil || ctx.Err() != nil {
			return
		}
		var r result
		var err error
		for attempt := 0; ; attempt++ {
			r, err = trial(ctx, b.s, bins, b.topo, b.capt, phases[i], filepath.Join(tmp, fmt.Sprintf("%s-%d-%d", b.s.name, i, attempt)))
			if !errors.Is(err, errSpurious) || attempt == 2 {
				break
			}
			b.spurious++
			fmt.Fprintf(os.Stderr, "%s run %d: %v; again\n", b.s.name, i+1, err)
		}
		if err != nil {
			b.err = fmt.Errorf("%s run %d: %w", b.s.name, i+1, err)
			return
		}
		b.results = append(b.results, r)
		fmt.Fprintf(os.Stderr, "%s run %d: last advert -> new master %.4f s (%+.1f ms), failure -> new master %.4f s, CPU pressure %s\n",
			b.s.name, i+1, r.gap.Seconds(), float64(r.gap-b.s.nominal())/1e6, r.detect.Seconds(), percent(r.pressure))
	}
	started := time.Now()
	if parallel {
		var wg sync.WaitGroup
		for _, b := range benches {
			wg.Go(func() {
				for i := range runs {
					one(b, i)
				}
			})
		}
		wg.Wait()
	} else {
		for i := range runs {
			for _, k := range rand.Perm(len(benches)) {
				one(benches[k], i)
			}
		}
	}
	mode := "interleaved (one trial of every scenario per round, in random order)"
	if parallel {
		mode = "scenarios in parallel"
	}
	fmt.Printf("%d runs per scenario, %s, random phase, %v in all\n\n", runs, mode, time.Since(started).Round(time.Second))
	fmt.Println("| scenario | nominal | last advert → new master (s) | failure → new master (s) | failure → gratuitous ARP (s) | CPU pressure | spurious takeovers |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var errs []error
	for _, b := range benches {
		if b.err != nil {
			errs = append(errs, b.err)
		}
		var gaps, dets, anns []time.Duration
		var press []float64
		for _, r := range b.results {
			if r.pressure >= 0 {
				press = append(press, r.pressure)
			}
			gaps = append(gaps, r.gap)
			dets = append(dets, r.detect)
			if r.announce >= 0 {
				anns = append(anns, r.announce)
			}
		}
		nominal := "-"
		if n := b.s.nominal(); n >= 0 {
			nominal = fmt.Sprintf("%.4f", n.Seconds())
		}
		pr := "-"
		if len(press) > 0 {
			slices.Sort(press)
			pr = percent(press[0]) + " / " + percent(press[len(press)/2]) + " / " + percent(press[len(press)-1])
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %d |", b.s.name, nominal, summary(gaps), summary(dets), summary(anns), pr, b.spurious)
		if b.err != nil {
			fmt.Printf(" error: %v", b.err)
		}
		fmt.Println()
	}
	return errors.Join(errs...)
}

func (b *bench) close() {
	if b.capt != nil {
		b.capt.stop()
	}
	if b.topo != nil {
		b.topo.destroy()
	}
}

// summary formats min / median / max in seconds, with the number of
// trials if any is missing.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.4f / %.4f / %.4f", s[0].Seconds(), s[len(s)/2].Seconds(), s[len(s)-1].Seconds())
}

// cpuStall returns the host's CPU pressure stall time so far: how long at
// least one runnable task waited for a CPU (/proc/pressure/cpu, "some").
// Its growth during a failover, divided by the failover's duration, says
// how loaded the machine was just then.
func cpuStall() (time.Duration, error) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, "total="); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("no total in /proc/pressure/cpu: %q", line)
}

// percent formats a share; a negative one is unknown. The kernel updates
// the stall total lazily, so a short window can show a little over 100 %:
// it is shown as 100 %.
func percent(f float64) string {
	if f < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %%", 100*min(f, 1))
}

// trial runs one failover and measures it from the capture.
func trial(ctx context.Context, s scenario, bins map[string]string, topo *topology, capt *capture, phase float64, logs string) (result, error) {
	a, b := topo.nodes[0], topo.nodes[1]
	defer func() {
		// A killed daemon leaves the address behind (so do both after a
		// crash): the next trial starts clean.
		for _, n := range topo.nodes {
			if err := dropAddr(n.ns, vip); err != nil {
				fmt.Fprintln(os.Stderr, "failover: cleanup:", err)
			}
		}
	}()
	start := func(d string, n node, master bool) (*daemon, error) {
		args, err := s.command(d, role{master: master, node: n}, bins, logs)
		if err != nil {
			return nil, err
		}
		return startDaemon(n.ns, args, logs+"-"+n.name+".log")
	}
	since := time.Now()
	m, err := start(s.master, a, true)
	if err != nil {
		return result{}, err
	}
	defer m.kill()
	if _, err := capt.wait(ctx, a.ip, since, 1); err != nil {
		return result{}, fmt.Errorf("master never advertised: %w", err)
	}
	since = time.Now()
	bk, err := start(s.backup, b, false)
	if err != nil {
		return result{}, err
	}
	defer bk.kill()
	if err := bk.waitLog(ctx, readyLine(s.backup)); err != nil {
		return result{}, fmt.Errorf("backup: %w", err)
	}
	if _, err := capt.wait(ctx, a.ip, time.Now(), 2); err != nil {
		return result{}, err
	}
	if _, ok := capt.first(b.ip, since); ok {
		return result{}, errSpurious
	}

	// Fail at the round's phase of the advert cycle, counted from the
	// advert just seen.
	time.Sleep(time.Duration(phase * float64(s.interval)))
	stall0, psiErr := cpuStall()
	failed := time.Now()
	switch s.fail {
	case failKill:
		err = m.signalGroup(syscall.SIGKILL)
	case failTerm:
		err = m.signal(syscall.SIGTERM)
	case failCrash:
		err = topo.setPort(a, false)
		defer topo.setPort(a, true)
		// The port is down when ip returns, which on a loaded machine
		// can be tens of milliseconds after it was started: the master
		// advertised until then.
		failed = time.Now()
	}
	if err != nil {
		return result{}, err
	}
	first, err := capt.wait(ctx, b.ip, failed, 1)
	if err != nil {
		return result{}, fmt.Errorf("backup never took over: %w", err)
	}
	pressure := -1.0
	if stall1, err := cpuStall(); err == nil && psiErr == nil {
		pressure = float64(stall1-stall0) / float64(time.Since(failed))
	}
	last, ok := capt.lastBefore(a.ip, first)
	if !ok {
		return result{}, errors.New("no advert of the master in the capture")
	}
	r := result{gap: first.Sub(last), detect: first.Sub(failed), announce: -1, pressure: pressure}
	if s.backup != ucarp {
		at, err := capt.waitARP(ctx, b.mac, failed)
		if err != nil {
			return result{}, fmt.Errorf("new master never announced the address: %w", err)
		}
		r.announce = at.Sub(failed)
	}
	return r, nil
}

//go:build linux

// Command vipbench measures how fast a virtual address moves when its CARP
// master crashes, for gocarp (examples/carpd --manage-vip) and for ucarp with
// the usual up script (ip addr add + arping), on the same namespace
// topology:
//
//	client ─┐
//	fw1 ────┼── br0 (switch namespace, tcpdump here)
//	fw2 ────┘
//
// fw1 runs with advskew 0 and becomes MASTER, fw2 with advskew 100; both
// advbase 1. The client pings the VIP every 10 ms. At a random phase fw1
// crashes: its switch port goes down and its daemon gets SIGKILL (so the VIP
// stays configured on the dead box, as after a real crash). Per run it
// reports, from a pcap taken on the bridge:
//
//   - takeover: crash → fw2's first advertisement (fw2 advertises only as
//     MASTER);
//   - first GARP: fw2's first advertisement → fw2's first gratuitous ARP for
//     the VIP (negative when the GARP goes out before the advert);
//   - ping loss: echo requests without reply across the failover.
//
// It needs root, ip(8), tcpdump, ping, ucarp and arping (Thomas Habets'
// arping, as in Debian). Usage, from the module root:
//
//	go run ./internal/measure/vipbench [-runs 3] [-impl gocarp,ucarp] [-v]
//
// It is a measurement tool, not a test: nothing is asserted, and the figures
// depend on the host.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// Addresses of the topology.
const (
	vipAddr   = "10.99.0.254"
	fw1Addr   = "10.99.0.1"
	fw2Addr   = "10.99.0.2"
	cliAddr   = "10.99.0.100"
	prefixLen = "/24"
	password  = "vipbench"
)

// result is one failover.
type result struct {
	takeover  time.Duration // crash -> fw2's first advert
	garpDelay time.Duration // fw2's first advert -> fw2's first GARP
	// garpAfterCrash is crash -> fw2's first GARP.
	garpAfterCrash time.Duration
	sent           int
	lost           int
}

func main() {
	runs := flag.Int("runs", 3, "failovers per implementation")
	impls := flag.String("impl", "gocarp,ucarp", "implementations to measure, comma-separated")
	carpd := flag.String("carpd", "", "carpd binary (default: go build ./examples/carpd)")
	verbose := flag.Bool("v", false, "print each run")
	flag.Parse()
	if err := run(*runs, strings.Split(*impls, ","), *carpd, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "vipbench:", err)
		os.Exit(1)
	}
}

func run(runs int, impls []string, carpd string, verbose bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	for _, p := range []string{"ip", "tcpdump", "ping", "ucarp", "arping"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: %w", p, err)
		}
	}
	dir, err := os.MkdirTemp("", "vipbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if carpd == "" && slices.Contains(impls, "gocarp") {
		carpd = filepath.Join(dir, "carpd")
		if out, err := exec.Command("go", "build", "-o", carpd, "github.com/gocarp/gocarp/examples/carpd").CombinedOutput(); err != nil {
			return fmt.Errorf("building carpd: %v\n%s", err, out)
		}
	}
	if err := writeScripts(dir); err != nil {
		return err
	}

	// Remove the namespaces on SIGINT too.
	var live *topology
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		if live != nil {
			live.close()
		}
		os.Exit(1)
	}()

	fmt.Printf("vipbench: %d runs per implementation, advbase 1, advskew 0 (fw1) / 100 (fw2), ping every 10 ms, crash = port down + SIGKILL\n", runs)
	for _, impl := range impls {
		var rs []result
		for i := range runs {
			tp, err := newTopology(fmt.Sprintf("vb%d", os.Getpid()%100000))
			if err != nil {
				return err
			}
			live = tp
			r, err := failover(tp, impl, dir, carpd, i)
			tp.close()
			live = nil
			if err != nil {
				return fmt.Errorf("%s run %d: %w", impl, i+1, err)
			}
			if verbose {
				fmt.Printf("  %s run %d: takeover %v, first GARP %+v after the first advert, ping %d/%d lost\n",
					impl, i+1, r.takeover.Round(time.Millisecond), r.garpDelay.Round(100*time.Microsecond), r.lost, r.sent)
			}
			rs = append(rs, r)
		}
		report(impl, rs)
	}
	return nil
}

// writeScripts writes ucarp's up and down scripts (called as "script
// <interface> <vip>").
func writeScripts(dir string) error {
	up := "#!/bin/sh\nip addr add \"$2\"" + prefixLen + " dev \"$1\"\narping -q -U -c 1 -i \"$1\" -S \"$2\" \"$2\"\nexit 0\n"
	down := "#!/bin/sh\nip addr del \"$2\"" + prefixLen + " dev \"$1\" 2>/dev/null\nexit 0\n"
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "up.sh"), []byte(up), 0o755),
		os.WriteFile(filepath.Join(dir, "down.sh"), []byte(down), 0o755),
	)
}

// daemon starts the CARP daemon of impl in ns with the node's address and
// skew.
func daemon(tp *topology, impl, dir, carpd, ns, src string, skew int) (*proc, string, error) {
	common := []string{"-i", "eth0", "-s", src, "-v", "1", "-p", password, "-a", vipAddr, "-b", "1", "-k", fmt.Sprint(skew)}
	switch impl {
	case "gocarp":
		p, err := tp.start(ns, carpd, append(common, "--manage-vip")...)
		return p, "state=MASTER reason=", err
	case "ucarp":
		p, err := tp.start(ns, "ucarp", append(common, "-u", filepath.Join(dir, "up.sh"), "-d", filepath.Join(dir, "down.sh"))...)
		return p, "Switching to state: MASTER", err
	}
	return nil, "", fmt.Errorf("unknown implementation %q (want gocarp or ucarp)", impl)
}

// failover runs one crash of fw1 and measures fw2's takeover.
func failover(tp *topology, impl, dir, carpd string, i int) (result, error) {
	d1, master, err := daemon(tp, impl, dir, carpd, "fw1", fw1Addr, 0)
	if err != nil {
		return result{}, err
	}
	if _, err := d1.waitLine(0, master, 15*time.Second); err != nil {
		return result{}, fmt.Errorf("fw1: %w", err)
	}
	d2, _, err := daemon(tp, impl, dir, carpd, "fw2", fw2Addr, 100)
	if err != nil {
		return result{}, err
	}
	pcap := filepath.Join(dir, fmt.Sprintf("%s-%d.pcap", impl, i))
	dump, err := tp.start("sw", "tcpdump", "-i", "br0", "-n", "-tt", "-l", "-U", "--immediate-mode", "--print", "-w", pcap, "arp or ip proto 112")
	if err != nil {
		return result{}, err
	}
	if _, err := dump.waitLine(0, "listening on", 10*time.Second); err != nil {
		return result{}, fmt.Errorf("tcpdump: %w", err)
	}
	ping, err := netns.StartPinger(filepath.Join(netns.RunDir, tp.ns("client")), netip.MustParseAddr(vipAddr), os.Getpid()&0xffff, 10*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	defer ping.Close()
	if err := ping.WaitReplies(time.Time{}, 1, 10*time.Second); err != nil {
		return result{}, fmt.Errorf("client: before the crash: %w", err)
	}
	// fw2 must have settled as BACKUP (heard fw1) before the crash: give it
	// one advert interval, then crash at a random phase of fw1's adverts.
	time.Sleep(time.Second + rand.N(time.Second))

	crash := time.Now()
	from := dump.lines()
	if err := tp.ip("sw", "link", "set", tp.ports["fw1"], "down"); err != nil {
		return result{}, err
	}
	d1.kill()
	_, err = d2.waitLine(0, master, 15*time.Second)
	if err == nil {
		_, err = dump.waitLine(from, "IP "+fw2Addr+" > 224.0.0.18", 15*time.Second)
	}
	if err == nil {
		if perr := ping.WaitReplies(crash, 1, 15*time.Second); perr != nil {
			err = fmt.Errorf("client: after the crash: %w", perr)
		}
	}
	if err == nil {
		// A second of replies after the takeover, so late losses count too.
		time.Sleep(time.Second)
	}
	sent, lostSeqs := ping.Finish(time.Second)
	lost := len(lostSeqs)
	if cerr := ping.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return result{}, fmt.Errorf("fw2: %w", err)
	}
	if err := dump.interrupt(); err != nil {
		return result{}, err
	}
	d2.kill()

	advert, garp, err := firstAfter(pcap, crash, fw2Addr, vipAddr)
	if err != nil {
		return result{}, err
	}
	return result{takeover: advert.Sub(crash), garpDelay: garp.Sub(advert), garpAfterCrash: garp.Sub(crash), sent: sent, lost: lost}, nil
}

// report prints min/median/max of each figure.
func report(impl string, rs []result) {
	stat := func(name, unit string, f func(result) float64) {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		fmt.Printf("  %-34s %10.3f %10.3f %10.3f %s\n", name, v[0], median(v), v[len(v)-1], unit)
	}
	fmt.Printf("%s (%d runs)%28s %10s %10s %10s\n", impl, len(rs), "", "min", "median", "max")
	stat("takeover (crash -> first advert)", "s", func(r result) float64 { return r.takeover.Seconds() })
	stat("first advert -> first GARP", "ms", func(r result) float64 { return float64(r.garpDelay.Microseconds()) / 1000 })
	stat("crash -> first GARP", "s", func(r result) float64 { return r.garpAfterCrash.Seconds() })
	stat("ping loss (10 ms interval)", "packets", func(r result) float64 { return float64(r.lost) })
	stat("ping loss as time", "s", func(r result) float64 { return float64(r.lost) * 0.01 })
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

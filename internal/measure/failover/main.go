// Command failover measures CARP failover times of carpd and ucarp in
// network namespaces. It is a measuring tool, not a test: it needs root,
// takes about a minute, and prints figures for BENCHMARKS.md.
//
//	go run ./internal/measure/failover            # 3 runs of every scenario
//	go run ./internal/measure/failover -runs 5 -scenarios carpd-kill,ucarp-kill
//
// Each scenario gets its own throw-away topology (a bridge in a "switch"
// namespace and two nodes, names prefixed "gcf-<pid>-"), and the scenarios
// run in parallel. A trial starts the master (advskew 0), waits until it
// advertises, starts the backup (advskew 100), lets it hear two adverts,
// waits a random fraction of the advert interval (so the failure lands at a
// random phase of the advert cycle, docs/interop.md, "Detection jitter"), then fails the
// master:
//
//   - kill: SIGKILL of the daemon;
//   - crash: the master's switch port goes down (the host vanishes);
//   - term: SIGTERM (carpd sends a bow-out advert; ucarp sends nothing).
//
// A scenario names the daemon of both nodes ("carpd-kill") or the master's
// and the backup's ("carpd+ucarp-term": does ucarp take over at once on
// carpd's bow-out advert?).
//
// tcpdump on the bridge timestamps every IP protocol 112 packet. The
// figures are the time from the old master's last advert to the backup's
// first advert (which a backup sends only as MASTER), and from the failure
// to that advert. With advbase 1 and advskew 100 the backup's master-down
// interval is 3 + 100/256 = 3.390625 s (FreeBSD/ucarp formula), so
// "last advert -> new master" can be no shorter than that, except after a
// bow-out.
//
// Everything the tool creates is removed on exit, also on Ctrl-C.
package main

import (
	"bufio"
	"context"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	vhid    = "1"
	pass    = "secret"
	vip     = "10.79.0.254"
	advSkew = 100 // of the backup; the master has 0
	// masterDown of the backup: deadratio 3 x advbase 1 + advskew/256.
	masterDown = 3*time.Second + advSkew*time.Second/256
	// goal is how late carpd may be after the master-down interval.
	goal = 20 * time.Millisecond
	// stateTimeout bounds every wait for a daemon.
	stateTimeout = 20 * time.Second
)

func main() {
	runs := flag.Int("runs", 3, "trials per scenario")
	scen := flag.String("scenarios", "carpd-kill,ucarp-kill,carpd-crash,ucarp-crash,carpd-term,ucarp-term,ucarp+carpd-kill,carpd+ucarp-term",
		"comma-separated scenarios: DAEMON-{kill,crash,term}, DAEMON carpd or ucarp on both nodes, or MASTER+BACKUP (e.g. carpd+ucarp)")
	carpd := flag.String("carpd", "", "carpd binary (default: build ./examples/carpd)")
	flag.Parse()
	if err := run(*runs, strings.Split(*scen, ","), *carpd); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// scenario is the master's and the backup's daemon and one way of
// failing: "carpd-kill" runs carpd on both nodes, "carpd+ucarp-term" a
// carpd master and a ucarp backup.
type scenario struct {
	name           string
	master, backup string // "carpd" or "ucarp"
	fail           string // "kill", "crash" or "term"
}

// result is one trial.
type result struct {
	gap    time.Duration // old master's last advert -> new master's first
	detect time.Duration // failure -> new master's first advert
}

func run(runs int, names []string, carpd string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, raw sockets)")
	}
	for _, p := range []string{"ip", "tcpdump"} {
		if _, err := exec.LookPath(p); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "failover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	if p, err := exec.LookPath("ucarp"); err == nil {
		bins["ucarp"] = p
	}
	var scens []scenario
	for _, n := range names {
		n = strings.TrimSpace(n)
		ds, f, ok := strings.Cut(n, "-")
		m, b, pair := strings.Cut(ds, "+")
		if !pair {
			b = m
		}
		if !ok || f != "kill" && f != "crash" && f != "term" {
			return fmt.Errorf("unknown scenario %q", n)
		}
		for _, d := range []string{m, b} {
			switch {
			case d == "carpd" && bins[d] == "":
				if carpd == "" {
					carpd = filepath.Join(tmp, "carpd")
					out, err := exec.Command("go", "build", "-o", carpd, "github.com/gocarp/gocarp/examples/carpd").CombinedOutput()
					if err != nil {
						return fmt.Errorf("building carpd: %v\n%s", err, out)
					}
				}
				bins[d] = carpd
			case d == "ucarp" && bins[d] == "":
				return fmt.Errorf("scenario %s: ucarp not found", n)
			case d != "carpd" && d != "ucarp":
				return fmt.Errorf("unknown scenario %q", n)
			}
		}
		scens = append(scens, scenario{name: n, master: m, backup: b, fail: f})
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results := make([][]result, len(scens))
	errs := make([]error, len(scens))
	var wg sync.WaitGroup
	for i, s := range scens {
		wg.Go(func() {
			results[i], errs[i] = measure(ctx, s, bins, i, runs, tmp)
		})
	}
	wg.Wait()

	fmt.Printf("advbase 1, master advskew 0, backup advskew %d (master-down %.3f s), %d runs per scenario, random phase\n\n", advSkew, masterDown.Seconds(), runs)
	fmt.Printf("%-18s %-34s %-34s\n", "scenario", "last advert -> new master (s)", "failure -> new master (s)")
	fmt.Printf("%-18s %-34s %-34s\n", "", "min / median / max", "min / median / max")
	for i, s := range scens {
		if errs[i] != nil {
			fmt.Printf("%-18s error: %v\n", s.name, errs[i])
			continue
		}
		var gaps, dets []time.Duration
		for _, r := range results[i] {
			gaps = append(gaps, r.gap)
			dets = append(dets, r.detect)
		}
		fmt.Printf("%-18s %-34s %-34s", s.name, summary(gaps), summary(dets))
		if s.backup == "carpd" && s.fail != "term" {
			late := slices.Max(gaps) - masterDown
			fmt.Printf(" max - master-down = %+.1f ms (goal <= %v)", float64(late)/1e6, goal)
		}
		if s.master == "carpd" && s.backup == "carpd" && s.fail == "term" {
			fmt.Printf(" (goal < 100 ms)")
		}
		fmt.Println()
	}
	return errors.Join(errs...)
}

func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.4f / %.4f / %.4f", s[0].Seconds(), s[len(s)/2].Seconds(), s[len(s)-1].Seconds())
}

// measure builds the topology of one scenario and runs its trials.
func measure(ctx context.Context, s scenario, bins map[string]string, idx, runs int, tmp string) ([]result, error) {
	topo, err := newTopology(fmt.Sprintf("gcf-%d-%d", os.Getpid(), idx))
	defer topo.destroy()
	if err != nil {
		return nil, err
	}
	capt, err := topo.capture(filepath.Join(tmp, s.name+"-tcpdump.log"))
	if err != nil {
		return nil, err
	}
	defer capt.stop()
	var out []result
	for i := range runs {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		r, err := trial(ctx, s, bins, topo, capt, filepath.Join(tmp, fmt.Sprintf("%s-%d", s.name, i)))
		if err != nil {
			return out, fmt.Errorf("%s run %d: %w", s.name, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// trial runs one failover and measures it from the capture.
func trial(ctx context.Context, s scenario, bins map[string]string, topo *topology, capt *capture, logs string) (result, error) {
	a, b := topo.nodes[0], topo.nodes[1]
	start := func(d string, n node, skew int) (*daemon, error) {
		args := []string{"-i", "eth0", "-s", n.ip.String(), "-v", vhid, "-p", pass, "-a", vip, "-k", strconv.Itoa(skew)}
		if d == "ucarp" {
			args = append(args, "-f", "none")
		}
		return startDaemon(n.ns, bins[d], args, logs+"-"+n.name+".log")
	}
	since := time.Now()
	m, err := start(s.master, a, 0)
	if err != nil {
		return result{}, err
	}
	defer m.kill()
	if _, err := capt.wait(ctx, a.ip, since, 1); err != nil {
		return result{}, fmt.Errorf("master never advertised: %w", err)
	}
	since = time.Now()
	bk, err := start(s.backup, b, advSkew)
	if err != nil {
		return result{}, err
	}
	defer bk.kill()
	if _, err := capt.wait(ctx, a.ip, since, 2); err != nil {
		return result{}, err
	}
	if _, ok := capt.first(b.ip, since); ok {
		return result{}, errors.New("the backup became MASTER while the master was alive")
	}

	// Fail at a random phase of the advert cycle.
	time.Sleep(rand.N(time.Second))
	failed := time.Now()
	switch s.fail {
	case "kill":
		err = m.signal(syscall.SIGKILL)
	case "term":
		err = m.signal(syscall.SIGTERM)
	case "crash":
		err = topo.setPort(a, false)
		defer topo.setPort(a, true)
	}
	if err != nil {
		return result{}, err
	}
	first, err := capt.wait(ctx, b.ip, failed, 1)
	if err != nil {
		return result{}, fmt.Errorf("backup never took over: %w", err)
	}
	last, ok := capt.lastBefore(a.ip, first)
	if !ok {
		return result{}, errors.New("no advert of the master in the capture")
	}
	return result{gap: first.Sub(last), detect: first.Sub(failed)}, nil
}

// node is one namespace on the bridge.
type node struct {
	name, ns, port string
	ip             netip.Addr
}

type topology struct {
	prefix string
	sw     string
	nodes  []node
	made   []string // namespaces to delete
}

// newTopology creates <prefix>-sw with bridge br0 and nodes a and b
// (10.79.0.1 and .2 on eth0), each attached to br0.
func newTopology(prefix string) (*topology, error) {
	t := &topology{prefix: prefix, sw: prefix + "-sw"}
	if err := t.addNS(t.sw); err != nil {
		return t, err
	}
	// Bridged frames must not traverse the switch namespace's netfilter
	// (docs/interop.md, "br_netfilter"). The keys exist only while br_netfilter is
	// loaded; without it there is nothing to switch off.
	if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
			if _, err := sh("ip", "netns", "exec", t.sw, "sysctl", "-qw", "net.bridge."+k+"=0"); err != nil {
				return t, err
			}
		}
	}
	if _, err := sh("ip", "-n", t.sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return t, err
	}
	if _, err := sh("ip", "-n", t.sw, "link", "set", "br0", "up"); err != nil {
		return t, err
	}
	for i, name := range []string{"a", "b"} {
		n := node{name: name, ns: prefix + "-" + name, port: "p" + name,
			ip: netip.AddrFrom4([4]byte{10, 79, 0, byte(i + 1)})}
		if err := t.addNS(n.ns); err != nil {
			return t, err
		}
		for _, c := range [][]string{
			{"ip", "-n", t.sw, "link", "add", n.port, "type", "veth", "peer", "name", "eth0", "netns", n.ns},
			{"ip", "-n", t.sw, "link", "set", n.port, "master", "br0", "up"},
			{"ip", "-n", n.ns, "link", "set", "lo", "up"},
			{"ip", "-n", n.ns, "addr", "add", n.ip.String() + "/24", "dev", "eth0"},
			{"ip", "-n", n.ns, "link", "set", "eth0", "up"},
		} {
			if _, err := sh(c...); err != nil {
				return t, err
			}
		}
		if err := waitCarrier(n.ns); err != nil {
			return t, err
		}
		t.nodes = append(t.nodes, n)
	}
	return t, nil
}

func (t *topology) addNS(name string) error {
	if _, err := sh("ip", "netns", "add", name); err != nil {
		return err
	}
	t.made = append(t.made, name)
	return nil
}

// setPort cuts or restores a node's switch port (a host crash, seen from
// the LAN).
func (t *topology) setPort(n node, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := sh("ip", "-n", t.sw, "link", "set", n.port, state)
	if err == nil && up {
		err = waitCarrier(n.ns)
	}
	return err
}

func (t *topology) destroy() {
	for _, ns := range slices.Backward(t.made) {
		if _, err := sh("ip", "netns", "del", ns); err != nil {
			fmt.Fprintln(os.Stderr, "failover: cleanup:", err)
		}
	}
}

// waitCarrier waits until eth0 in ns has carrier (linkwatch delays it).
func waitCarrier(ns string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := sh("ip", "-n", ns, "link", "show", "eth0")
		if err == nil && strings.Contains(out, "LOWER_UP") && !strings.Contains(out, "NO-CARRIER") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: eth0 has no carrier: %s", ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sh(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// daemon is a carpd or ucarp process in a namespace.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startDaemon(ns, bin string, args []string, logPath string) (*daemon, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) signal(sig syscall.Signal) error { return d.cmd.Process.Signal(sig) }

// kill ends the daemon's process group and waits for the daemon.
func (d *daemon) kill() {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

// capture is tcpdump on the bridge, keeping the timestamp and source of
// every IP protocol 112 packet.
type capture struct {
	cmd *exec.Cmd

	mu      sync.Mutex
	pkts    []packet
	changed chan struct{}
	done    chan struct{}
}

type packet struct {
	at  time.Time
	src netip.Addr
}

func (t *topology) capture(logPath string) (*capture, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", t.sw, "tcpdump", "-i", "br0", "-n", "-tt", "-l",
		"--immediate-mode", "ip", "proto", "112")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &capture{cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.OnceFunc(func() { close(listening) })
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				once()
			}
		}
		once()
	}()
	go func() {
		defer close(c.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			// "1763780000.123456 IP 10.79.0.1 > 224.0.0.18: VRRPv2, ..."
			f := strings.Fields(sc.Text())
			if len(f) < 3 || f[1] != "IP" {
				continue
			}
			sec, frac, _ := strings.Cut(f[0], ".")
			s, err1 := strconv.ParseInt(sec, 10, 64)
			us, err2 := strconv.ParseInt(frac, 10, 64)
			src, err3 := netip.ParseAddr(f[2])
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, packet{at: time.Unix(s, us*1000), src: src})
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	select {
	case <-listening:
	case <-time.After(stateTimeout):
		c.stop()
		return nil, errors.New("tcpdump did not start")
	}
	return c, nil
}

func (c *capture) stop() {
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	c.cmd.Wait()
	<-c.done
}

// wait returns the time of the n-th packet from src captured after since.
func (c *capture) wait(ctx context.Context, src netip.Addr, since time.Time, n int) (time.Time, error) {
	deadline := time.After(stateTimeout)
	for {
		c.mu.Lock()
		seen := 0
		for _, p := range c.pkts {
			if p.src == src && p.at.After(since) {
				seen++
				if seen == n {
					c.mu.Unlock()
					return p.at, nil
				}
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline:
			return time.Time{}, fmt.Errorf("%d adverts from %v after %v not seen within %v", n, src, since.Format(time.TimeOnly), stateTimeout)
		}
	}
}

// first returns the first packet from src after since, if any.
func (c *capture) first(src netip.Addr, since time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pkts {
		if p.src == src && p.at.After(since) {
			return p.at, true
		}
	}
	return time.Time{}, false
}

// lastBefore returns the last packet from src before t.
func (c *capture) lastBefore(src netip.Addr, t time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range slices.Backward(c.pkts) {
		if p.src == src && p.at.Before(t) {
			return p.at, true
		}
	}
	return time.Time{}, false
}

//go:build linux

// Command flap runs two gocarp nodes at sub-second timing in network
// namespaces for a while and counts spurious takeovers: the backup
// becoming MASTER although the master never stopped. It also measures how
// late the master's adverts go out (the scheduling delay: when each advert
// was due, one advert interval after the previous one went out, against
// when it was handed to the kernel). It is a measuring tool, not a test: it
// needs root, ip(8) and, for -loss, nft(8), and nothing is asserted.
//
//	go run ./internal/measure/flap -duration 10m -busy -1            # CPUs saturated
//	go run ./internal/measure/flap -duration 10m -loss 5             # 5 % random loss
//	go run ./internal/measure/flap -duration 10m -busy -1 -pace 1ms -sched rt  # nodes under SCHED_FIFO
//	go run ./internal/measure/flap -duration 10m -busy -1 -nice -10   # nodes at nice -10
//
// Topology: a bridge in a "switch" namespace and nodes a and b, names
// prefixed "flap<pid>-". Each node is this program run again in its
// namespace (-node), one carp.Group on a RawTransport, so the two nodes
// are separate processes as two daemons would be. Node a (advbase 0,
// advskew -skew-a, 25 by default: 97.7 ms) starts as MASTER; node b (advskew
// -skew-b, 30: 117 ms, master-down 352 ms) is the backup. Neither preempts.
//
// Load:
//
//   - -busy N starts N processes that spin on the CPU (-1: one per CPU), at
//     the same priority as the nodes;
//   - -garbage N runs N goroutines in each node that allocate and drop
//     memory, without pause or, with -pace D, pausing D after every 2 MiB,
//     so the garbage collector runs all the time (tens of cycles a second);
//   - -loss P drops P % of the CARP packets arriving at each node, at
//     random (nftables "numgen random mod 100 < P" in each node's input
//     hook: each advert crosses exactly one such rule, at its receiver).
//
// With -loss the count is compared with what the loss alone predicts: b
// takes over when three adverts of a in a row are lost (its master-down
// interval, 3 x 117 ms, covers three of a's 97.7 ms intervals and not
// four), so each advert b receives starts a takeover with probability
// p^3, and the expected count is received x p^3 (docs/sub-second.md,
// "Loss").
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-spin" {
		spin()
	}
	if len(os.Args) > 1 && os.Args[1] == "-node" {
		os.Exit(nodeMain(os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "flap:", err)
		os.Exit(1)
	}
}

// spin burns one CPU until killed.
func spin() {
	x := 0
	for {
		x++
	}
}

type options struct {
	duration time.Duration
	skewA    int
	skewB    int
	busy     int
	garbage  int
	loss     int
	sched    string
	nice     int
	pace     time.Duration
	jsonOut  bool
	verbose  bool
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", time.Minute, "how long to watch the pair once it has settled")
	flag.IntVar(&o.skewA, "skew-a", 25, "advskew of the master, node a (advbase 0)")
	flag.IntVar(&o.skewB, "skew-b", 30, "advskew of the backup, node b (advbase 0)")
	flag.IntVar(&o.busy, "busy", 0, "busy-loop processes to start; -1: one per CPU")
	flag.IntVar(&o.garbage, "garbage", 1, "goroutines per node allocating garbage without pause (0: none)")
	flag.IntVar(&o.loss, "loss", 0, "percent of CARP packets dropped at random at each node's input (0-99)")
	flag.DurationVar(&o.pace, "pace", 0, "pause of each garbage goroutine after every 2 MiB it allocates (0: none, it spins); needed with -sched rt")
	flag.StringVar(&o.sched, "sched", "", "rt: run both node processes under SCHED_FIFO 50, as carpd --realtime does")
	flag.IntVar(&o.nice, "nice", 0, "start both node processes at this nice value (-20 to 19), as systemd's Nice= does; the -busy processes stay at 0")
	flag.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	flag.BoolVar(&o.verbose, "v", false, "print the nodes' events as they happen")
	flag.Parse()
	if o.busy == -1 {
		o.busy = runtime.NumCPU()
	}
	if o.loss < 0 || o.loss > 99 {
		return fmt.Errorf("-loss %d out of range 0-99", o.loss)
	}
	if o.nice < -20 || o.nice > 19 {
		return fmt.Errorf("-nice %d out of range -20-19", o.nice)
	}
	if o.skewA < 1 || o.skewA > 254 || o.skewB < 1 || o.skewB > 254 {
		return errors.New("-skew-a and -skew-b out of range 1-254")
	}

	tp, err := newTopology(fmt.Sprintf("flap%d-", os.Getpid()))
	if err != nil {
		return err
	}
	defer tp.close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)

	if o.loss > 0 {
		for _, n := range []string{"a", "b"} {
			if err := tp.dropRandom(n, o.loss); err != nil {
				return err
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	a, err := startNode(tp, self, "a", o, true)
	if err != nil {
		return err
	}
	defer a.stop()
	if err := a.waitState("MASTER", 10*time.Second); err != nil {
		return err
	}
	b, err := startNode(tp, self, "b", o, false)
	if err != nil {
		return err
	}
	defer b.stop()
	if err := b.waitState("BACKUP", 10*time.Second); err != nil {
		return err
	}
	// b must have heard a before the watch starts.
	time.Sleep(time.Second) // settling, not synchronisation: nothing is asserted
	a.reset()
	b.reset()

	var busy []*exec.Cmd
	for range o.busy {
		c := exec.Command(self, "-spin")
		if err := c.Start(); err != nil {
			return err
		}
		busy = append(busy, c)
	}
	defer func() {
		for _, c := range busy {
			c.Process.Kill()
			c.Wait()
		}
	}()

	start := time.Now()
	select {
	case <-time.After(o.duration):
	case <-stop:
		fmt.Fprintln(os.Stderr, "flap: interrupted")
	case <-a.done:
		return fmt.Errorf("node a exited: %v", a.err)
	case <-b.done:
		return fmt.Errorf("node b exited: %v", b.err)
	}
	watched := time.Since(start)
	for _, c := range busy {
		c.Process.Kill()
		c.Wait()
	}
	busy = nil
	// The counts first: stopping a sends its bow-out, on which b takes
	// over.
	ca, cb := a.counts(), b.counts()
	sa, sb := a.finish(ca), b.finish(cb)
	return report(o, watched, sa, sb)
}

// result is what the parent prints.
type result struct {
	Duration     string  `json:"duration"`
	Busy         int     `json:"busy"`
	Garbage      int     `json:"garbage"`
	LossPercent  int     `json:"loss_percent"`
	Sched        string  `json:"sched"`
	Nice         int     `json:"nice"`
	AdvertsSent  uint64  `json:"adverts_sent"`     // by a
	AdvertsHeard uint64  `json:"adverts_received"` // by b
	MeasuredLoss float64 `json:"measured_loss"`
	Spurious     int     `json:"spurious_takeovers"` // b to MASTER
	AYielded     int     `json:"master_yielded"`     // a to BACKUP
	Expected     float64 `json:"expected_from_loss"`
	DelayP50     string  `json:"delay_p50"`
	DelayP99     string  `json:"delay_p99"`
	DelayP999    string  `json:"delay_p999"`
	DelayMax     string  `json:"delay_max"`
	Delays       int     `json:"delays"`
	Late         []int   `json:"late_over_ms"` // adverts later than 1, 5, 10, 50 ms
	BLateTimers  uint64  `json:"b_late_timers"`
	BUnread      uint64  `json:"b_unread"`
	GCCycles     uint32  `json:"gc_cycles_a"`
}

func report(o options, watched time.Duration, a, b nodeSummary) error {
	r := result{
		Duration: watched.Round(time.Second).String(), Busy: o.busy, Garbage: o.garbage, LossPercent: o.loss, Sched: o.sched, Nice: o.nice,
		AdvertsSent: a.Stats.Opackets, AdvertsHeard: b.Stats.Ipackets,
		Spurious: b.ToMaster, AYielded: a.ToBackup,
		BLateTimers: b.Stats.LateTimers, BUnread: b.Stats.Unread, GCCycles: a.GCCycles,
	}
	if r.AdvertsSent > 0 {
		r.MeasuredLoss = 1 - float64(r.AdvertsHeard)/float64(r.AdvertsSent)
	}
	p := float64(o.loss) / 100
	r.Expected = float64(r.AdvertsHeard) * math.Pow(p, 3)
	d := a.Delays
	slices.Sort(d)
	q := func(f float64) string {
		if len(d) == 0 {
			return "-"
		}
		return time.Duration(d[min(len(d)-1, int(f*float64(len(d))))]).Round(time.Microsecond).String()
	}
	r.Delays = len(d)
	r.DelayP50, r.DelayP99, r.DelayP999 = q(0.50), q(0.99), q(0.999)
	if len(d) > 0 {
		r.DelayMax = time.Duration(d[len(d)-1]).Round(time.Microsecond).String()
	}
	for _, ms := range []int64{1, 5, 10, 50} {
		i, _ := slices.BinarySearch(d, ms*int64(time.Millisecond))
		r.Late = append(r.Late, len(d)-i)
	}
	if o.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("watched %s: busy %d, garbage %d per node (pace %v), loss %d %%, sched %q, nice %d, %d GC cycles in a\n",
		r.Duration, r.Busy, r.Garbage, o.pace, r.LossPercent, r.Sched, r.Nice, r.GCCycles)
	fmt.Printf("adverts: a sent %d, b received %d (measured loss %.2f %%)\n", r.AdvertsSent, r.AdvertsHeard, 100*r.MeasuredLoss)
	fmt.Printf("spurious takeovers (b to MASTER): %d; a yielded: %d; expected from loss alone: %.2f\n", r.Spurious, r.AYielded, r.Expected)
	fmt.Printf("advert delay (due -> sent), %d adverts: p50 %s p99 %s p99.9 %s max %s; later than 1/5/10/50 ms: %v\n",
		r.Delays, r.DelayP50, r.DelayP99, r.DelayP999, r.DelayMax, r.Late)
	fmt.Printf("b: master-down timers seen late %d, expired with packets unread %d\n", r.BLateTimers, r.BUnread)
	return nil
}

// nodeProc is a running node.
type nodeProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu       sync.Mutex
	state    string
	changed  chan struct{}
	delays   []int64
	toMaster int
	toBackup int
	summary  *nodeSummary
	verbose  bool
}

// nodeSummary is what a node prints when it stops.
type nodeSummary struct {
	Stats    nodeStats `json:"stats"`
	GCCycles uint32    `json:"gc_cycles"`
	// Filled in by the parent from the event lines.
	Delays   []int64 `json:"-"`
	ToMaster int     `json:"-"`
	ToBackup int     `json:"-"`
}

type nodeStats struct {
	Opackets   uint64 `json:"opackets"`
	Ipackets   uint64 `json:"ipackets"`
	LateTimers uint64 `json:"late_timers"`
	Unread     uint64 `json:"unread"`
}

func startNode(tp *topology, self, name string, o options, master bool) (*nodeProc, error) {
	skew := o.skewB
	if master {
		skew = o.skewA
	}
	args := []string{"netns", "exec", tp.ns(name), self, "-node",
		"-skew", strconv.Itoa(skew), "-garbage", strconv.Itoa(o.garbage), "-pace", o.pace.String(), "-sched", o.sched}
	if master {
		args = append(args, "-master")
	}
	prog := "ip"
	if o.nice != 0 {
		// nice(1) sets the value before ip(8) execs the node, so every
		// thread the runtime starts inherits it, as with systemd's Nice=.
		prog, args = "nice", append([]string{"-n", strconv.Itoa(o.nice), "ip"}, args...)
	}
	cmd := exec.Command(prog, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	n := &nodeProc{name: name, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{}), verbose: o.verbose}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n.line(sc.Text())
		}
		n.err = cmd.Wait()
		close(n.done)
	}()
	return n, nil
}

// line handles one line of a node's output: "state FROM TO REASON",
// "delay NS" or "summary JSON".
func (n *nodeProc) line(l string) {
	kind, rest, _ := strings.Cut(l, " ")
	n.mu.Lock()
	defer n.mu.Unlock()
	switch kind {
	case "state":
		f := strings.SplitN(rest, " ", 3)
		if len(f) < 2 {
			return
		}
		n.state = f[1]
		switch f[1] {
		case "MASTER":
			n.toMaster++
		case "BACKUP":
			n.toBackup++
		}
		close(n.changed)
		n.changed = make(chan struct{})
		if n.verbose {
			fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().Format("15:04:05.000"), n.name, rest)
		}
	case "delay":
		if v, err := strconv.ParseInt(rest, 10, 64); err == nil {
			n.delays = append(n.delays, v)
		}
	case "summary":
		var s nodeSummary
		if err := json.Unmarshal([]byte(rest), &s); err == nil {
			n.summary = &s
		}
	default:
		fmt.Fprintf(os.Stderr, "%s: %s\n", n.name, l)
	}
}

func (n *nodeProc) waitState(want string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		n.mu.Lock()
		st, ch := n.state, n.changed
		n.mu.Unlock()
		if st == want {
			return nil
		}
		select {
		case <-ch:
		case <-n.done:
			return fmt.Errorf("node %s exited: %v", n.name, n.err)
		case <-deadline:
			return fmt.Errorf("node %s not %s after %v (state %q)", n.name, want, timeout, st)
		}
	}
}

// reset forgets what happened before the watch.
func (n *nodeProc) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delays, n.toMaster, n.toBackup = nil, 0, 0
	n.cmd.Process.Signal(syscall.SIGUSR2) // the node's counters start again
}

// finish asks the node for its counters and stops it. The counters in the
// summary are since the node started; the transitions and delays since
// reset, so the packet counts include the settling second.
func (n *nodeProc) finish(c [2]int) nodeSummary {
	n.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s := nodeSummary{}
	if n.summary != nil {
		s = *n.summary
	}
	s.Delays, s.ToMaster, s.ToBackup = slices.Clone(n.delays), c[0], c[1]
	return s
}

// counts returns the transitions to MASTER and to BACKUP since reset.
func (n *nodeProc) counts() [2]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return [2]int{n.toMaster, n.toBackup}
}

func (n *nodeProc) stop() {
	select {
	case <-n.done:
	default:
		n.cmd.Process.Kill()
		<-n.done
	}
}

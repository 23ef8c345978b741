// Command demo runs a small LAN of gocarp appliances inside one process and
// prints what happens when the master dies: election, bulk state sync, a
// silent crash, the takeover, the address moving, and the old master coming
// back. Nothing touches the host's network: CARP runs on the in-memory
// segment of carp/carptest, state sync on the in-memory network of
// pfsync/pfsynctest, and the addresses on the recording fakes of vip/viptest.
//
//	go run ./examples/demo
//	go run ./examples/demo -nodes 3 -conns 50000 -loss 0.05
//	go run ./examples/demo -protocol vrrp3 -advert-int 200ms
//
// With -protocol vrrp3 the group speaks VRRPv3 (RFC 5798, keepalived's
// protocol) instead of CARP, ranked by priority instead of advskew; the
// timeline explains priority, the advertisement interval and RFC 5798's
// skew and master-down interval the first time they appear.
//
// The scenario runs in real time: Go cannot simulate time outside a test,
// so the default advbase is 1 s and a default run takes about 10 s. The
// test (demo_test.go) plays the same scenario in simulated time with
// testing/synctest.
//
// It exits 0 when every invariant held (never two masters beyond the CARP
// handover transient, no connection lost, state committed before every
// address was installed and announced), 1 otherwise and 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/gocarp/gocarp/carp"
)

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2) // the flag package has printed the error and the usage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// options are the knobs of the scenario; parseFlags fills them from the
// command line and defaultOptions gives the values used without flags.
type options struct {
	Nodes   int     // appliance nodes on the LAN, 2-5
	Conns   int     // connections the first master creates
	AdvBase int     // CARP advbase, seconds, for every node
	AdvSkew int     // CARP advskew of node2, the preferred backup
	Preempt bool    // a returning, better node takes the master role back
	Loss    float64 // probability that a frame (advert or sync) is lost
	Seed    uint64  // seed of the in-memory networks' fault decisions

	// Protocol is "carp" (the default) or "vrrp3": the same story with the
	// group speaking VRRPv3 (RFC 5798). Priority and AdvertInt replace
	// AdvBase and AdvSkew then.
	Protocol  string
	Priority  int           // VRRP priority of node2, the preferred backup
	AdvertInt time.Duration // VRRP advertisement interval of every node
}

func defaultOptions() options {
	return options{Nodes: 2, Conns: 10000, AdvBase: 1, AdvSkew: 100, Preempt: true, Seed: 1,
		Protocol: "carp", Priority: 150, AdvertInt: time.Second}
}

// vrrp reports whether the group speaks VRRPv3.
func (o options) vrrp() bool { return o.Protocol == "vrrp3" }

// Node1's VRRP priority: high, but not the address owner's 255 (an owner
// starts as master at once, and the demo's founder must wait for its sync
// engine). Further backups go priorityStep below node2.
const (
	node1Priority = 200
	priorityStep  = 20
)

// skewStep separates the advskew of further backups (node3, node4, ...) so
// that the order of succession is fixed.
const skewStep = 40

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Nodes, "nodes", o.Nodes, "appliance nodes on the LAN, a `count` of 2-5; node1 is the preferred master")
	fs.IntVar(&o.Conns, "conns", o.Conns, "`number` of connections the master creates before it crashes")
	fs.IntVar(&o.AdvBase, "advbase", o.AdvBase, "CARP advertisement base interval in `seconds` (1-255) for every node;\n"+
		"the master sends an advert every advbase+advskew/256 s and a backup takes over after\n"+
		"3×advbase+advskew/256 s of silence")
	fs.IntVar(&o.AdvSkew, "advskew", o.AdvSkew, "CARP advertisement `skew` in 1/256 s (1-255) of node2, the preferred backup; node1 uses 0\n"+
		"and every further node adds 40 (156 ms), so the order of succession is node1, node2, ...")
	fs.BoolVar(&o.Preempt, "preempt", o.Preempt, "let a returning node with a better advskew (VRRP: priority) take the master role back\n"+
		"(once its state sync is complete); -preempt=false keeps the current master")
	fs.Float64Var(&o.Loss, "loss", o.Loss, "`probability` (0-0.5) that a frame on the LAN is lost, for CARP adverts and sync\n"+
		"frames alike; the sync engine retransmits, CARP tolerates two lost adverts in a row")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "`seed` of the in-memory networks' loss decisions")
	fs.StringVar(&o.Protocol, "protocol", o.Protocol, "wire `protocol` of the group: carp, or vrrp3 for VRRPv3 (RFC 5798, keepalived's\n"+
		"protocol); the story is the same, ranked by -priority and timed by -advert-int instead")
	fs.IntVar(&o.Priority, "priority", o.Priority, "VRRP `priority` (1-199) of node2, the preferred backup, with -protocol vrrp3; node1 has 200\n"+
		"and every further node 20 less; the highest priority wins the election")
	fs.DurationVar(&o.AdvertInt, "advert-int", o.AdvertInt, "VRRP advertisement `interval` (10ms-40.95s, in 10 ms steps) of every node, with\n"+
		"-protocol vrrp3; a backup takes over after 3×interval+(256-priority)×interval/256 of silence")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: go run ./examples/demo [flags]

Runs a LAN of gocarp appliance nodes inside this process (no root, no network
set-up) and prints a timeline in real time: the election, the backup's bulk
state sync, the master crashing without a word, the backup taking over after
the master-down interval, the virtual address installed and announced, the
connections the new master holds, and the old master returning (and, with
-preempt, taking the role back once its own sync is complete).

With -protocol vrrp3 the group speaks VRRPv3 (RFC 5798, the protocol of
keepalived and routers) instead of CARP: the same story, the election decided
by -priority, the timing by -advert-int.

Everything runs in real time (Go cannot simulate time outside a test), which
is why advbase defaults to 1 s: the default run takes about 10 s, a 5-node run
about 13 s. The test of this program plays the same scenario in simulated time.

It exits 0 when every invariant held: never two masters beyond the CARP
handover transient, no connection lost, state committed before every address
announcement. It exits 1 otherwise, and 2 on bad flags.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	// The timing flags of the other protocol would be silently ignored.
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		carpOnly := f.Name == "advbase" || f.Name == "advskew"
		vrrpOnly := f.Name == "priority" || f.Name == "advert-int"
		if o.vrrp() && carpOnly || !o.vrrp() && vrrpOnly {
			wrong = append(wrong, "-"+f.Name)
		}
	})
	if len(wrong) > 0 {
		err := fmt.Errorf("%s: not with -protocol %s (CARP: -advbase, -advskew; VRRPv3: -priority, -advert-int)", strings.Join(wrong, ", "), o.Protocol)
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return o, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return o, err
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return o, err
	}
	return o, nil
}

func (o options) validate() error {
	switch {
	case o.Nodes < 2 || o.Nodes > 5:
		return fmt.Errorf("-nodes %d out of range 2-5", o.Nodes)
	case o.Conns < 1 || o.Conns > 1_000_000:
		return fmt.Errorf("-conns %d out of range 1-1000000", o.Conns)
	case o.AdvBase < 1 || o.AdvBase > 255:
		return fmt.Errorf("-advbase %d out of range 1-255", o.AdvBase)
	case o.AdvSkew < 1 || o.AdvSkew+skewStep*(o.Nodes-2) > 255:
		return fmt.Errorf("-advskew %d out of range 1-%d (with %d nodes)", o.AdvSkew, 255-skewStep*(o.Nodes-2), o.Nodes)
	case !(o.Loss >= 0 && o.Loss <= 0.5):
		return fmt.Errorf("-loss %v out of range 0-0.5", o.Loss)
	case o.Protocol != "carp" && o.Protocol != "vrrp3":
		return fmt.Errorf("-protocol %q out of range (carp, vrrp3)", o.Protocol)
	case o.Priority-priorityStep*(o.Nodes-2) < 1 || o.Priority >= node1Priority:
		return fmt.Errorf("-priority %d out of range %d-%d (with %d nodes)", o.Priority, 1+priorityStep*(o.Nodes-2), node1Priority-1, o.Nodes)
	case o.AdvertInt < carp.MinAdvertInterval || o.AdvertInt > carp.MaxAdvertInterval || o.AdvertInt%carp.MinAdvertInterval != 0:
		return fmt.Errorf("-advert-int %v out of range 10ms-40.95s in steps of 10ms", o.AdvertInt)
	}
	return nil
}

// priority returns the VRRP priority of node i (1-based).
func (o options) priority(i int) uint8 {
	if i == 1 {
		return node1Priority
	}
	return uint8(o.Priority - priorityStep*(i-2))
}

// interval returns the advertisement interval of the preferred master.
func (o options) interval() time.Duration {
	if o.vrrp() {
		return o.AdvertInt
	}
	return time.Duration(o.AdvBase) * time.Second
}

// advSkew returns the advskew of node i (1-based).
func (o options) advSkew(i int) uint8 {
	if i == 1 {
		return 0
	}
	return uint8(o.AdvSkew + skewStep*(i-2))
}

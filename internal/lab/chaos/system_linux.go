package chaos

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// Timing of every group in the soak: advbase 1 s, the worst advskew 100,
// dead ratio 3. advertInterval is the longest interval between two adverts
// of any member (advbase + advskew/256); masterDown the longest time a
// backup waits for the master's adverts before it takes over.
const (
	maxSkew        = 100
	advertInterval = time.Second + maxSkew*time.Second/256
	masterDown     = 3*time.Second + maxSkew*time.Second/256
)

// carpd group: three nodes on one bridge, advskew 0, 50 and 100, all with
// preemption, so the node of rank 0 is master whenever it runs.
const (
	carpdVHID = 7
	carpdPass = "chaos-pw"
)

var (
	carpdVIP  = netip.MustParseAddr("10.77.0.254")
	carpdVIP6 = netip.MustParseAddr("fd77::fe")
)

// node is one daemon of a system under test.
type node struct {
	sys    *system
	name   string
	ns     *netns.NS
	args   []string
	ifaces []string // interfaces that carry the virtual addresses
	ports  []string // its ports in the switch namespace (LAN first)
	socket string   // fwpair control socket

	// Guarded by Soak.mu.
	proc       *netns.Process
	gen        int            // incremented at every start
	alive      bool           // process started and not exited (it may be frozen)
	frozen     bool           // SIGSTOPped
	expectExit bool           // the soak killed it
	state      map[int]string // CARP state per vhid, from the daemon's log
	demotion   map[int]int    // demotion per vhid, from the daemon's log
	mem        []*procMem     // one per process started
}

// system is a set of nodes running the same groups: the carpd group or the
// fwpair pair.
type system struct {
	name   string
	groups []int                 // vhids
	vips   map[netip.Addr]string // virtual address -> interface carrying it
	nodes  []*node               // by preference: nodes[0] is the preferred master
	sw     *netns.NS             // switch namespace
	pair   *fwbench.Lab          // fwpair only

	// Guarded by Soak.mu.
	excusing  int       // active events during which a split is expected
	excuseEnd time.Time // end of the latest of them
	safe      *event    // active event that must not move any group
	track     map[string]*split
}

// split is the tracking of one condition that must end within a bound:
// several masters of a group, no master, an address on several nodes.
type split struct {
	since    time.Time
	reported bool
}

// build builds examples/<name> (carpd, fwpair) into the test's temporary
// directory, with the race detector if race.
func build(t testing.TB, name string, race bool) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/gocarp/gocarp/examples/"+name)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chaos: building %s: %v\n%s", name, err, out)
	}
	return bin
}

// newCarpd builds the carpd topology: nodes c1-c3 on bridge "lan", each
// running carpd with --manage-vip (it installs and removes the addresses
// itself) and preemption.
func newCarpd(t testing.TB, bin string) *system {
	t.Helper()
	tp := netns.New(t, "chc")
	br := tp.Bridge("lan")
	sys := &system{name: "carpd", groups: []int{carpdVHID}, sw: tp.Switch(),
		vips: map[netip.Addr]string{carpdVIP: "eth0", carpdVIP6: "eth0"}}
	for i := range 3 {
		ip := netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)})
		ip6 := netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 15: byte(i + 1)})
		n := &node{sys: sys, name: fmt.Sprintf("c%d", i+1), ifaces: []string{"eth0"}}
		n.ns = tp.Node(n.name)
		n.ports = []string{tp.Attach(n.ns, br, "eth0", netip.PrefixFrom(ip, 24), netip.PrefixFrom(ip6, 64))}
		n.args = append([]string{bin}, "-i", "eth0", "-s", ip.String(), "-v", fmt.Sprint(carpdVHID), "-p", carpdPass,
			"-a", carpdVIP.String(), "-a", carpdVIP6.String(), "-k", fmt.Sprint(i*maxSkew/2), "-P", "--manage-vip")
		sys.nodes = append(sys.nodes, n)
	}
	return sys
}

// newFwpair builds the firewall lab of internal/lab/fwbench with fwpair on
// both firewalls. The follow rule's hold is shortened (1 s, at most 10 s)
// so that a hand-over settles within the soak's bounds.
func newFwpair(t testing.TB, bin string) *system {
	t.Helper()
	l := fwbench.NewLab(t, "chf")
	sys := &system{name: "fwpair", groups: []int{1, 2}, sw: l.Switch(), pair: l, vips: map[netip.Addr]string{
		fwbench.LANVIP: fwbench.LANIf, fwbench.LANVIP6: fwbench.LANIf,
		fwbench.WANVIP: fwbench.WANIf, fwbench.WANVIP6: fwbench.WANIf,
	}}
	for i := 1; i <= 2; i++ {
		cfg, sock := l.FwpairConfig(i, fwbench.FwpairOptions{StartAsMaster: i == 1})
		patchJSON(t, cfg, func(m map[string]any) {
			m["follow"] = map[string]any{"hold": "1s", "max_hold": "10s"}
		})
		n := &node{sys: sys, name: fmt.Sprintf("fw%d", i), ns: l.FW[i], socket: sock,
			args: []string{bin, "-config", cfg}, ifaces: []string{fwbench.LANIf, fwbench.WANIf},
			ports: []string{l.LANPort[i], l.WANPort[i]}}
		sys.nodes = append(sys.nodes, n)
	}
	return sys
}

// patchJSON rewrites a JSON object file through fn.
func patchJSON(t testing.TB, path string, fn func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("chaos: %s: %v", path, err)
	}
	fn(m)
	if b, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// masters returns the live nodes whose daemon reports MASTER for vhid.
// Called with Soak.mu held.
func (sys *system) masters(vhid int) []*node {
	var out []*node
	for _, n := range sys.nodes {
		if n.alive && n.state[vhid] == "MASTER" {
			out = append(out, n)
		}
	}
	return out
}

// best returns the preferred live node (the lowest rank whose process
// runs and is not frozen). Called with Soak.mu held.
func (sys *system) best() *node {
	for _, n := range sys.nodes {
		if n.alive && !n.frozen {
			return n
		}
	}
	return nil
}

func names(ns []*node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// nsOutput runs a command inside ns and returns an error that includes its
// output. Unlike the netns helpers it never fails the test, so the
// injectors can use it from their own goroutines.
func nsOutput(ns *netns.NS, name string, args ...string) error {
	_, err := ns.Output(name, args...)
	return err
}

// setLink sets ifname in ns up or down.
func setLink(ns *netns.NS, ifname string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return nsOutput(ns, "ip", "link", "set", ifname, state)
}

// waitRunning waits until ifname in ns has carrier again after a link was
// set up (the kernel reports it asynchronously).
func waitRunning(ns *netns.NS, ifname string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := ns.Output("ip", "-o", "link", "show", "dev", ifname)
		if err == nil && strings.Contains(out, "LOWER_UP") && !strings.Contains(out, "NO-CARRIER") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s: %s has no carrier %v after being set up: %q %v", ns.Short, ifname, timeout, out, err)
		}
		// Readiness poll of the kernel's carrier flag, not an assertion.
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the node's daemon.
func (n *node) signal(p *netns.Process, sig syscall.Signal) error {
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("chaos: %s: %v: %w", n.name, sig, err)
	}
	return nil
}

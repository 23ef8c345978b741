//go:build linux

package netns

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RunDir is where iproute2 keeps the bind mounts of named namespaces.
const RunDir = "/var/run/netns"

// inCI reports whether the tests run under CI, where every tool is installed
// and tests run as root, so a skip would hide a broken setup.
func inCI() bool { return os.Getenv("CI") == "true" }

// Require skips the test when it does not run as root (or fails it under
// CI=true, where root is expected) and when iproute2's ip is missing.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if inCI() {
			t.Fatalf("netns: test needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) and CI=true; running as uid %d", os.Geteuid())
		}
		t.Skipf("netns: skipping, test needs root to create network namespaces (running as uid %d)", os.Geteuid())
	}
	RequireBinary(t, "ip")
}

// RequireBinary returns the path of the program name. It skips the test
// when the program is missing, or fails it under CI=true, where CI installs
// every program the tests use.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if inCI() {
			t.Fatalf("netns: %s is required under CI=true: %v", name, err)
		}
		t.Skipf("netns: skipping, %s not installed: %v", name, err)
	}
	return p
}

// Topology is a set of namespaces created for one test. Create it with New;
// it is deleted in t.Cleanup. Its methods fail the test on error (they call
// t.Fatal), so they must be called from the test goroutine.
type Topology struct {
	t      testing.TB
	prefix string

	mu     sync.Mutex
	sw     *NS
	nodes  map[string]*NS
	order  []*NS
	nports int
}

// New creates an empty topology. tag names the calling package (a few
// letters, e.g. "carp"); together with the process id and a hash of the
// test name it makes every name unique across parallel test binaries.
func New(t testing.TB, tag string) *Topology {
	t.Helper()
	Require(t)
	tp := &Topology{
		t:      t,
		prefix: uniquePrefix(t, tag),
		nodes:  make(map[string]*NS),
	}
	t.Cleanup(tp.cleanup)
	return tp
}

// uniquePrefix returns "<tag>-<pid>-<hash>" where hash is derived from the
// test name and, if a namespace with that prefix already exists (a second
// topology in the same test), a counter.
func uniquePrefix(t testing.TB, tag string) string {
	ents, err := os.ReadDir(RunDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("netns: %v", err)
	}
	for n := 0; ; n++ {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s#%d", t.Name(), n)
		p := fmt.Sprintf("%s-%d-%06x", tag, os.Getpid(), h.Sum32()&0xffffff)
		if !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), p+"-") }) {
			return p
		}
	}
}

// Prefix returns the prefix of every namespace name of this topology.
func (tp *Topology) Prefix() string { return tp.prefix }

func (tp *Topology) cleanup() {
	tp.mu.Lock()
	order := tp.order
	tp.order = nil
	tp.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", order[i].Name).CombinedOutput(); err != nil {
			tp.t.Errorf("netns: delete %s: %v: %s", order[i].Name, err, out)
		}
	}
}

// NS is one named network namespace of a topology.
type NS struct {
	// Name is the namespace name as iproute2 knows it (ip netns exec Name).
	Name string
	// Short is the name given to Topology.Node ("sw" for the switch).
	Short string
	t     testing.TB
}

// Path returns the namespace's bind mount, suitable for setns(2) or
// netlink.Config.NetNS (after opening it).
func (n *NS) Path() string { return filepath.Join(RunDir, n.Name) }

func (tp *Topology) addNS(short string) *NS {
	tp.t.Helper()
	n := &NS{Name: tp.prefix + "-" + short, Short: short, t: tp.t}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		tp.t.Fatalf("netns: add %s: %v: %s", n.Name, err, out)
	}
	tp.mu.Lock()
	tp.order = append(tp.order, n)
	tp.mu.Unlock()
	n.IP("link", "set", "lo", "up")
	return n
}

// Switch returns the switch namespace, creating it on first use. It holds
// the bridges and has br_netfilter disabled.
func (tp *Topology) Switch() *NS {
	tp.t.Helper()
	tp.mu.Lock()
	sw := tp.sw
	tp.mu.Unlock()
	if sw != nil {
		return sw
	}
	sw = tp.addNS("sw")
	tp.mu.Lock()
	tp.sw = sw
	tp.mu.Unlock()
	// br_netfilter is per namespace and defaults to on when the module is
	// loaded: bridged frames would traverse iptables in the switch.
	sysctls := map[string]string{
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
	}
	for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		if _, err := os.Stat("/proc/sys/net/bridge/" + k); err == nil {
			sysctls["net/bridge/"+k] = "0"
		}
	}
	sw.SetSysctls(sysctls)
	return sw
}

// Node creates a node namespace named short (unique within the topology)
// with loopback up and the sysctls described in the package documentation.
func (tp *Topology) Node(short string) *NS {
	tp.t.Helper()
	tp.mu.Lock()
	_, dup := tp.nodes[short]
	tp.mu.Unlock()
	if dup || short == "sw" {
		tp.t.Fatalf("netns: node %q already exists", short)
	}
	n := tp.addNS(short)
	tp.mu.Lock()
	tp.nodes[short] = n
	tp.mu.Unlock()
	sysctls := map[string]string{}
	for _, c := range []string{"all", "default"} {
		sysctls["net/ipv4/conf/"+c+"/rp_filter"] = "0"
		sysctls["net/ipv4/conf/"+c+"/arp_ignore"] = "1"
		sysctls["net/ipv4/conf/"+c+"/arp_announce"] = "2"
		sysctls["net/ipv4/conf/"+c+"/send_redirects"] = "0"
		sysctls["net/ipv6/conf/"+c+"/accept_dad"] = "0"
	}
	n.SetSysctls(sysctls)
	return n
}

// Bridge creates a bridge called name in the switch namespace and brings it
// up. STP is off, so ports forward at once. Multicast snooping keeps the
// kernel default (on, but without a querier everything is flooded); see
// EnableQuerier.
func (tp *Topology) Bridge(name string) string {
	tp.t.Helper()
	checkIfName(tp.t, name)
	sw := tp.Switch()
	sw.IP("link", "add", name, "type", "bridge", "stp_state", "0")
	sw.SetSysctls(map[string]string{"net/ipv6/conf/" + name + "/accept_dad": "0"})
	sw.IP("link", "set", name, "up")
	return name
}

// EnableQuerier turns on multicast snooping and the bridge's own IGMP/MLD
// querier. With an active querier the bridge forwards snooped groups
// (ff02::12 is one; 224.0.0.x never is) only to ports that reported
// membership: a host that did not join ff02::12 stops receiving IPv6
// adverts (docs/interop.md, "MLD snooping"). The bridge needs an IPv6 link-local address
// to query, which it has because accept_dad is 0 in the switch namespace.
func (tp *Topology) EnableQuerier(bridge string) {
	tp.t.Helper()
	// Short intervals first (centiseconds): the kernel arms the "querier
	// delay" timer with the response interval when the querier is switched
	// on, and keeps flooding until it expires (10 s by default).
	tp.Switch().IP("link", "set", "dev", bridge, "type", "bridge",
		"mcast_snooping", "1", "mcast_startup_query_interval", "50", "mcast_query_response_interval", "50")
	tp.Switch().IP("link", "set", "dev", bridge, "type", "bridge", "mcast_querier", "1")
}

// Attach connects node to bridge with a veth pair: ifname inside node, a
// port named after the node inside the switch namespace. Both ends are up
// and node's end has the given addresses (IPv6 ones with nodad). It returns
// the name of the switch-side port, so a test can cut the node's carrier
// (Switch().SetLink(port, false)) without touching the node.
func (tp *Topology) Attach(node *NS, bridge, ifname string, addrs ...netip.Prefix) string {
	tp.t.Helper()
	checkIfName(tp.t, ifname)
	sw := tp.Switch()
	tp.mu.Lock()
	tp.nports++
	port := fmt.Sprintf("%.9s-p%d", node.Short, tp.nports)
	tp.mu.Unlock()
	run(tp.t, "ip", "link", "add", ifname, "netns", node.Name, "type", "veth", "peer", "name", port, "netns", sw.Name)
	// Bridge ports carry no addresses of their own.
	sw.SetSysctls(map[string]string{"net/ipv6/conf/" + port + "/disable_ipv6": "1"})
	sw.IP("link", "set", port, "master", bridge)
	sw.IP("link", "set", port, "up")
	node.setupIf(ifname, addrs)
	node.WaitReady(ifname)
	// The port forwards only once the kernel has processed its carrier
	// event (qdisc attached, bridge port state set): wait for that too.
	sw.WaitReady(port)
	return port
}

// Link connects two nodes with a point-to-point veth pair (e.g. a dedicated
// sync link): aif in a, bif in b, both up with the given addresses.
func (tp *Topology) Link(a *NS, aif string, aAddrs []netip.Prefix, b *NS, bif string, bAddrs []netip.Prefix) {
	tp.t.Helper()
	checkIfName(tp.t, aif)
	checkIfName(tp.t, bif)
	run(tp.t, "ip", "link", "add", aif, "netns", a.Name, "type", "veth", "peer", "name", bif, "netns", b.Name)
	a.setupIf(aif, aAddrs)
	b.setupIf(bif, bAddrs)
	a.WaitReady(aif)
	b.WaitReady(bif)
}

func (n *NS) setupIf(ifname string, addrs []netip.Prefix) {
	n.t.Helper()
	n.SetSysctls(map[string]string{
		"net/ipv4/conf/" + ifname + "/rp_filter":      "0",
		"net/ipv4/conf/" + ifname + "/arp_ignore":     "1",
		"net/ipv4/conf/" + ifname + "/arp_announce":   "2",
		"net/ipv4/conf/" + ifname + "/send_redirects": "0",
		"net/ipv6/conf/" + ifname + "/accept_dad":     "0",
	})
	for _, a := range addrs {
		n.AddAddr(ifname, a)
	}
	n.SetLink(ifname, true)
}

// WaitReady waits until ifname is running (carrier up) and, unless IPv6 is
// disabled on it, has a usable IPv6 link-local address. Both appear
// asynchronously after "ip link set up" (the kernel's linkwatch delays
// carrier events by up to a second), and sockets opened before that fail or
// pick no source. Attach and Link call it; call it after SetLink(ifname,
// true) yourself.
func (n *NS) WaitReady(ifname string) {
	n.t.Helper()
	v6 := n.Sysctl("net/ipv6/conf/"+ifname+"/disable_ipv6") == "0"
	deadline := time.Now().Add(10 * time.Second)
	for {
		var running, ll bool
		err := n.Do(func() error {
			ifi, err := net.InterfaceByName(ifname)
			if err != nil {
				return err
			}
			running = ifi.Flags&net.FlagRunning != 0
			as, err := ifi.Addrs()
			if err != nil {
				return err
			}
			for _, a := range as {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() {
					ll = true
				}
			}
			return nil
		})
		if err != nil {
			n.t.Fatalf("netns: %s: %v", n.Name, err)
		}
		if running && (ll || !v6) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("netns: %s: %s not ready after 10s (running %v, link-local %v)", n.Name, ifname, running, ll)
		}
		// Readiness poll, not a test assertion: the kernel offers no
		// cheaper notification than a netlink subscription here.
		time.Sleep(10 * time.Millisecond)
	}
}

func checkIfName(t testing.TB, name string) {
	t.Helper()
	if name == "" || len(name) > unix.IFNAMSIZ-1 || strings.ContainsAny(name, "/ \t\n:") {
		t.Fatalf("netns: bad interface name %q (1-15 bytes, no '/', ':' or spaces)", name)
	}
}

// AddAddr adds an address to ifname. IPv6 addresses get nodad so they are
// usable at once (docs/interop.md, "Host sysctls").
func (n *NS) AddAddr(ifname string, p netip.Prefix) {
	n.t.Helper()
	args := []string{"addr", "add", p.String(), "dev", ifname}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	n.IP(args...)
}

// DelAddr removes an address from ifname.
func (n *NS) DelAddr(ifname string, p netip.Prefix) {
	n.t.Helper()
	n.IP("addr", "del", p.String(), "dev", ifname)
}

// SetLink sets ifname administratively up or down.
func (n *NS) SetLink(ifname string, up bool) {
	n.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	n.IP("link", "set", ifname, state)
}

// IP runs "ip -n <ns> args..." and fails the test on error. It returns the
// combined output.
func (n *NS) IP(args ...string) string {
	n.t.Helper()
	return run(n.t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Run runs a command inside the namespace (ip netns exec) and fails the
// test on error. It returns the combined output.
func (n *NS) Run(name string, args ...string) string {
	n.t.Helper()
	out, err := n.Output(name, args...)
	if err != nil {
		n.t.Fatalf("netns: %s: %v", n.Name, err)
	}
	return out
}

// Output runs a command inside the namespace and returns its combined
// output and an error that includes the output.
func (n *NS) Output(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}

// SetSysctls writes sysctls inside the namespace. Keys are paths under
// /proc/sys ("net/ipv4/conf/all/rp_filter").
func (n *NS) SetSysctls(kv map[string]string) {
	n.t.Helper()
	err := n.Do(func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.t.Fatalf("netns: %s: sysctl: %v", n.Name, err)
	}
}

// Sysctl reads one sysctl inside the namespace.
func (n *NS) Sysctl(key string) string {
	n.t.Helper()
	var v []byte
	err := n.Do(func() error {
		var err error
		v, err = os.ReadFile(filepath.Join("/proc/sys", key))
		return err
	})
	if err != nil {
		n.t.Fatalf("netns: %s: sysctl: %v", n.Name, err)
	}
	return string(bytes.TrimSpace(v))
}

// Do runs fn inside the namespace on a dedicated OS thread and returns its
// error. The thread is locked and never unlocked, so the Go runtime
// destroys it when fn returns and no other goroutine ever runs in the
// namespace by accident. Sockets opened by fn stay in the namespace after
// Do returns. Goroutines started by fn run in the process's original
// namespace. Do may be called from any goroutine.
func (n *NS) Do(fn func() error) error {
	return Do(n.Path(), fn)
}

// Do runs fn inside the network namespace bound at path; see NS.Do.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread dies with this goroutine
		f, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("netns: setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Exists reports whether a namespace of that name exists.
func Exists(name string) bool {
	_, err := os.Stat(filepath.Join(RunDir, name))
	return !errors.Is(err, os.ErrNotExist)
}

//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/logcheck"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// carpdBin is the carpd binary built once by TestMain (empty when not root:
// the daemon tests then skip, or fail under CI, through netns.Require).
var carpdBin string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "carpd-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		carpdBin = filepath.Join(dir, "carpd")
		if out, err := exec.Command("go", "build", "-o", carpdBin, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building carpd: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// Group parameters shared by every daemon of these tests.
const (
	testVHID = "1"
	testPass = "secret"
)

var testVIP = netip.MustParseAddr("10.78.0.254")

// Waits. ucarp decides master-down only when its poll returns (~1.4 s of
// jitter on 3 x advbase + advskew/256), so state changes get generous
// deadlines; they are deadlines, not delays: every wait ends as soon as
// what it waits for happened.
const (
	stateTimeout = 15 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// node is one host on the test LAN.
type node struct {
	name string
	ns   *netns.NS
	ip   netip.Addr // 10.78.0.<i+1>/24 on eth0
	ip6  netip.Addr // fd78::<i+1>/64 on eth0
	port string     // switch-side port of eth0
}

// testbed is a LAN of nodes, a shared events file written by every node's
// up and down scripts, and an observer of the adverts on the wire.
type testbed struct {
	t      *testing.T
	tp     *netns.Topology
	dir    string
	nodes  map[string]*node
	events string
	obs    *observer
}

// newTestbed builds bridge "lan" with one node per name, plus an
// observer node "obs".
func newTestbed(t *testing.T, names ...string) *testbed {
	t.Helper()
	netns.Require(t)
	tp := netns.New(t, "carpd")
	br := tp.Bridge("lan")
	tb := &testbed{t: t, tp: tp, dir: t.TempDir(), nodes: map[string]*node{}}
	tb.events = filepath.Join(tb.dir, "events")
	tb.writeScripts()
	for i, name := range append(names, "obs") {
		n := &node{name: name, ns: tp.Node(name), ip: netip.AddrFrom4([4]byte{10, 78, 0, byte(i + 1)}),
			ip6: netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x78, 15: byte(i + 1)})}
		n.port = tp.Attach(n.ns, br, "eth0", netip.PrefixFrom(n.ip, 24), netip.PrefixFrom(n.ip6, 64))
		tb.nodes[name] = n
	}
	tb.obs = newObserver(t, tb.nodes["obs"])
	return tb
}

// writeScripts writes ucarp-style up and down scripts that append
// "<xparam> up" or "<xparam> down" to the shared events file; the "vip"
// pair also adds or removes the address ("$2") on the interface ("$1"), as
// a ucarp user's scripts do. Appends of one short line are atomic, so the
// file records the global order of script runs across nodes.
func (tb *testbed) writeScripts() {
	tb.t.Helper()
	for _, vip := range []bool{false, true} {
		up, down := tb.scripts(vip)
		addCmd, delCmd := "", ""
		if vip {
			addCmd = `ip addr add "$2/32" dev "$1"` + "\n"
			delCmd = `ip addr del "$2/32" dev "$1" 2>/dev/null` + "\n"
		}
		for path, body := range map[string]string{
			up:   addCmd + `echo "$3 up" >> ` + tb.events + "\n",
			down: delCmd + `echo "$3 down" >> ` + tb.events + "\n",
		} {
			if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
				tb.t.Fatal(err)
			}
		}
	}
}

// scripts returns the paths of the up and down scripts (see writeScripts).
func (tb *testbed) scripts(vip bool) (up, down string) {
	kind := "log"
	if vip {
		kind = "vip"
	}
	return filepath.Join(tb.dir, kind+"-up.sh"), filepath.Join(tb.dir, kind+"-down.sh")
}

// carpd starts carpd on node name with the shared group parameters, the
// event scripts (xparam = node name) and extra flags. At the end of the
// test every line it logged is checked for a key written twice.
func (tb *testbed) carpd(name string, vipScripts bool, extra ...string) *netns.Process {
	tb.t.Helper()
	n := tb.nodes[name]
	up, down := tb.scripts(vipScripts)
	pass := []string{"-p", testPass}
	if slices.Contains(extra, "-o") || slices.Contains(extra, "-p") {
		pass = nil // the test gives its own
	}
	args := append([]string{"-i", "eth0", "-s", n.ip.String(), "-v", testVHID}, pass...)
	args = append(args, "-a", testVIP.String(), "-u", up, "-d", down, "-x", name)
	p := n.ns.Start(carpdBin, append(args, extra...)...)
	t := tb.t
	t.Cleanup(func() {
		for _, line := range p.Output() {
			if d := logcheck.DuplicateKeys(line); d != nil {
				t.Errorf("carpd on %s logged %s twice: %s", name, strings.Join(d, ", "), line)
			}
		}
	})
	return p
}

// ucarp starts ucarp on node name like carpd.
func (tb *testbed) ucarp(name string, extra ...string) *netns.Process {
	tb.t.Helper()
	netns.RequireBinary(tb.t, "ucarp")
	n := tb.nodes[name]
	up, down := tb.scripts(false)
	args := []string{"-i", "eth0", "-s", n.ip.String(), "-v", testVHID, "-p", testPass,
		"-a", testVIP.String(), "-u", up, "-d", down, "-x", name, "-f", "none"}
	return n.ns.Start("ucarp", append(args, extra...)...)
}

// eventLines returns the lines of the events file so far.
func (tb *testbed) eventLines() []string {
	b, err := os.ReadFile(tb.events)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		tb.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// waitEvent waits until the events file has line at an index >= from and
// returns that index. Scripts are external processes: polling their side
// effect against a deadline is the event here.
func (tb *testbed) waitEvent(from int, line string) int {
	tb.t.Helper()
	deadline := time.Now().Add(stateTimeout)
	for {
		ev := tb.eventLines()
		for i := from; i < len(ev); i++ {
			if ev[i] == line {
				return i
			}
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("no event %q (from index %d) within %v; events: %q", line, from, stateTimeout, ev)
		}
		time.Sleep(pollEvery)
	}
}

// countEvent returns how many times line appears in the events file.
func (tb *testbed) countEvent(line string) int {
	n := 0
	for _, l := range tb.eventLines() {
		if l == line {
			n++
		}
	}
	return n
}

// hasVIP reports whether the VIP is configured on node name.
func (tb *testbed) hasVIP(name string) bool {
	tb.t.Helper()
	return tb.hasAddr(name, "eth0", testVIP)
}

// hasAddr reports whether addr is configured on dev of node name.
func (tb *testbed) hasAddr(name, dev string, addr netip.Addr) bool {
	tb.t.Helper()
	out := tb.nodes[name].ns.IP("addr", "show", "dev", dev)
	return strings.Contains(out, " "+addr.String()+"/")
}

// waitVIP waits until the VIP is (want) or is not on node name.
func (tb *testbed) waitVIP(name string, want bool) {
	tb.t.Helper()
	deadline := time.Now().Add(stateTimeout)
	for tb.hasVIP(name) != want {
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: VIP present = %v after %v, want %v", name, !want, stateTimeout, want)
		}
		time.Sleep(pollEvery)
	}
}

// kill sends SIGKILL to a daemon (not to its scripts) and waits for it to
// exit, like a crash of the process.
func kill(t *testing.T, p *netns.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(stateTimeout):
		t.Fatalf("%s did not exit after SIGKILL", p.Name)
	}
}

var statRe = regexp.MustCompile(`\b([a-z0-9_]+)=([^ ]+)`)

// stats sends SIGUSR1 to a carpd and returns the fields of the status line
// it logs ("badauth" -> "3"). Every status line carries the goroutine
// count, which is at least 1 (main's).
func stats(t *testing.T, p *netns.Process) map[string]string {
	t.Helper()
	from := p.Len()
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	line, _, err := p.WaitLine(from, "msg=status", stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	m := parseFields(line)
	if _, ok := m["goroutines"]; !ok || atoi(t, m, "goroutines") < 1 {
		t.Errorf("status line %q: want goroutines=N with N >= 1", line)
	}
	return m
}

func parseFields(line string) map[string]string {
	m := map[string]string{}
	for _, kv := range statRe.FindAllStringSubmatch(line, -1) {
		m[kv[1]] = kv[2]
	}
	return m
}

func atoi(t *testing.T, m map[string]string, key string) int {
	t.Helper()
	n, err := strconv.Atoi(m[key])
	if err != nil {
		t.Fatalf("field %s=%q in %v: %v", key, m[key], m, err)
	}
	return n
}

// observer counts the CARP adverts and, apart, the VRRP adverts on the
// LAN per source, from a raw transport on a node that takes no part in the
// group.
type observer struct {
	mu      sync.Mutex
	count   map[netip.Addr]int // CARP
	vrrp    map[netip.Addr]int
	changed chan struct{}
}

func newObserver(t *testing.T, n *node) *observer {
	t.Helper()
	var tr *carp.RawTransport
	err := n.ns.Do(func() error {
		var err error
		tr, err = carp.NewRawTransport("eth0", &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{count: map[netip.Addr]int{}, vrrp: map[netip.Addr]int{}, changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p, err := tr.Receive()
			if err != nil {
				return // closed
			}
			var adv carp.Advertisement
			err = adv.UnmarshalBinary(p.Payload)
			o.mu.Lock()
			switch {
			case err == nil:
				o.count[p.Src]++
			case errors.Is(err, carp.ErrVRRP):
				o.vrrp[p.Src]++
			}
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		tr.Close()
		<-done
	})
	return o
}

// waitAdverts waits until n more CARP adverts from src than now have been
// seen on the wire.
func (o *observer) waitAdverts(t *testing.T, src netip.Addr, n int) {
	t.Helper()
	o.wait(t, o.count, src, n, time.Duration(n)*2*time.Second+stateTimeout)
}

// waitVRRP waits until n more VRRP adverts from src than now have been
// seen on the wire. keepalived 2.2.7 as master, hearing carpd's adverts on
// the same group every second, delays its own adverts: one every 3-4 s in
// most runs, none for 19 s in some (the received packets keep pushing its
// send back), so this wait allows a minute.
func (o *observer) waitVRRP(t *testing.T, src netip.Addr, n int) {
	t.Helper()
	o.wait(t, o.vrrp, src, n, time.Minute)
}

func (o *observer) wait(t *testing.T, counts map[netip.Addr]int, src netip.Addr, n int, limit time.Duration) {
	t.Helper()
	o.mu.Lock()
	target := counts[src] + n
	o.mu.Unlock()
	deadline := time.After(limit)
	for {
		o.mu.Lock()
		got, ch := counts[src], o.changed
		o.mu.Unlock()
		if got >= target {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("saw %d adverts from %v, want %d", got, src, target)
		}
	}
}

// startPair starts the master (advskew 0) and, once it is MASTER, the
// backup (advskew 100) and waits until the backup has run its start-up
// downscript and then heard five of the master's adverts (over four
// seconds, more than its master-down interval of 3.39 s): from then on a
// backup that did not accept the adverts would have become MASTER.
func (tb *testbed) startPair(master, backup string, startMaster, startBackup func(name string, extra ...string) *netns.Process) (m, b *netns.Process) {
	tb.t.Helper()
	m = startMaster(master, "-k", "0")
	tb.waitEvent(0, master+" up")
	from := len(tb.eventLines())
	b = startBackup(backup, "-k", "100")
	tb.waitEvent(from, backup+" down")
	tb.obs.waitAdverts(tb.t, tb.nodes[master].ip, 5)
	if n := tb.countEvent(backup + " up"); n != 0 {
		tb.t.Fatalf("backup %s ran its upscript %d times while master %s was alive; events %q", backup, n, master, tb.eventLines())
	}
	return m, b
}

func (tb *testbed) carpdFn(vip bool, common ...string) func(string, ...string) *netns.Process {
	return func(name string, extra ...string) *netns.Process {
		return tb.carpd(name, vip, append(slices.Clone(common), extra...)...)
	}
}

func (tb *testbed) ucarpFn(common ...string) func(string, ...string) *netns.Process {
	return func(name string, extra ...string) *netns.Process {
		return tb.ucarp(name, append(slices.Clone(common), extra...)...)
	}
}

// TestUcarpInterop: carpd and ucarp in one group, each as master and as
// backup. The backup accepts the master's adverts (it stays BACKUP, its
// upscript does not run) and takes over when the master process is killed.
func TestUcarpInterop(t *testing.T) {
	t.Parallel()
	for _, carpdMaster := range []bool{true, false} {
		name := "carpd master, ucarp backup"
		if !carpdMaster {
			name = "ucarp master, carpd backup"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tb := newTestbed(t, "a", "b")
			startM, startB := tb.carpdFn(false), tb.ucarpFn()
			if !carpdMaster {
				startM, startB = startB, startM
			}
			m, b := tb.startPair("a", "b", startM, startB)
			from := len(tb.eventLines())
			kill(t, m)
			tb.waitEvent(from, "b up")
			if carpdMaster {
				// ucarp saw only good adverts.
				if n := b.Count(0, "Bad digest"); n != 0 {
					t.Errorf("ucarp logged %d bad digests", n)
				}
			} else {
				s := stats(t, b)
				if atoi(t, s, "badauth") != 0 || atoi(t, s, "ipackets") < 5 || s["state"] != "MASTER" {
					t.Errorf("carpd stats after the takeover: %v; want badauth=0, ipackets>=5, state=MASTER", s)
				}
			}
		})
	}
}

// TestUcarpWrongPassword: with different passwords neither side accepts the
// other's adverts: both become MASTER, ucarp logs "Bad digest" and carpd
// counts badauth.
func TestUcarpWrongPassword(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	u := tb.ucarp("a", "-k", "0")
	tb.waitEvent(0, "a up")
	c := tb.carpd("b", false, "-k", "100", "-p", "other")
	tb.waitEvent(0, "b up") // without accepting a's adverts it times out
	if _, _, err := u.WaitLine(0, "Bad digest", stateTimeout); err != nil {
		t.Fatal(err)
	}
	s := stats(t, c)
	if atoi(t, s, "badauth") == 0 || s["state"] != "MASTER" {
		t.Errorf("carpd stats: %v; want badauth > 0 and state=MASTER", s)
	}
	if n := tb.countEvent("a down"); n != 1 { // the start-up run only
		t.Errorf("ucarp ran its downscript %d times, want 1 (start-up): it must ignore carpd's adverts", n)
	}
}

// TestRestartAfterKillClearsVIP: a MASTER killed with SIGKILL leaves its
// VIP configured (docs/interop.md, "Stale addresses after a crash").
// When it is restarted, carpd removes
// it at start-up, through the downscript (ucarp's behaviour) or, with
// --manage-vip, itself; with --neutral and scripts, nothing removes it,
// which shows the check can fail.
func TestRestartAfterKillClearsVIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		vipScripts bool     // scripts add and remove the VIP
		flags      []string // for a, both runs
		wantStale  bool     // VIP still on a after the restart
	}{
		{name: "downscript at start-up", vipScripts: true},
		{name: "manage-vip", flags: []string{"--manage-vip", "--neutral"}},
		{name: "neutral keeps the stale VIP", vipScripts: true, flags: []string{"--neutral"}, wantStale: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := newTestbed(t, "a", "b")
			startA := tb.carpdFn(tt.vipScripts, tt.flags...)
			a, _ := tb.startPair("a", "b", startA, tb.carpdFn(true))
			tb.waitVIP("a", true)
			from := len(tb.eventLines())
			kill(t, a)
			tb.waitEvent(from, "b up")
			tb.waitVIP("b", true)
			if !tb.hasVIP("a") {
				t.Fatal("a lost the VIP when killed; the test needs it stale")
			}

			// a comes back (advskew 0, no preempt: it stays BACKUP under b).
			a2 := startA("a", "-k", "0")
			switch {
			case tt.wantStale:
				if _, _, err := a2.WaitLine(0, "carpd: started", stateTimeout); err != nil {
					t.Fatal(err)
				}
				tb.obs.waitAdverts(t, tb.nodes["b"].ip, 2)
				if !tb.hasVIP("a") {
					t.Fatal("with --neutral the stale VIP disappeared: something else removes it")
				}
			default:
				tb.waitVIP("a", false)
			}
			if n := tb.countEvent("a up"); n != 1 {
				t.Errorf("a became MASTER %d times, want 1 (b is master, a has no preempt)", n)
			}
		})
	}
}

// TestKeepalivedDoesNotDisturb: keepalived VRRP routers (VRRPv3 and
// VRRPv2, VRID = our vhid) on the same bridge change nothing in a carpd
// group: no transitions over several advert intervals, VRRP counted apart,
// no authentication failures.
func TestKeepalivedDoesNotDisturb(t *testing.T) {
	t.Parallel()
	// One keepalived per version and test: two VRRP routers with the same
	// VRID would elect one master between themselves, and the other would
	// fall silent.
	for _, k := range []struct{ version, auth string }{
		{"3", ""},
		{"2", "authentication {\n    auth_type PASS\n    auth_pass secret\n  }"},
	} {
		t.Run("VRRPv"+k.version, func(t *testing.T) {
			t.Parallel()
			netns.RequireBinary(t, "keepalived")
			tb := newTestbed(t, "a", "b", "k")
			a, b := tb.startPair("a", "b", tb.carpdFn(false), tb.carpdFn(false))
			before := tb.eventLines()

			conf := filepath.Join(tb.dir, "keepalived.conf")
			err := os.WriteFile(conf, []byte(fmt.Sprintf(`global_defs {
  router_id gocarp-carpd
}
vrrp_instance v {
  version %s
  state BACKUP
  interface eth0
  virtual_router_id %s
  priority 100
  advert_int 1
  %s
  virtual_ipaddress {
    10.78.0.201/24
  }
}
`, k.version, testVHID, k.auth)), 0o644)
			if err != nil {
				t.Fatal(err)
			}
			pid, vrrpPid := filepath.Join(tb.dir, "keepalived.pid"), filepath.Join(tb.dir, "vrrp.pid")
			p := tb.nodes["k"].ns.Start("keepalived", "-n", "-l", "-D", "-P", "-f", conf, "-p", pid, "-r", vrrpPid)
			// Kill the parent and the VRRP child (docs/interop.md, "keepalived's two processes"); runs
			// before the namespace's cleanup kills the process group.
			t.Cleanup(func() {
				for _, f := range []string{vrrpPid, pid} {
					if b, err := os.ReadFile(f); err == nil {
						if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
							syscall.Kill(n, syscall.SIGKILL)
						}
					}
				}
			})
			if _, _, err := p.WaitLine(0, "Entering MASTER STATE", stateTimeout); err != nil {
				t.Fatal(err)
			}
			// keepalived is master: watch two of its adverts and four of
			// carpd's advert intervals (more than b's master-down interval).
			// Measured here: keepalived 2.2.7 as master sent only about one
			// advert every 3-4 s while carpd advertised on the same group
			// (7 in 25 s), so the test waits for two, not one per second.
			tb.obs.waitVRRP(t, tb.nodes["k"].ip, 2)
			tb.obs.waitAdverts(t, tb.nodes["a"].ip, 4)
			if after := tb.eventLines(); !slices.Equal(before, after) {
				t.Errorf("events changed while keepalived ran: before %q, after %q", before, after)
			}
			for name, p := range map[string]*netns.Process{"a": a, "b": b} {
				s := stats(t, p)
				if atoi(t, s, "vrrp") < 2 || atoi(t, s, "badauth") != 0 || atoi(t, s, "badlen") != 0 || atoi(t, s, "badver") != 0 {
					t.Errorf("%s stats %v: want vrrp >= 2 and no badauth, badlen, badver", name, s)
				}
			}
		})
	}
}

// TestBowOut: SIGTERM makes a carpd master send a bow-out advert, and the
// backup takes over because of it ("bow-out received"), not because its
// master-down timer expired. With --shutdown the old master runs its
// downscript and exits 0 after logging its counters.
func TestBowOut(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	a, b := tb.startPair("a", "b", tb.carpdFn(false, "-z"), tb.carpdFn(false))
	from, bFrom := len(tb.eventLines()), b.Len()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	tb.waitEvent(from, "b up")
	tb.waitEvent(from, "a down")
	line, _, err := b.WaitLine(bFrom, "state=MASTER", stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if f := parseFields(line); !strings.Contains(line, `reason="bow-out received"`) {
		t.Errorf("b became MASTER with %v, want reason \"bow-out received\": %s", f["reason"], line)
	}
	select {
	case <-a.Done():
	case <-time.After(stateTimeout):
		t.Fatal("a did not exit after SIGTERM")
	}
	if err := a.Err(); err != nil {
		t.Errorf("a exited with %v, want status 0", err)
	}
	if a.Count(0, `msg="final status"`) != 1 {
		t.Errorf("a did not log its final counters")
	}
}

// TestStepDown: SIGUSR2 makes the master step down with a bow-out; the
// backup becomes MASTER on it, without waiting for its master-down
// interval; when the pause is over the first node, which has preempt and
// the lower skew, takes over again.
func TestStepDown(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	a, b := tb.startPair("a", "b", tb.carpdFn(false, "-P"), tb.carpdFn(false))
	from, bFrom := len(tb.eventLines()), b.Len()
	if err := a.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// b takes over as a leaves, so their scripts may run in either order.
	i := max(tb.waitEvent(from, "a down"), tb.waitEvent(from, "b up"))
	if _, _, err := b.WaitLine(bFrom, `reason="bow-out received"`, stateTimeout); err != nil {
		t.Fatal(err)
	}
	// a's preempting advert makes b yield before a's own hook runs, so the
	// two scripts of the handover back may run in either order.
	tb.waitEvent(i+1, "a up")
	tb.waitEvent(i+1, "b down")
	if _, _, err := a.WaitLine(0, `reason="preempting a slower master"`, stateTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestDualStackVirtualMAC: two carpd with an IPv4 and an IPv6 address,
// --vmac and --manage-vip: the master carries both addresses on the
// macvlan "carp1" with the virtual MAC 00:00:5e:00:01:01 (no scripts
// involved), the backup carries none, and they move when the master is
// killed. It exercises the IPv6 transport and adverts (the backup would
// take over if it missed them: the HMAC covers both addresses).
func TestDualStackVirtualMAC(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	vip6 := netip.MustParseAddr("fd78::254")
	flags := []string{"-a", vip6.String(), "--vmac"}
	a, b := tb.startPair("a", "b", tb.carpdFn(false, flags...), tb.carpdFn(false, flags...))
	has := func(name string) [2]bool {
		if strings.Contains(tb.nodes[name].ns.IP("link", "show", "dev", "carp1"), "00:00:5e:00:01:01") != true {
			t.Fatalf("%s: carp1 has not the virtual MAC", name)
		}
		return [2]bool{tb.hasAddr(name, "carp1", testVIP), tb.hasAddr(name, "carp1", vip6)}
	}
	waitHas := func(name string, want [2]bool) {
		t.Helper()
		deadline := time.Now().Add(stateTimeout)
		for has(name) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: VIPs (v4, v6) on carp1 = %v, want %v", name, has(name), want)
			}
			time.Sleep(pollEvery)
		}
	}
	waitHas("a", [2]bool{true, true})
	if got := has("b"); got != [2]bool{} {
		t.Errorf("backup b carries VIPs %v", got)
	}
	if tb.hasVIP("a") {
		t.Error("a has the VIP on eth0 as well as on carp1")
	}
	s := stats(t, b)
	if atoi(t, s, "ipackets6") == 0 || atoi(t, s, "ipackets") == 0 {
		t.Errorf("backup stats %v: want adverts of both families", s)
	}
	from := len(tb.eventLines())
	kill(t, a)
	tb.waitEvent(from, "b up")
	waitHas("b", [2]bool{true, true})
}

// TestUnicastPeers: with --peer the group works without multicast: the
// backup hears the master's unicast adverts (it stays BACKUP) and takes
// over when the master dies.
func TestUnicastPeers(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	peerOf := map[string]string{"a": tb.nodes["b"].ip.String(), "b": tb.nodes["a"].ip.String()}
	start := func(name string, extra ...string) *netns.Process {
		return tb.carpd(name, false, append([]string{"--peer", peerOf[name]}, extra...)...)
	}
	m := start("a", "-k", "0")
	tb.waitEvent(0, "a up")
	from := len(tb.eventLines())
	b := start("b", "-k", "100")
	tb.waitEvent(from, "b down")
	// The observer sees no multicast adverts of a; wait for b's counter.
	deadline := time.Now().Add(stateTimeout)
	for atoi(t, stats(t, b), "ipackets") < 5 {
		if time.Now().After(deadline) {
			t.Fatal("b did not receive 5 unicast adverts")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := tb.countEvent("b up"); n != 0 {
		t.Fatalf("b became MASTER %d times while a was alive", n)
	}
	kill(t, m)
	tb.waitEvent(from, "b up")
}

// TestDemoteFile: writing a demotion into --demote-file hands mastership
// to the peer (a more demoted master is preempted even without --preempt);
// removing the file brings it back (with --preempt).
func TestDemoteFile(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	file := filepath.Join(tb.dir, "demote")
	tb.startPair("a", "b", tb.carpdFn(false, "-P", "--demote-file", file), tb.carpdFn(false))
	from := len(tb.eventLines())
	if err := os.WriteFile(file, []byte("50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	i := tb.waitEvent(from, "b up")
	tb.waitEvent(from, "a down")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	tb.waitEvent(i+1, "a up")
	tb.waitEvent(i+1, "b down")
}

// TestLinkTracking: when the master's carrier goes away it leaves MASTER
// (downscript, reason "link down") without waiting for anything, and the
// backup takes over; with --ignoreifstate it stays MASTER (ucarp -S, for
// crossover cables whose carrier flaps).
func TestLinkTracking(t *testing.T) {
	t.Parallel()
	for _, ignore := range []bool{false, true} {
		name := "tracked"
		if ignore {
			name = "ignoreifstate"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tb := newTestbed(t, "a", "b")
			var flags []string
			if ignore {
				flags = []string{"-S"}
			}
			a, _ := tb.startPair("a", "b", tb.carpdFn(false, flags...), tb.carpdFn(false))
			from, aFrom := len(tb.eventLines()), a.Len()
			tb.tp.Switch().SetLink(tb.nodes["a"].port, false)
			tb.waitEvent(from, "b up") // b no longer hears a, either way
			if ignore {
				if n := tb.countEvent("a down"); n != 1 { // start-up only
					t.Errorf("a ran its downscript %d times, want 1 (start-up): -S ignores the link", n)
				}
				return
			}
			tb.waitEvent(from, "a down")
			if _, _, err := a.WaitLine(aFrom, `reason="link down"`, stateTimeout); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBadFlagsExit2: the binary rejects a bad value with exit status 2 and
// a message naming the flag and the allowed values.
func TestBadFlagsExit2(t *testing.T) {
	netns.Require(t)
	out, err := exec.Command(carpdBin, "-i", "eth0", "-v", "1", "-p", "x", "-a", "10.0.0.1", "--advskew", "300").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("carpd --advskew 300: %v, want exit status 2; output %s", err, out)
	}
	if want := "carpd: --advskew 300 out of range 0-254\n"; !strings.HasPrefix(string(out), want) {
		t.Errorf("output %q, want it to start with %q", out, want)
	}
}

// hangScript writes a script that records "<xparam> <kind>" in the events
// file once it has started a child, writes "<its pid> <child pid>" to the
// file it returns, and then waits for the child (sleep 1000): an up- or
// downscript stuck on a command that never returns. The script's pid is
// its process group (carpd starts each script in its own group).
func (tb *testbed) hangScript(kind string) (script, pids string) {
	tb.t.Helper()
	script = filepath.Join(tb.dir, "hang-"+kind+".sh")
	pids = filepath.Join(tb.dir, "hang-"+kind+".pids")
	body := "sleep 1000 &\necho \"$$ $!\" > " + pids + "\necho \"$3 " + kind + "\" >> " + tb.events + "\nwait\n"
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		tb.t.Fatal(err)
	}
	return script, pids
}

// scriptGroup reads the pids hangScript wrote and makes sure the test
// leaves none of them behind, whatever carpd does.
func scriptGroup(t *testing.T, pidsFile string) (leader, child int) {
	t.Helper()
	b, err := os.ReadFile(pidsFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(b), &leader, &child); err != nil {
		t.Fatalf("%s: %q: %v", pidsFile, b, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-leader, syscall.SIGKILL)
		syscall.Kill(child, syscall.SIGKILL)
	})
	return leader, child
}

// waitExit waits for a carpd to exit after a terminating signal and checks
// its status (0) and its final status line, which it returns.
func waitExit(t *testing.T, p *netns.Process, sig syscall.Signal) map[string]string {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(stateTimeout):
		t.Fatalf("%s did not exit within %v of %v", p.Name, stateTimeout, sig)
	}
	if err := p.Err(); err != nil {
		t.Errorf("%s exited with %v after %v, want status 0", p.Name, err, sig)
	}
	line, _, err := p.WaitLine(0, `msg="final status"`, 0)
	if err != nil {
		return nil
	}
	return parseFields(line)
}

// checkBowOut checks that b took over because of a's bow-out advert.
func checkBowOut(t *testing.T, b *netns.Process, from int) {
	t.Helper()
	line, _, err := b.WaitLine(from, "state=MASTER", stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, `reason="bow-out received"`) {
		t.Errorf("b became MASTER with %v, want reason \"bow-out received\": %s", parseFields(line)["reason"], line)
	}
}

// TestShutdownWhileUpscriptHangs: SIGTERM ends a MASTER whose upscript
// never returns: it sends its bow-out (the backup takes over because of
// it), kills the script's whole process group, counts the kill and exits
// 0. carpd used to wait for the script for ever.
func TestShutdownWhileUpscriptHangs(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	hang, pids := tb.hangScript("up")
	_, down := tb.scripts(false)
	n := tb.nodes["a"]
	a := n.ns.Start(carpdBin, "-i", "eth0", "-s", n.ip.String(), "-v", testVHID, "-p", testPass,
		"-a", testVIP.String(), "-u", hang, "-d", down, "-x", "a", "-k", "0")
	tb.waitEvent(0, "a up")
	leader, child := scriptGroup(t, pids)
	from := len(tb.eventLines())
	b := tb.carpd("b", false, "-k", "100")
	tb.waitEvent(from, "b down")
	tb.obs.waitAdverts(t, n.ip, 3) // a advertises while its upscript hangs

	bFrom := b.Len()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	final := waitExit(t, a, syscall.SIGTERM)
	checkBowOut(t, b, bFrom)
	for _, pid := range []int{leader, child} {
		if !exited(t, pid, stateTimeout) {
			t.Errorf("process %d of the upscript's group survived carpd", pid)
		}
	}
	if final["script_kills"] != "1" {
		t.Errorf("final status %v, want script_kills=1", final)
	}
}

// TestShutdownWhileStartupScriptHangs: SIGINT and SIGTERM end carpd while
// its start-up downscript hangs, killing the script's process group. carpd
// used to ignore both signals until the script returned.
func TestShutdownWhileStartupScriptHangs(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			tb := newTestbed(t, "a")
			up, _ := tb.scripts(false)
			hang, pids := tb.hangScript("down")
			n := tb.nodes["a"]
			a := n.ns.Start(carpdBin, "-i", "eth0", "-s", n.ip.String(), "-v", testVHID, "-p", testPass,
				"-a", testVIP.String(), "-u", up, "-d", hang, "-x", "a")
			tb.waitEvent(0, "a down")
			leader, child := scriptGroup(t, pids)
			if err := a.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waitExit(t, a, sig)
			for _, pid := range []int{leader, child} {
				if !exited(t, pid, stateTimeout) {
					t.Errorf("process %d of the start-up script's group survived carpd", pid)
				}
			}
			if a.Count(0, "carpd: started") != 0 || tb.countEvent("a up") != 0 {
				t.Errorf("carpd went on starting after %v", sig)
			}
		})
	}
}

// TestShutdownScript: with --shutdown, a downscript that hangs at exit is
// killed with its process group after --script-timeout, or at once on a
// second signal, and counted; carpd exits 0 after its bow-out.
func TestShutdownScript(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		timeout   string
		second    bool   // send a second SIGTERM once the downscript runs
		wantCount string // final status counter that must be 1
	}{
		{"timeout", "500ms", false, "script_timeouts"},
		{"second signal", "1h", true, "script_kills"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := newTestbed(t, "a", "b")
			up, _ := tb.scripts(false)
			hang, pids := tb.hangScript("down")
			n := tb.nodes["a"]
			a := n.ns.Start(carpdBin, "-i", "eth0", "-s", n.ip.String(), "-v", testVHID, "-p", testPass,
				"-a", testVIP.String(), "-u", up, "-d", hang, "-x", "a", "-k", "0", "-z", "-n", "--script-timeout", tt.timeout)
			tb.waitEvent(0, "a up")
			from := len(tb.eventLines())
			b := tb.carpd("b", false, "-k", "100")
			tb.waitEvent(from, "b down")
			tb.obs.waitAdverts(t, n.ip, 3)

			bFrom := b.Len()
			if err := a.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			tb.waitEvent(from, "a down")
			leader, child := scriptGroup(t, pids)
			if tt.second {
				if err := a.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			final := waitExit(t, a, syscall.SIGTERM)
			checkBowOut(t, b, bFrom)
			for _, pid := range []int{leader, child} {
				if !exited(t, pid, stateTimeout) {
					t.Errorf("process %d of the downscript's group survived", pid)
				}
			}
			if final[tt.wantCount] != "1" {
				t.Errorf("final status %v, want %s=1", final, tt.wantCount)
			}
		})
	}
}

// TestShutdownWithDemoteFIFO: a demote file replaced by a FIFO is refused
// (and logged), and SIGTERM still ends a MASTER with a bow-out. carpd used
// to block reading the FIFO, and its shutdown waited for that read.
func TestShutdownWithDemoteFIFO(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	file := filepath.Join(tb.dir, "demote")
	a, b := tb.startPair("a", "b", tb.carpdFn(false, "--demote-file", file), tb.carpdFn(false))
	aFrom := a.Len()
	if err := syscall.Mkfifo(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.WaitLine(aFrom, "a FIFO, want a regular file", stateTimeout); err != nil {
		t.Fatal(err)
	}
	bFrom := b.Len()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, a, syscall.SIGTERM)
	checkBowOut(t, b, bFrom)
}

// TestReload: SIGHUP re-reads the password file and the demotion file at
// once, and carpd keeps running. A peer that has only the new password
// first hears the master's adverts under the old one (the master keeps
// sending it for the rollover window) and takes over for want of them;
// once the master signs with the new password the peer accepts it and
// yields. A demotion written to the file is applied while SIGHUP is
// handled, not at the next poll, and hands the group over.
func TestReload(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	passfile, demote := filepath.Join(tb.dir, "pass"), filepath.Join(tb.dir, "demote")
	if err := os.WriteFile(passfile, []byte(testPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := tb.carpd("a", false, "-o", passfile, "--demote-file", demote, "-k", "0")
	tb.waitEvent(0, "a up")

	if err := os.WriteFile(passfile, []byte("renewed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	from := a.Len()
	if err := a.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, _, err := a.WaitLine(from, `msg="carpd: reloaded"`, stateTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "password_changed=true") {
		t.Fatalf("reload did not take the new password: %s", line)
	}
	ev := len(tb.eventLines())
	b := tb.carpd("b", false, "-p", "renewed", "-k", "100")
	i := tb.waitEvent(ev, "b up") // a's adverts still carry the old password
	// Once a signs with the new password (within the rollover window of
	// 10 s), b accepts its adverts and yields to the faster master.
	tb.waitEvent(i+1, "b down")
	if s := stats(t, a); s["state"] != "MASTER" {
		t.Errorf("a: state %s after the password change, want MASTER", s["state"])
	}

	// The demotion file, applied by SIGHUP: its line comes between the
	// start and the end of the reload. Should the once-a-second poll read
	// the file between the write and the signal, the value is changed
	// again and the signal sent again.
	ev = len(tb.eventLines())
	for n := 50; ; n++ {
		if n == 55 {
			t.Fatal("the demotion file was never applied by SIGHUP")
		}
		from = a.Len()
		if err := os.WriteFile(demote, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := a.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		_, hup, err := a.WaitLine(from, `msg="carpd: SIGHUP: re-reading files"`, stateTimeout)
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := a.WaitLine(hup, `msg="carpd: reloaded"`, stateTimeout)
		if err != nil {
			t.Fatal(err)
		}
		_, applied, err := a.WaitLine(from, `msg="carpd: demotion from file"`, stateTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if hup < applied && applied < done {
			break
		}
	}
	tb.waitEvent(ev, "b up")
	tb.waitEvent(ev, "a down")
	select {
	case <-a.Done():
		t.Fatalf("a exited after SIGHUP: %v", a.Err())
	default:
	}
	if s := stats(t, b); atoi(t, s, "badauth") == 0 {
		t.Errorf("b: badauth 0; want the adverts a signed with the old password counted")
	}
}

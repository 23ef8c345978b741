package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
)

// blockedPort is the server port the replicated ruleset closes to new
// connections (a listener answers there, so a refused connection can only
// be the firewall's doing); fwbench.EchoPort stays open.
const (
	blockedPort = 8081
	laterPort   = 8082 // closed by the ruleset fw1 has when it returns
)

// rulesetChanges is how many reloads TestFirewallSync times (p50 and max
// of reload on fw1 -> version in force on fw2); FWPAIR_E2E_RULESET_CHANGES
// sets it (BENCHMARKS.md uses 20).
func rulesetChanges(t *testing.T) int {
	if s := os.Getenv("FWPAIR_E2E_RULESET_CHANGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			t.Fatalf("FWPAIR_E2E_RULESET_CHANGES=%q: want an integer 1-1000", s)
		}
		return n
	}
	return 3
}

func rejectNew(port int) string {
	return fmt.Sprintf("tcp dport %d ct state new counter reject with tcp reset", port)
}

// document returns the status of document name, failing the test if there
// is none.
func document(t *testing.T, st *Status, name string) DocumentStatus {
	t.Helper()
	for _, d := range st.Documents {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no document %q in the status of node %d: %+v", name, st.Node, st.Documents)
	return DocumentStatus{}
}

func docVersion(st *Status, name string) uint64 {
	for _, d := range st.Documents {
		if d.Name == name {
			return d.Version
		}
	}
	return 0
}

// dialFrom opens a TCP connection from ns to addr:port and closes it.
func dialFrom(ns *netns.NS, addr netip.Addr, port int) error {
	return ns.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), 3*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// listenOn accepts TCP connections on the server's port until the test
// ends.
func listenOn(t *testing.T, ns *netns.NS, addr netip.Addr, port int) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// wantPorts checks what a new connection from the client to the server
// meets: refused on each port of refused, accepted on fwbench.EchoPort.
func wantPorts(t *testing.T, p *pair, phase string, refused ...int) {
	t.Helper()
	for _, port := range []int{blockedPort, laterPort} {
		err := dialFrom(p.Client, fwbench.ServerAddr, port)
		switch want := slices.Contains(refused, port); {
		case want && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%s: new connection to port %d: %v, want it refused", phase, port, err)
		case !want && err != nil:
			t.Errorf("%s: new connection to port %d: %v, want it accepted", phase, port, err)
		}
	}
	if err := dialFrom(p.Client, fwbench.ServerAddr, fwbench.EchoPort); err != nil {
		t.Errorf("%s: new connection to port %d: %v, want it accepted", phase, fwbench.EchoPort, err)
	}
}

// fwRules returns firewall i's table inet fw as nft lists it.
func fwRules(p *pair, i int) string {
	out, err := p.FW[i].Output("nft", "list", "table", "inet", "fw")
	if err != nil {
		return "error: " + err.Error()
	}
	return out
}

// TestFirewallSync is the end-to-end test of the firewall section: fw1
// publishes the ruleset (the lab's, with its source NAT to the WAN virtual
// address), fw2 subscribes; neither has the table before fwpair starts.
//
//   - the flows through both groups run on fw1, NATed by the replicated
//     ruleset, and fw2 has applied the same version;
//   - reload: a rule refusing new connections to one server port is added
//     on fw1 and reloaded; fw2 has it in force within a second (each of
//     FWPAIR_E2E_RULESET_CHANGES reloads is timed);
//   - kill: fw1 is killed; on fw2 the established flows survive, new
//     connections to the port are refused, others accepted;
//   - return: fw1's file changes while it is down, and fw1 comes back
//     from a reboot (no ruleset in its kernel): the file as it is at the
//     restart wins, under a higher version, and fw2 applies it;
//   - broken: a ruleset nft refuses is refused by fw1's reload, never
//     published: fw2 keeps the last good version.
func TestFirewallSync(t *testing.T) {
	var opts [3]fwbench.FwpairOptions
	p := newPair(t, "gfw", opts) // configs are rewritten below, with the firewall section
	rules := filepath.Join(p.Dir, "ruleset.nft")
	writeRules := func(extra ...string) {
		t.Helper()
		if err := os.WriteFile(rules, []byte(fwbench.OwnedRuleset(extra...)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRules()
	// A file rides along: fw1 publishes its copy, fw2 replaces its own
	// and runs the apply command, which records the version it was given.
	var motd, applied [3]string
	for i := 1; i <= 2; i++ {
		motd[i] = filepath.Join(p.Dir, fmt.Sprintf("motd%d", i))
		applied[i] = filepath.Join(p.Dir, fmt.Sprintf("applied%d", i))
	}
	if err := os.WriteFile(motd[1], []byte("replicated\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := func(i int, role string) []any {
		return []any{map[string]any{"name": "motd", "path": motd[i], "sync": role,
			"apply": []string{"/bin/sh", "-c", `echo "$FWPAIR_VERSION" > ` + applied[i]}}}
	}
	opts[1] = fwbench.FwpairOptions{StartAsMaster: true, Extra: map[string]any{
		"firewall": map[string]any{"ruleset": rules, "sync": "publish"}, "files": file(1, "publish")}}
	opts[2] = fwbench.FwpairOptions{Extra: map[string]any{
		"firewall": map[string]any{"sync": "subscribe"}, "files": file(2, "subscribe")}}
	for i := 1; i <= 2; i++ {
		p.cfg[i], p.sock[i] = p.FwpairConfig(i, opts[i])
		p.FW[i].Run("nft", "delete", "table", "inet", "fw") // the lab's; fwpair installs its own
	}
	listenOn(t, p.Server, fwbench.ServerAddr, blockedPort)
	listenOn(t, p.Server, fwbench.ServerAddr, laterPort)

	p.start(1)
	st1 := p.wait(1, "fw1 MASTER of both groups", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	v1 := document(t, st1, firewallDoc).Version
	if v1 == 0 {
		t.Fatalf("fw1 publishes no firewall version: %+v", st1.Documents)
	}
	p.start(2)
	p.wait(2, "fw2 BACKUP, in sync, ruleset applied", 20*time.Second, func(s *Status) bool {
		return allIn(s, "BACKUP") && s.Sync.BulkDone && maxDemotion(s) == 0 && docVersion(s, firewallDoc) == v1
	})
	p.wait(1, "fw1 sees fw2's ruleset version", 10*time.Second, func(s *Status) bool {
		d := document(t, s, firewallDoc)
		return len(d.Peers) == 1 && d.Peers[0].Node == 2 && d.Peers[0].Applied == v1
	})
	if r := fwRules(p, 2); !strings.Contains(r, "snat ip to "+fwbench.WANVIP.String()) {
		t.Fatalf("fw2's table inet fw lacks the source NAT of the replicated ruleset:\n%s", r)
	}
	mv := document(t, p.status(1), "motd").Version
	p.wait(2, "fw2 applies the file", 10*time.Second, func(s *Status) bool { return docVersion(s, "motd") == mv })
	if b, err := os.ReadFile(motd[2]); err != nil || string(b) != "replicated\n" {
		t.Errorf("fw2's file holds %q, %v; want fw1's", b, err)
	}
	if b, err := os.ReadFile(applied[2]); err != nil || strings.TrimSpace(string(b)) != strconv.FormatUint(mv, 10) {
		t.Errorf("fw2's apply command recorded %q, %v; want version %d", b, err, mv)
	}

	const nTCP, nUDP = 100, 10
	fs, _ := startTraffic(t, p, nTCP, nUDP, 0, 0)
	if n := fs.waitRecovered(time.Now(), 30*time.Second); n != nTCP+nUDP {
		t.Fatalf("only %d of %d flows echo through fw1", n, nTCP+nUDP)
	}
	p.wait(2, "every flow replicated to fw2", 20*time.Second, func(s *Status) bool { return s.Sync.Records >= nTCP+nUDP })
	wantPorts(t, p, "before the reload (fw1)")

	var last uint64
	ok := t.Run("reload", func(t *testing.T) {
		n := rulesetChanges(t)
		var took []time.Duration
		for k := range n {
			// The last change is the one that matters: the blocked port.
			// The ones before it add a harmless counter each.
			extra := []string{fmt.Sprintf("tcp dport %d counter", 9000+k)}
			if k == n-1 {
				extra = []string{rejectNew(blockedPort)}
			}
			writeRules(extra...)
			start := time.Now()
			r, err := Request(p.sock[1], reqReload, time.Minute)
			if err != nil {
				t.Fatalf("reload on fw1: %v (reply %+v)", err, r)
			}
			v := docVersion(p.status(1), firewallDoc)
			if v <= v1 || v <= last {
				t.Fatalf("fw1 published version %d after the reload, want it above %d and %d", v, v1, last)
			}
			last = v
			p.waitFast(2, fmt.Sprintf("fw2 applies version %d", v), 10*time.Second, func(s *Status) bool { return docVersion(s, firewallDoc) == v })
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		t.Logf("reload on fw1 -> ruleset in force on fw2, %d changes: p50 %v max %v", n, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		// The contract is "within a second"; the median is held to it, so
		// that one change slowed by a loaded CI machine does not fail the
		// run (the maximum is logged, and measured in BENCHMARKS.md).
		if p50 := took[len(took)/2]; p50 > time.Second {
			t.Errorf("fw2 enforced the changes a median %v after the reload on fw1, want within 1s", p50)
		}
		if r := fwRules(p, 2); !strings.Contains(r, fmt.Sprintf("tcp dport %d", blockedPort)) {
			t.Errorf("fw2's table inet fw lacks the new rule:\n%s", r)
		}
		wantPorts(t, p, "after the reload (fw1)", blockedPort)
	})
	if !ok {
		return
	}

	ok = t.Run("kill", func(t *testing.T) {
		fs.resetPhase()
		killed := p.crash(1)
		p.waitTakeover(t, 2, killed, 0)
		if n := fs.waitRecovered(time.Now(), 60*time.Second); n != nTCP+nUDP {
			t.Errorf("%d of %d established flows recovered on fw2", n, nTCP+nUDP)
		}
		checkFlows(t, "after fw1 was killed", fs)
		wantPorts(t, p, "fw2 forwarding", blockedPort)
		fs.stop(0)
	})
	if !ok {
		return
	}

	ok = t.Run("return", func(t *testing.T) {
		// While fw1 is down its file changes: the port is opened again and
		// another one closed. fw1 reboots (its kernel loses the ruleset).
		writeRules(rejectNew(laterPort))
		p.Reboot(1)
		p.FW[1].Run("nft", "delete", "table", "inet", "fw")
		p.Cut(1, false)
		back := time.Now()
		p.start(1)
		p.waitTakeover(t, 1, back, 0)
		v := docVersion(p.status(1), firewallDoc)
		if v <= last {
			t.Fatalf("fw1 publishes version %d after its restart with a changed file, want above %d", v, last)
		}
		p.wait(2, fmt.Sprintf("fw2 applies fw1's version %d", v), 20*time.Second, func(s *Status) bool { return docVersion(s, firewallDoc) == v })
		r := fwRules(p, 2)
		if !strings.Contains(r, fmt.Sprintf("tcp dport %d", laterPort)) || strings.Contains(r, fmt.Sprintf("tcp dport %d", blockedPort)) {
			t.Errorf("fw2's table inet fw is not fw1's current ruleset:\n%s", r)
		}
		wantPorts(t, p, "fw1 back", laterPort)
		last = v
	})
	if !ok {
		return
	}

	t.Run("broken", func(t *testing.T) {
		writeRules("tcp dport 8083 no-such-statement")
		r, err := Request(p.sock[1], reqReload, time.Minute)
		if err == nil {
			t.Fatalf("fw1 accepted a broken ruleset: %+v", r)
		}
		t.Logf("fw1 refused the reload: %v", err)
		st := p.status(1)
		d := document(t, st, firewallDoc)
		if d.Version != last || !strings.Contains(d.Err, "nft -c") {
			t.Errorf("fw1 after the broken reload: version %d (want %d), error %q (want nft -c's)", d.Version, last, d.Err)
		}
		// fw1 offers its documents every second: two offers later fw2
		// still has the last good version and no failure.
		before := p.status(2).ConfigSync.Received
		p.wait(2, "fw2 hears two more offers", 10*time.Second, func(s *Status) bool { return s.ConfigSync.Received >= before+2 })
		d2 := document(t, p.status(2), firewallDoc)
		if d2.Version != last || d2.Failed != 0 || d2.Offered != last {
			t.Errorf("fw2 after fw1's broken reload: version %d, failed %d, offered %d; want %d, 0, %d", d2.Version, d2.Failed, d2.Offered, last, last)
		}
		if r := fwRules(p, 2); !strings.Contains(r, fmt.Sprintf("tcp dport %d", laterPort)) {
			t.Errorf("fw2 lost the last good ruleset:\n%s", r)
		}
	})
}

// waitFast is wait polling every 5 ms: the reload timing reads the status
// at that resolution.
func (p *pair) waitFast(i int, what string, timeout time.Duration, cond func(*Status) bool) *Status {
	p.T.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if st, err := QueryStatus(p.sock[i], 5*time.Second); err == nil && cond(st) {
			return st
		}
		<-tick.C
	}
	p.T.Fatalf("fw%d: %s: not reached within %v", i, what, timeout)
	return nil
}

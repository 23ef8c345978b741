package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/google/go-cmp/cmp"
)

// The lab's boot gate (what Lab.Reboot and the chaos soak load, as a boot
// ruleset would) is the table fwpair manages.
func TestGateRulesetIsTheLabs(t *testing.T) {
	if diff := cmp.Diff(GateRuleset([]string{fwbench.LANIf, fwbench.WANIf}), fwbench.GateRuleset()); diff != "" {
		t.Errorf("fwbench.GateRuleset differs from fwpair's (-fwpair +fwbench):\n%s", diff)
	}
}

// gateProbePort is the UDP port of the probes sent through a firewall.
const gateProbePort = 7999

// gateTableClosed reports whether firewall i's kernel holds the gate's
// table (the gate is closed).
func (p *pair) gateTableClosed(i int) bool {
	_, err := p.FW[i].Output("nft", "list", "table", "inet", "fwpair_gate")
	return err == nil
}

// gateDrops returns the packets firewall i's closed gate dropped, or -1
// when there is no gate table.
func (p *pair) gateDrops(i int) int {
	out, err := p.FW[i].Output("nft", "list", "table", "inet", "fwpair_gate")
	if err != nil {
		return -1
	}
	_, rest, ok := strings.Cut(out, "counter packets ")
	if !ok {
		p.T.Fatalf("fw%d: no counter in the gate: %q", i, out)
	}
	var n int
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// listenProbe opens a UDP socket on addr:gateProbePort in ns.
func listenProbe(t *testing.T, ns *netns.NS, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, gateProbePort)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendProbe sends one datagram from ns to dst:gateProbePort.
func sendProbe(t *testing.T, ns *netns.NS, dst netip.Addr, msg string) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, gateProbePort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(msg))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readProbe returns the next datagram on c, waiting at most wait ("" on
// timeout; wait 0 reads only what has arrived already).
func readProbe(t *testing.T, c *net.UDPConn, wait time.Duration) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, err := c.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// A node that joins a running pair keeps the gate closed until its bulk
// sync is complete: a datagram the client sends through it is dropped,
// and forwarded once it is in sync.
func TestGateJoin(t *testing.T) {
	// fw1 sends its bulk slowly, so that fw2 stays out of sync long
	// enough to be probed.
	p := newPair(t, "ggj", [3]fwbench.FwpairOptions{1: {StartAsMaster: true, BulkRate: 40}, 2: {}})
	p.start(1)
	p.wait(1, "fw1 MASTER of both groups", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	const entries = 4000
	p.InjectEstablished(1, entries)
	p.wait(1, "fw1's engine holds the injected entries", 60*time.Second, func(s *Status) bool { return s.Sync.LocalRecords >= entries })

	srv := listenProbe(t, p.Server, fwbench.ServerAddr)
	// The client reaches the server through fw2 (fw1 holds the VIPs).
	p.Client.IP("route", "add", netip.PrefixFrom(fwbench.ServerAddr, 32).String(), "via", fwbench.FWAddr(2, "lan").String())

	p.start(2)
	st := p.wait(2, "fw2 hears fw1, its bulk sync running", 30*time.Second, func(s *Status) bool {
		return s.Sync.PeersUp == 1 && !s.Sync.BulkDone
	})
	if st.Forwarding.State != "closed" || !p.gateTableClosed(2) {
		t.Fatalf("fw2 out of sync with its gate %+v (table present: %v), want closed", st.Forwarding, p.gateTableClosed(2))
	}
	before := p.gateDrops(2)
	sendProbe(t, p.Client, fwbench.ServerAddr, "while closed")
	if !fwbench.Poll(10*time.Second, func() bool { return p.gateDrops(2) > before }) {
		t.Fatalf("fw2's gate did not drop the probe (drops %d)", p.gateDrops(2))
	}
	if st := p.status(2); st.Sync.BulkDone {
		t.Fatal("fw2's bulk sync ended before the probe: the test saw nothing (slow the bulk further)")
	}
	if got := readProbe(t, srv, 0); got != "" {
		t.Errorf("the server received %q while fw2's gate was closed", got)
	}

	var early []string
	st = p.wait(2, "fw2 in sync, gate open", 120*time.Second, func(s *Status) bool {
		if !s.Sync.BulkDone && s.Forwarding.State != "closed" {
			early = append(early, s.Forwarding.State)
		}
		return s.Sync.BulkDone && s.Forwarding.State == "open"
	})
	if len(early) > 0 {
		t.Errorf("fw2's gate was %v before its bulk sync was complete", early)
	}
	if st.Forwarding.Reason != gateReasonBulk || !allIn(st, "BACKUP") {
		t.Errorf("fw2 opened its gate as %v for %q, want BACKUP for %q", st.Groups, st.Forwarding.Reason, gateReasonBulk)
	}
	if p.gateTableClosed(2) {
		t.Error("fw2's gate is open in its status but its table is still there")
	}
	sendProbe(t, p.Client, fwbench.ServerAddr, "after sync")
	if got := readProbe(t, srv, 10*time.Second); got != "after sync" {
		t.Errorf("the server received %q through fw2 in sync, want %q", got, "after sync")
	}
}

// A node that hears no peer opens its gate at the end of the discovery
// window, as the founder, before CARP makes it MASTER; it keeps the gate
// open after.
func TestGateFounder(t *testing.T) {
	p := newPair(t, "ggf", [3]fwbench.FwpairOptions{}) // fw1 alone, not start_as_master: BACKUP for a master-down interval
	p.start(1)
	st := p.wait(1, "fw1's gate open", 20*time.Second, func(s *Status) bool { return s.Forwarding.State == "open" })
	if st.Forwarding.Reason != gateReasonFounder || !st.Sync.BulkDone || st.Sync.PeersUp != 0 {
		t.Errorf("fw1 alone opened its gate for %q (sync %+v), want %q", st.Forwarding.Reason, st.Sync, gateReasonFounder)
	}
	if p.gateTableClosed(1) {
		t.Error("fw1's gate is open in its status but its table is still there")
	}
	opened := st.Forwarding.OpenedAt
	st = p.wait(1, "fw1 MASTER of both groups", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	if st.Forwarding.State != "open" || st.Forwarding.Reason != gateReasonFounder || !st.Forwarding.OpenedAt.Equal(opened) {
		t.Errorf("fw1's gate after becoming MASTER: %+v, want open since %v for %q", st.Forwarding, opened, gateReasonFounder)
	}
	closedAt, openAt := -1, -1
	for k, line := range p.proc[1].Output() {
		switch {
		case strings.Contains(line, "forwarding gate closed") && closedAt < 0:
			closedAt = k
		case strings.Contains(line, "forwarding gate open") && openAt < 0:
			openAt = k
		}
	}
	if closedAt < 0 || openAt < closedAt {
		t.Errorf("fw1's log: gate closed at line %d, opened at line %d; want closed first", closedAt, openAt)
	}
}

// clientEntries returns the conntrack entries of firewall i that the
// client's flows created (original source the client, either family).
func (p *pair) clientEntries(i int) []string {
	var out []string
	for _, a := range []netip.Addr{fwbench.ClientAddr, fwbench.ClientAddr6} {
		fam := "ipv4"
		if a.Is6() {
			fam = "ipv6"
		}
		s, _ := p.FW[i].Output("conntrack", "-L", "-f", fam, "-s", a.String()) // exit status 1 when none
		for _, line := range strings.Split(s, "\n") {
			if strings.Contains(line, "src="+a.String()) {
				out = append(out, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	return out
}

// The zombie: the master crashes and its links come back before the
// backup's master-down interval. Until the backup takes over, the client
// and the server still send to the rebooted box's MAC; its kernel (empty
// conntrack table, no addresses, fwpair not running, ip_forward on) must
// not forward them: with the gate of its boot ruleset it drops them, where
// it used to forward them late (they waited in its neighbour queue while
// its links came up) and create fresh entries for flows whose state it
// had not synced. The flows see no disorder across the crash, the takeover
// and fw1's return.
func TestGateZombie(t *testing.T) {
	p := newPair(t, "ggz", [3]fwbench.FwpairOptions{1: {StartAsMaster: true}, 2: {}})
	p.start(1)
	p.wait(1, "fw1 MASTER of both groups", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	p.start(2)
	p.wait(2, "fw2 BACKUP, in sync", 20*time.Second, func(s *Status) bool { return allIn(s, "BACKUP") && s.Sync.BulkDone })

	const nTCP, nUDP, nTCP6, nUDP6 = 50, 40, 10, 10
	const nflows = nTCP + nUDP + nTCP6 + nUDP6
	fs, _ := startTraffic(t, p, nTCP, nUDP, nTCP6, nUDP6)
	if n := fs.waitRecovered(time.Now(), 30*time.Second); n != nflows {
		t.Fatalf("only %d of %d flows echo before the crash", n, nflows)
	}
	p.wait(2, "every flow replicated to fw2", 20*time.Second, func(s *Status) bool { return s.Sync.Records >= nflows })
	checkFlows(t, "before the crash", fs)

	fs.resetPhase()
	crashed := p.crash(1)
	p.Reboot(1) // the kernel's state gone; the boot ruleset's gate closed
	p.Cut(1, false)
	if d := time.Since(crashed); d > 2*time.Second {
		t.Fatalf("fw1's links came back %v after the crash: not within fw2's master-down interval", d)
	}
	p.waitTakeover(t, 2, crashed, 0)
	if n := fs.waitRecovered(time.Now(), 60*time.Second); n != nflows {
		t.Errorf("%d of %d flows recovered after fw2 took over", n, nflows)
	}
	// fw1's kernel received traffic until fw2's announcements, and
	// forwarded none of it.
	if e := p.clientEntries(1); len(e) > 0 {
		t.Errorf("rebooted fw1, fwpair not running, forwarded the client's flows: %d conntrack entries, e.g. %q", len(e), e[0])
	}
	if n := p.gateDrops(1); n <= 0 {
		t.Errorf("rebooted fw1's gate dropped %d packets; want some (the clients still sent to it)", n)
	}
	checkFlows(t, "after fw1 crashed and fw2 took over", fs)

	fs.resetPhase()
	back := time.Now()
	p.start(1)
	p.waitTakeover(t, 1, back, 0) // preempts once in sync
	p.wait(2, "fw2 BACKUP", 20*time.Second, func(s *Status) bool { return allIn(s, "BACKUP") })
	if n := fs.waitRecovered(time.Now(), 60*time.Second); n != nflows {
		t.Errorf("%d of %d flows recovered after fw1 returned", n, nflows)
	}
	checkFlows(t, "after fw1 returned", fs)
}

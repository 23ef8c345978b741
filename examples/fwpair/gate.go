package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocarp/gocarp/internal/nft"
	"github.com/gocarp/gocarp/pfsync"
)

// The forwarding gate keeps a node from forwarding traffic on its data
// interfaces (the interfaces of its CARP groups) until its state is in
// sync. fwpair uses the nodes' physical MAC addresses and gratuitous ARP,
// not a virtual MAC: after a crash whose links come back before the peer's
// master-down interval, clients and servers still send to the rebooted box.
// Without the gate its kernel, with an empty conntrack table, forwards them
// (late: they waited in its neighbour queue while its links came up) and
// creates fresh conntrack and NAT entries for flows whose replicated state
// has not arrived yet. See docs/forwarding-gate.md.
//
// The gate is an nftables table of its own, gateTable, with one base
// chain on the forward hook that runs before the appliance's filter chain
// (gatePriority) and drops what enters on a data interface. Closed: the
// table exists with its drop rule; open: the table does not exist. The
// appliance's boot ruleset creates it closed (GateRuleset), so that the
// kernel forwards nothing between boot and the daemon's start.
const (
	gateFamily   = "inet"
	gateTable    = "fwpair_gate"
	gatePriority = "filter - 10"
	// gateTimeout bounds one run of nft: a hung nft must not hang the
	// daemon (or a takeover, which opens the gate).
	gateTimeout = 3 * time.Second
	// gateRetry is the pause between two attempts to open a gate whose nft
	// run failed.
	gateRetry = time.Second
)

// Why the gate opened (GateStatus.Reason).
const (
	gateReasonBulk    = "in sync: bulk sync from every peer up complete"
	gateReasonFounder = "in sync: founder, no peer heard in the discovery window"
	gateReasonMaster  = "became MASTER"
)

// ForwardingConfig is the "forwarding" section of the configuration
// file.
type ForwardingConfig struct {
	// Gate, when true, keeps forwarding on the groups' interfaces closed
	// from start until the node is in sync or MASTER. Absent (nil) means
	// true.
	Gate *bool `json:"gate,omitempty"`
}

// gateOn reports whether the forwarding gate is enabled.
func (f *ForwardingConfig) gateOn() bool { return f.Gate == nil || *f.Gate }

// groupInterfaces returns the interfaces of the groups, in order: the
// data interfaces the forwarding gate closes.
func (c *Config) groupInterfaces() []string {
	var out []string
	for _, g := range c.Groups {
		out = append(out, g.Interface)
	}
	return out
}

// GateRuleset returns the nftables text of the closed gate for the data
// interfaces ifaces: the table fwpair creates when it starts, and the one
// the appliance's boot ruleset must load before the links come up. It
// replaces any earlier version of the table in one transaction (declaring
// the table first makes the delete valid when there is none).
func GateRuleset(ifaces []string) string {
	q := make([]string, len(ifaces))
	for i, n := range ifaces {
		q[i] = strconv.Quote(n)
	}
	return fmt.Sprintf(`table %[1]s %[2]s
delete table %[1]s %[2]s
table %[1]s %[2]s {
	chain forward {
		type filter hook forward priority %[3]s; policy accept;
		iifname { %[4]s } counter drop
	}
}
`, gateFamily, gateTable, gatePriority, strings.Join(q, ", "))
}

// gateOpenRuleset deletes the gate's table, if there is one.
func gateOpenRuleset() string {
	return fmt.Sprintf("table %[1]s %[2]s\ndelete table %[1]s %[2]s\n", gateFamily, gateTable)
}

// GateStatus is the state of the forwarding gate in the status.
type GateStatus struct {
	// State is "open", "closed" or "disabled" (forwarding.gate false:
	// fwpair leaves forwarding alone).
	State    string    `json:"state"`
	OpenedAt time.Time `json:"opened_at,omitzero"`
	Reason   string    `json:"reason,omitempty"` // why it opened
	// Err is the latest failure to open it (retried every second), or
	// empty.
	Err string `json:"error,omitempty"`
}

// gate drives the forwarding gate by running nft. It closes once, when
// fwpair starts, and then opens once, for the life of the process: a
// backup in sync forwards stray traffic with its replicated state, and a
// daemon that exits leaves it open (its peer takes over; the kernel keeps
// forwarding with the state it has). A nil *gate is a disabled gate.
type gate struct {
	nft    string // path of the nft binary
	ifaces []string
	log    *slog.Logger
	run    func(ctx context.Context, nft, script string) error // nft.Run; a field for the tests

	runMu sync.Mutex // one nft run at a time: a close never overtakes an open

	mu       sync.Mutex
	open     bool
	openedAt time.Time
	reason   string
	err      error
	retrying bool

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// newGate finds nft and returns a gate for ifaces; it does not touch the
// ruleset.
func newGate(ifaces []string, log *slog.Logger) (*gate, error) {
	path, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("forwarding.gate true needs the nft binary: %w", err)
	}
	return &gate{nft: path, ifaces: append([]string(nil), ifaces...), log: log, run: nft.Run,
		stop: make(chan struct{})}, nil
}

// nftRunLocked runs one script, bounded by gateTimeout (not by the
// caller's context: a takeover whose commit used up its time must still
// open the gate). Called with runMu held.
func (g *gate) nftRunLocked(script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), gateTimeout)
	defer cancel()
	return g.run(ctx, g.nft, script)
}

// Close closes the gate: fwpair calls it when it starts, before anything
// else, whatever state the boot ruleset or an earlier run left (but not
// when another fwpair runs: see checkNotRunning).
func (g *gate) Close() error {
	if g == nil {
		return nil
	}
	g.runMu.Lock()
	defer g.runMu.Unlock()
	if err := g.nftRunLocked(GateRuleset(g.ifaces)); err != nil {
		return fmt.Errorf("forwarding gate: closing on %s: %w", strings.Join(g.ifaces, ", "), err)
	}
	g.log.Info("fwpair: forwarding gate closed until this node is in sync or MASTER", "ifaces", g.ifaces)
	return nil
}

// Open opens the gate for reason, once: later calls return nil at once.
func (g *gate) Open(reason string) error {
	if g == nil {
		return nil
	}
	g.runMu.Lock() // an opening in parallel finishes first
	defer g.runMu.Unlock()
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open {
		return nil
	}
	err := g.nftRunLocked(gateOpenRuleset())
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("forwarding gate: opening (%s): %w", reason, err)
		g.err = err
		return err
	}
	g.open, g.openedAt, g.reason, g.err = true, time.Now(), reason, nil
	g.log.Info("fwpair: forwarding gate open", "reason", reason)
	return nil
}

// OpenAsync opens the gate for reason without blocking the caller (the
// engine's Demoter call): on its own goroutine, retried every gateRetry
// until it succeeds or the gate is stopped.
func (g *gate) OpenAsync(reason string) {
	if g == nil {
		return
	}
	select {
	case <-g.stop:
		return // shut down
	default:
	}
	g.mu.Lock()
	if g.open || g.retrying {
		g.mu.Unlock()
		return
	}
	g.retrying = true
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() { g.mu.Lock(); g.retrying = false; g.mu.Unlock() }()
		for {
			err := g.Open(reason)
			if err == nil {
				return
			}
			g.log.Error("fwpair: forwarding gate still closed; retrying", "retry_in", gateRetry, "err", err)
			t := time.NewTimer(gateRetry)
			select {
			case <-t.C:
			case <-g.stop:
				t.Stop()
				return
			}
		}
	}()
}

// Stop ends the retries and waits for a running nft (at most gateTimeout).
// It leaves the gate as it is.
func (g *gate) Stop() error {
	if g == nil {
		return nil
	}
	g.stopOnce.Do(func() { close(g.stop) })
	g.wg.Wait()
	return nil
}

// Status returns the gate's state.
func (g *gate) Status() GateStatus {
	if g == nil {
		return GateStatus{State: "disabled"}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := GateStatus{State: "closed", OpenedAt: g.openedAt, Reason: g.reason}
	if g.open {
		st.State = "open"
	}
	if g.err != nil {
		st.Err = g.err.Error()
	}
	return st
}

// syncDemoter is the engine's Demoter: it passes every demotion on to the
// groups and, when the engine's in-sync demotion changes, opens the gate
// if the engine is in sync.
type syncDemoter struct {
	next pfsync.Demoter
	d    *daemon
}

// SetDemotion implements pfsync.Demoter. The engine calls it without its
// lock held, so reading its Stats here is allowed; opening runs on the
// gate's goroutine, so nft never delays the engine.
func (s syncDemoter) SetDemotion(source string, n int) {
	s.next.SetDemotion(source, n)
	if source != pfsync.DemoteSourceBulk || s.d.gate == nil || s.d.engine == nil {
		return
	}
	if st := s.d.engine.Stats(); st.BulkDone {
		reason := gateReasonBulk
		if st.PeersUp == 0 {
			reason = gateReasonFounder
		}
		s.d.gate.OpenAsync(reason)
	}
}

// openGateAsMaster opens the gate on a takeover, after the commit of the
// replicated state and before the addresses are installed: a MASTER
// forwards whatever happens, in sync or not. A failed nft is retried in
// the background.
func (d *daemon) openGateAsMaster() {
	if err := d.gate.Open(gateReasonMaster); err != nil {
		d.log.Error("fwpair: forwarding gate: MASTER and still closed; retrying", "err", err)
		d.gate.OpenAsync(gateReasonMaster)
	}
}

// checkNotRunning fails if a daemon answers on the control socket at path:
// a second fwpair started by mistake must not close the gate of the node
// the first one runs (listenControlRequests would refuse it, but only after the
// gate is closed).
func checkNotRunning(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil // no socket, a stale one, or not a socket: listenControlRequests decides
	}
	c.Close()
	return fmt.Errorf("control socket %s: another fwpair is running", path)
}

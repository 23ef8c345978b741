package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	nftrun "github.com/gocarp/gocarp/internal/nft"
)

// NoAccept is VRRPv3's Accept_Mode False (RFC 5798 section 6.1) on Linux,
// done the way keepalived's "no_accept" does it: the master still installs
// the virtual addresses (so the kernel answers ARP and Neighbor
// Solicitations for them, forwards traffic sent to the virtual router and
// sources nothing unusual), but packets addressed to them are dropped
// before local delivery. A non-owner master then routes for the virtual
// router without offering services on its addresses, as the RFC asks by
// default. ICMPv6 Neighbor Solicitations and Advertisements addressed to a
// virtual IPv6 address pass: unicast neighbour-unreachability probes are
// sent to the address itself, and dropping them would make neighbours
// forget the master. ARP is not IP and never reaches the rule.
//
// keepalived's default is accept mode on (unless vrrp_strict), and the
// address owner (priority 255) always accepts; so is this package's: an
// embedder that wants no_accept creates a NoAccept, an owner never does.
// CARP has no accept mode: BSD carp(4) masters accept.
//
// The rule lives in an nftables table of its own (NoAcceptConfig.Table),
// an input-hook chain that runs before the host's filter chains, so it
// neither depends on nor disturbs the host's ruleset. It drops only what
// would be delivered locally, so it is harmless while the node is BACKUP
// (the addresses are not local then): install it once at start-up, before
// the group can become MASTER, and there is no moment at which a fresh
// master accepts. Needs the nft binary and CAP_NET_ADMIN; nft runs in the
// network namespace of the calling thread, so call every method from the
// namespace NewNoAccept ran in (a daemon runs in one).
type NoAccept struct {
	nft   string
	table string
	log   *slog.Logger
	run   func(ctx context.Context, nft, script string) error

	mu     sync.Mutex
	addrs  []netip.Addr
	closed bool
}

// NoAcceptConfig holds the optional settings of a NoAccept. A nil
// *NoAcceptConfig means all defaults.
type NoAcceptConfig struct {
	// Table is the name of the nftables table (family inet). Empty means
	// "gocarp_noaccept_<vhid>". A table of that name is replaced.
	Table string

	// Logger receives a note when the rule is installed or removed. Nil
	// discards.
	Logger *slog.Logger
}

// noAcceptTimeout bounds one run of nft: a hung nft must not hang the
// embedder's start or Close.
const noAcceptTimeout = 5 * time.Second

// NewNoAccept installs the drop rule for addrs (any mix of IPv4 and IPv6;
// none is allowed and drops nothing) in the table for vhid, replacing a
// table of that name left by an earlier run. Other systems than Linux get
// errors.ErrUnsupported.
func NewNoAccept(vhid uint8, addrs []netip.Addr, cfg *NoAcceptConfig) (*NoAccept, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("vip: no-accept rule: %w", errors.ErrUnsupported)
	}
	nft, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("vip: no-accept rule needs the nft binary: %w", err)
	}
	return newNoAccept(vhid, addrs, cfg, nft, nftrun.Run)
}

func newNoAccept(vhid uint8, addrs []netip.Addr, cfg *NoAcceptConfig, nft string, run func(context.Context, string, string) error) (*NoAccept, error) {
	if vhid == 0 {
		return nil, errors.New("vip: no-accept rule: vhid 0 out of range 1-255")
	}
	if cfg == nil {
		cfg = &NoAcceptConfig{}
	}
	table := cfg.Table
	if table == "" {
		table = fmt.Sprintf("gocarp_noaccept_%d", vhid)
	}
	if !validNftName(table) {
		return nil, fmt.Errorf("vip: NoAcceptConfig.Table %q is not an nftables name (a letter, then letters, digits or '_', at most 64 bytes)", table)
	}
	n := &NoAccept{nft: nft, table: table, log: orDiscard(cfg.Logger), run: run}
	if err := n.SetAddresses(addrs); err != nil {
		return nil, err
	}
	return n, nil
}

// Table returns the name of the nftables table (family inet).
func (n *NoAccept) Table() string { return n.table }

// SetAddresses replaces the set of addresses whose packets are dropped, in
// one nft transaction (no moment without a rule). Call it before adding an
// address to the master (vip.Follower.SetAddresses) and after removing one.
func (n *NoAccept) SetAddresses(addrs []netip.Addr) error {
	addrs = normAddrs(addrs)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("vip: no-accept rule: SetAddresses after Close")
	}
	if err := n.runLocked(NoAcceptRuleset(n.table, addrs)); err != nil {
		return fmt.Errorf("vip: no-accept rule %s: install: %w", n.table, err)
	}
	n.addrs = addrs
	n.log.Info("vip: dropping packets addressed to the virtual addresses (accept mode off)", "table", n.table, "addrs", addrs)
	return nil
}

// Close removes the table. It is idempotent; a table that is already gone
// is not an error.
func (n *NoAccept) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if err := n.runLocked(noAcceptDeleteRuleset(n.table)); err != nil {
		return fmt.Errorf("vip: no-accept rule %s: remove: %w", n.table, err)
	}
	n.log.Info("vip: no-accept rule removed", "table", n.table)
	return nil
}

func (n *NoAccept) runLocked(script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), noAcceptTimeout)
	defer cancel()
	return n.run(ctx, n.nft, script)
}

// NoAcceptRuleset returns the nftables text NoAccept loads for addrs: the
// table replaced in one transaction (declaring it first makes the delete
// valid when there is none), a chain on the input hook before the filter
// chains, IPv6 neighbour discovery to the addresses let through, the rest
// to them dropped and counted.
func NoAcceptRuleset(table string, addrs []netip.Addr) string {
	var v4, v6 []string
	for _, a := range normAddrs(addrs) {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %[1]s\ndelete table inet %[1]s\ntable inet %[1]s {\n", table)
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n")
	if len(v4) > 0 {
		fmt.Fprintf(&b, "\t\tip daddr { %s } counter drop\n", strings.Join(v4, ", "))
	}
	if len(v6) > 0 {
		set := strings.Join(v6, ", ")
		fmt.Fprintf(&b, "\t\tip6 daddr { %s } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n", set)
		fmt.Fprintf(&b, "\t\tip6 daddr { %s } counter drop\n", set)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

func noAcceptDeleteRuleset(table string) string {
	return fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", table)
}

// normAddrs returns addrs unmapped, without zones, sorted and without
// repeats, in a new slice.
func normAddrs(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func validNftName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '_')) {
			return false
		}
	}
	return true
}

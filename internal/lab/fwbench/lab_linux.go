package fwbench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
	ct "github.com/ti-mo/conntrack"
)

// Addresses of the lab. The LAN is 10.1.0.0/24 and fd00:1::/64, the WAN
// 10.2.0.0/24 and fd00:2::/64, the sync link 10.9.0.0/24; firewall i (1 or
// 2) is .i and ::i on each.
var (
	LANVIP      = netip.MustParseAddr("10.1.0.254")
	WANVIP      = netip.MustParseAddr("10.2.0.254")
	ClientAddr  = netip.MustParseAddr("10.1.0.10")
	ServerAddr  = netip.MustParseAddr("10.2.0.10")
	LANVIP6     = netip.MustParseAddr("fd00:1::fe")
	WANVIP6     = netip.MustParseAddr("fd00:2::fe")
	ClientAddr6 = netip.MustParseAddr("fd00:1::10")
	ServerAddr6 = netip.MustParseAddr("fd00:2::10")
)

// FWAddr6 returns firewall i's IPv6 address on the LAN ("lan") or WAN
// ("wan").
func FWAddr6(i int, net string) netip.Addr {
	a := [16]byte{0: 0xfd, 3: 1, 15: byte(i)}
	if net == "wan" {
		a[3] = 2
	}
	return netip.AddrFrom16(a)
}

// FWAddr returns firewall i's address on the LAN ("lan"), WAN ("wan") or
// sync link ("sync").
func FWAddr(i int, net string) netip.Addr {
	switch net {
	case "lan":
		return netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})
	case "wan":
		return netip.AddrFrom4([4]byte{10, 2, 0, byte(i)})
	}
	return netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})
}

// Interface names inside each firewall.
const (
	LANIf  = "lan0"
	WANIf  = "wan0"
	SyncIf = "sync0"
)

// Lab is the firewall-pair topology of docs/interop.md, "The firewall-pair lab":
//
//	client ── LAN bridge ── fw1, fw2 ── WAN bridge ── server
//	                         fw1 ══ sync0 ══ fw2
//
// The bridges live in the switch namespace (br_netfilter off). Every
// network but the sync link is dual-stack. The firewalls forward with the
// nftables ruleset Ruleset: established and related accepted, invalid
// dropped (counted), new LAN->WAN flows only with a SYN (UDP and ICMP new
// flows allowed), source NAT to the WAN VIP of the flow's family (NAT66 for
// IPv6), and nf_conntrack_tcp_loose=0, nf_conntrack_tcp_be_liberal=0: a
// TCP flow the forwarding firewall does not know is dropped mid-stream, so
// only replicated state keeps it alive. The client routes through the LAN
// VIPs; the server only sees the WAN VIPs.
type Lab struct {
	T      testing.TB
	TP     *netns.Topology
	Client *netns.NS
	Server *netns.NS
	FW     [3]*netns.NS // FW[1], FW[2]; FW[0] unused
	// LANPort and WANPort are firewall i's ports in the switch namespace:
	// setting one down pulls the firewall's cable (carrier loss) without
	// touching the firewall.
	LANPort, WANPort [3]string
	Dir              string // per-lab directory for configs and state
}

// Ruleset returns the nftables ruleset of the firewalls.
func Ruleset() string {
	return fmt.Sprintf(`flush ruleset
table inet fw {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state invalid counter name "invalid" drop
		iifname %[1]q oifname %[2]q tcp flags & (fin|syn|rst|ack) == syn ct state new accept
		iifname %[1]q oifname %[2]q meta l4proto { udp, icmp, ipv6-icmp } ct state new accept
	}
	counter invalid { }
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %[2]q ip saddr 10.1.0.0/24 snat ip to %[3]s
		oifname %[2]q ip6 saddr fd00:1::/64 snat ip6 to %[4]s
	}
}
`, LANIf, WANIf, WANVIP, WANVIP6)
}

// OwnedRuleset is Ruleset as fwpair's firewall.ruleset carries it: the
// table inet fw alone, without "flush ruleset" (fwpair replaces the
// tables a ruleset declares), with extra rules first in the forward chain.
func OwnedRuleset(extra ...string) string {
	r := strings.TrimPrefix(Ruleset(), "flush ruleset\n")
	var b strings.Builder
	for _, e := range extra {
		b.WriteString("\t\t" + e + "\n")
	}
	return strings.Replace(r, "policy drop;\n", "policy drop;\n"+b.String(), 1)
}

// GateRuleset is the closed forwarding gate of fwpair (its
// forwarding.gate) for the firewalls' data interfaces, as an appliance's
// boot ruleset loads it before the links come up (docs/forwarding-gate.md):
// the kernel of a rebooted firewall forwards nothing until fwpair, in sync
// or MASTER, deletes the table. examples/fwpair checks that it is the
// table the daemon manages.
func GateRuleset() string {
	return fmt.Sprintf(`table inet fwpair_gate
delete table inet fwpair_gate
table inet fwpair_gate {
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname { %q, %q } counter drop
	}
}
`, LANIf, WANIf)
}

// CloseGate loads GateRuleset in ns (a firewall's namespace), as the boot
// ruleset of a rebooting firewall does. It returns an error rather than
// failing a test, so that the chaos soak's injectors can call it.
func CloseGate(ns *netns.NS) error {
	f, err := os.CreateTemp("", "fwbench-gate-*.nft")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(GateRuleset()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = ns.Output("nft", "-f", f.Name())
	return err
}

// NewLab builds the topology; everything is removed in t.Cleanup. It skips
// (fails under CI=true) when not root or when nft or conntrack is missing.
func NewLab(t testing.TB, tag string) *Lab {
	t.Helper()
	netns.Require(t)
	nft := netns.RequireBinary(t, "nft")
	netns.RequireBinary(t, "conntrack")
	tp := netns.New(t, tag)
	l := &Lab{T: t, TP: tp, Dir: t.TempDir()}
	lan, wan := tp.Bridge("lan"), tp.Bridge("wan")
	l.Client = tp.Node("client")
	l.Server = tp.Node("server")
	tp.Attach(l.Client, lan, "eth0", netip.PrefixFrom(ClientAddr, 24), netip.PrefixFrom(ClientAddr6, 64))
	tp.Attach(l.Server, wan, "eth0", netip.PrefixFrom(ServerAddr, 24), netip.PrefixFrom(ServerAddr6, 64))
	l.Client.IP("route", "add", "default", "via", LANVIP.String())
	l.Client.IP("-6", "route", "add", "default", "via", LANVIP6.String())

	rules := filepath.Join(l.Dir, "fw.nft")
	if err := os.WriteFile(rules, []byte(Ruleset()), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		fw := tp.Node(fmt.Sprintf("fw%d", i))
		l.FW[i] = fw
		l.LANPort[i] = tp.Attach(fw, lan, LANIf, netip.PrefixFrom(FWAddr(i, "lan"), 24), netip.PrefixFrom(FWAddr6(i, "lan"), 64))
		l.WANPort[i] = tp.Attach(fw, wan, WANIf, netip.PrefixFrom(FWAddr(i, "wan"), 24), netip.PrefixFrom(FWAddr6(i, "wan"), 64))
	}
	tp.Link(l.FW[1], SyncIf, []netip.Prefix{netip.PrefixFrom(FWAddr(1, "sync"), 24)},
		l.FW[2], SyncIf, []netip.Prefix{netip.PrefixFrom(FWAddr(2, "sync"), 24)})
	for i := 1; i <= 2; i++ {
		fw := l.FW[i]
		fw.Run(nft, "-f", rules)
		// Explicit, whatever the host's defaults (docs/interop.md, "Host sysctls").
		kv := map[string]string{
			"net/ipv4/ip_forward":                  "1",
			"net/ipv6/conf/all/forwarding":         "1",
			"net/ipv4/conf/all/rp_filter":          "0",
			"net/ipv4/conf/default/rp_filter":      "0",
			"net/ipv4/conf/all/send_redirects":     "0",
			"net/ipv4/conf/default/send_redirects": "0",
			"net/ipv4/conf/all/arp_ignore":         "1",
			"net/ipv4/conf/all/arp_announce":       "2",
			"net/ipv6/conf/all/accept_dad":         "0",
			// Cut sets the links administratively down, which flushes
			// IPv6 addresses by default; a real box keeps its
			// configured addresses across a cable pull or a reboot.
			"net/ipv6/conf/all/keep_addr_on_down": "1",
			// A route through a link without carrier is ignored, so a
			// packet for it is dropped at once instead of waiting in the
			// neighbour queue and arriving after newer ones through the
			// peer (docs/interop.md, "Host sysctls").
			"net/ipv4/conf/all/ignore_routes_with_linkdown": "1",
			"net/ipv6/conf/all/ignore_routes_with_linkdown": "1",
			"net/netfilter/nf_conntrack_tcp_loose":          "0",
			"net/netfilter/nf_conntrack_tcp_be_liberal":     "0",
			"net/netfilter/nf_conntrack_events":             "1",
		}
		for _, ifn := range []string{LANIf, WANIf, SyncIf} {
			kv["net/ipv4/conf/"+ifn+"/rp_filter"] = "0"
			kv["net/ipv4/conf/"+ifn+"/send_redirects"] = "0"
			kv["net/ipv4/conf/"+ifn+"/arp_ignore"] = "1"
			kv["net/ipv4/conf/"+ifn+"/arp_announce"] = "2"
			kv["net/ipv6/conf/"+ifn+"/accept_dad"] = "0"
			kv["net/ipv6/conf/"+ifn+"/keep_addr_on_down"] = "1"
			kv["net/ipv6/conf/"+ifn+"/ignore_routes_with_linkdown"] = "1"
		}
		fw.SetSysctls(kv)
		if got := fw.Sysctl("net/netfilter/nf_conntrack_tcp_loose"); got != "0" {
			t.Fatalf("%s: nf_conntrack_tcp_loose = %s, want 0", fw.Short, got)
		}
	}
	return l
}

// Switch returns the switch namespace.
func (l *Lab) Switch() *netns.NS { return l.TP.Switch() }

// Cut sets firewall i's LAN, WAN and sync links down (a crashed or
// unplugged box), or up again (waiting until they are ready).
func (l *Lab) Cut(i int, down bool) {
	for _, ifn := range []string{LANIf, WANIf, SyncIf} {
		l.FW[i].SetLink(ifn, !down)
	}
	if !down {
		for _, ifn := range []string{LANIf, WANIf, SyncIf} {
			l.FW[i].WaitReady(ifn)
		}
	}
}

// PullCable sets firewall i's LAN port on the switch down (the firewall
// sees its lan0 lose carrier) or up again, waiting for lan0 to be ready.
func (l *Lab) PullCable(i int, pulled bool) {
	l.Switch().SetLink(l.LANPort[i], !pulled)
	if !pulled {
		l.FW[i].WaitReady(LANIf)
	}
}

// Reboot forgets what firewall i's kernel held before a crash: its
// conntrack table and the virtual addresses a killed daemon left behind;
// and it loads the closed forwarding gate, as the boot ruleset does
// (GateRuleset). Call it while its links are down.
func (l *Lab) Reboot(i int) {
	fw := l.FW[i]
	fw.Run("conntrack", "-F")
	if err := CloseGate(fw); err != nil {
		l.T.Fatalf("fw%d: loading the boot gate: %v", i, err)
	}
	vips := map[netip.Addr]bool{LANVIP: true, WANVIP: true, LANVIP6: true, WANVIP6: true}
	for _, ifn := range []string{LANIf, WANIf} {
		out, _ := fw.Output("ip", "-o", "addr", "show", "dev", ifn)
		f := strings.Fields(out)
		for k := 0; k+1 < len(f); k++ {
			if f[k] != "inet" && f[k] != "inet6" {
				continue
			}
			if a, err := netip.ParsePrefix(f[k+1]); err == nil && vips[a.Addr()] {
				fw.DelAddr(ifn, a)
			}
		}
	}
}

// InvalidDrops returns the packets firewall i dropped as conntrack INVALID.
func (l *Lab) InvalidDrops(i int) int {
	out := l.FW[i].Run("nft", "list", "counter", "inet", "fw", "invalid")
	var pk, by int
	for _, line := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "packets %d bytes %d", &pk, &by); err == nil {
			return pk
		}
	}
	l.T.Fatalf("no counter in %q", out)
	return 0
}

// ConntrackCount returns the number of entries in firewall i's kernel
// table.
func (l *Lab) ConntrackCount(i int) int {
	out := l.FW[i].Sysctl("net/netfilter/nf_conntrack_count")
	var n int
	if _, err := fmt.Sscan(out, &n); err != nil {
		l.T.Fatalf("nf_conntrack_count %q: %v", out, err)
	}
	return n
}

// InjectEstablished writes n synthetic ESTABLISHED TCP flows into firewall
// i's conntrack table through ctnetlink (tens of thousands per second,
// where conntrack -I manages ~1700/s). They look like forwarded LAN->WAN
// flows from 10.1.128.0/17 to the server's port 80 (no NAT), live for an
// hour, and are reported by the kernel as NEW events like real ones.
func (l *Lab) InjectEstablished(i, n int) time.Duration {
	l.T.Helper()
	start := time.Now()
	err := l.FW[i].Do(func() error {
		c, err := ct.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		for k := range n {
			// Unique for k < 2^23: 10.1.128-255.x, ports 1024-1279.
			src := netip.AddrFrom4([4]byte{10, 1, 128 + byte(k>>16&0x7f), byte(k >> 8)})
			sport := uint16(1024 + k&0xff)
			f := ct.NewFlow(6, ct.StatusConfirmed|ct.StatusSeenReply|ct.StatusAssured, src, ServerAddr, sport, 80, 3600, 0)
			f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: 3} // ESTABLISHED
			if err := c.Create(f); err != nil {
				return fmt.Errorf("flow %d (%v:%d): %w", k, src, sport, err)
			}
		}
		return nil
	})
	if err != nil {
		l.T.Fatalf("injecting %d flows into fw%d: %v", n, i, err)
	}
	return time.Since(start)
}

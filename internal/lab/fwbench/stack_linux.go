package fwbench

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
)

// Stack is one HA implementation running on the lab's two firewalls.
type Stack interface {
	// Name is the label of the figures.
	Name() string
	// Start starts the stack on firewall i.
	Start(i int)
	// WaitMaster waits until firewall i owns both virtual addresses and
	// has finished its takeover work.
	WaitMaster(i int, timeout time.Duration)
	// WaitBackup waits until firewall i is an in-sync backup.
	WaitBackup(i int, timeout time.Duration)
	// Replicated returns how many flows firewall i holds from its peer
	// (gocarp: engine records; conntrackd: external cache entries).
	Replicated(i int) int
	// Crash kills firewall i's daemons with SIGKILL and cuts its links.
	Crash(i int)
	// CPU returns the CPU time (user + system) the replication daemons of
	// both firewalls have used so far.
	CPU() time.Duration
}

// processCPU returns the user + system CPU time of process pid, from
// /proc/<pid>/stat (clock ticks of 1/100 s, the Linux USER_HZ).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// Gocarp runs examples/fwpair.
type Gocarp struct {
	// Label overrides Name.
	Label string
	L     *Lab
	Bin   string
	Opts  FwpairOptions
	// Extra are configuration keys of one firewall only (by index),
	// added to Opts.Extra.
	Extra [3]map[string]any
	cfg   [3]string
	sock  [3]string
	proc  [3]*netns.Process
}

// Name implements Stack.
func (g *Gocarp) Name() string {
	if g.Label != "" {
		return g.Label
	}
	return "gocarp-fwpair"
}

// Start implements Stack: fw1 with start_as_master, fw2 without.
func (g *Gocarp) Start(i int) {
	o := g.Opts
	o.StartAsMaster = i == 1
	if g.Extra[i] != nil {
		o.Extra = maps.Clone(o.Extra)
		if o.Extra == nil {
			o.Extra = map[string]any{}
		}
		maps.Copy(o.Extra, g.Extra[i])
	}
	g.cfg[i], g.sock[i] = g.L.FwpairConfig(i, o)
	g.proc[i] = g.L.FW[i].Start(g.Bin, "-config", g.cfg[i])
}

// WaitMaster implements Stack: both groups MASTER and every takeover
// commit since the crash finished.
func (g *Gocarp) WaitMaster(i int, timeout time.Duration) {
	g.L.WaitFwpair(g.sock[i], fmt.Sprintf("fw%d MASTER", i), timeout, func(s *FwpairStatus) bool {
		return s.AllIn("MASTER")
	})
}

// WaitBackup implements Stack.
func (g *Gocarp) WaitBackup(i int, timeout time.Duration) {
	g.L.WaitFwpair(g.sock[i], fmt.Sprintf("fw%d in-sync BACKUP", i), timeout, func(s *FwpairStatus) bool {
		return s.AllIn("BACKUP") && s.Sync.BulkDone && s.Sync.PeersUp > 0
	})
}

// Commits returns firewall i's takeover commits as "vhid N: R records in D".
func (g *Gocarp) Commits(i int) []string {
	st, err := QueryFwpair(g.sock[i])
	if err != nil {
		g.L.T.Fatal(err)
	}
	var out []string
	for _, c := range st.Sync.Commits {
		out = append(out, fmt.Sprintf("vhid %d: %d records in %s", c.VHID, c.Records, c.Took))
	}
	return out
}

// Replicated implements Stack.
func (g *Gocarp) Replicated(i int) int {
	st, err := QueryFwpair(g.sock[i])
	if err != nil {
		g.L.T.Fatal(err)
	}
	return st.Sync.Records - st.Sync.LocalRecords
}

// CPU implements Stack.
func (g *Gocarp) CPU() time.Duration {
	var d time.Duration
	for _, p := range g.proc {
		if p != nil {
			d += processCPU(p.Pid())
		}
	}
	return d
}

// Config returns firewall i's configuration file and control socket.
func (g *Gocarp) Config(i int) (cfgPath, socket string) { return g.cfg[i], g.sock[i] }

// Crash implements Stack.
func (g *Gocarp) Crash(i int) {
	if err := g.proc[i].Stop(); err != nil {
		g.L.T.Fatal(err)
	}
	g.L.Cut(i, true)
}

// Conntrackd runs keepalived (a vrrp_sync_group of a LAN and a WAN
// instance) and conntrackd (FTFW over UDP unicast on the sync link), with
// keepalived's notify scripts calling conntrackd's shipped
// primary-backup.sh (primary: -c -f -R -B; backup: -t -n; fault: -t), as
// conntrackd's documentation sets them up (doc/sync/keepalived.conf,
// doc/sync/ftfw/conntrackd.conf, docs/interop.md, "The firewall-pair lab").
type Conntrackd struct {
	L *Lab
	// TrackScript, if set, returns the health check keepalived runs on
	// firewall i (vrrp_script, tracked by both instances): a shell command
	// line run every second, failed after two failures in a row, healthy
	// after two successes, weight 0 (the instance goes to FAULT and gives
	// its addresses up).
	TrackScript func(i int) string
	// AdvertInt is keepalived's advert_int; zero means 1 s with VRRPv2
	// and a password, the example's setup. Any other value runs VRRPv3
	// (VRRPv2 counts whole seconds only), which has no password.
	AdvertInt time.Duration

	dir  [3]string
	ctd  [3]*netns.Process
	kad  [3]*netns.Process
	conf [3]string
}

// Name implements Stack.
func (c *Conntrackd) Name() string {
	if c.AdvertInt != 0 {
		return "keepalived+conntrackd@" + c.AdvertInt.String()
	}
	return "keepalived+conntrackd"
}

// conntrackdConf is the FTFW configuration of the example, with UDP
// unicast on the sync link instead of multicast, UDP accepted next to TCP
// (the lab has UDP flows), and the lab's addresses ignored.
const conntrackdConf = `Sync {
	Mode FTFW {
		ResendQueueSize 131072
		PurgeTimeout 60
		ACKWindowSize 300
		DisableExternalCache Off
	}
	UDP {
		IPv4_address {{.Local}}
		IPv4_Destination_Address {{.Peer}}
		Port 3780
		Interface {{.SyncIf}}
		SndSocketBuffer 1249280
		RcvSocketBuffer 1249280
		Checksum on
	}
	Options {
		TCPWindowTracking Off
	}
}
General {
	HashSize 32768
	HashLimit 131072
	LogFile {{.Dir}}/conntrackd.log
	Syslog off
	LockFile {{.Dir}}/conntrack.lock
	UNIX {
		Path {{.Dir}}/conntrackd.ctl
	}
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 8388608
	NetlinkOverrunResync On
	NetlinkEventsReliable Off
	Filter From Userspace {
		Protocol Accept {
			TCP
			UDP
		}
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address {{.LANVIP}}
			IPv4_address {{.WANVIP}}
			IPv4_address {{.LAN}}
			IPv4_address {{.WAN}}
			IPv4_address {{.Local}}
		}
	}
}
`

const keepalivedConf = `global_defs {
	router_id fw{{.I}}
	script_user root
	enable_script_security
}
{{.TrackDef}}vrrp_sync_group G1 {
	group {
		LAN
		WAN
	}
	notify_master "{{.Script}} primary"
	notify_backup "{{.Script}} backup"
	notify_fault "{{.Script}} fault"
}
vrrp_instance LAN {
	interface {{.LANIf}}
	state BACKUP
	virtual_router_id 1
	priority {{.Prio}}
{{.Timing}}
	virtual_ipaddress {
		{{.LANVIP}}/24 dev {{.LANIf}}
	}
{{.TrackUse}}}
vrrp_instance WAN {
	interface {{.WANIf}}
	state BACKUP
	virtual_router_id 2
	priority {{.Prio}}
{{.Timing}}
	virtual_ipaddress {
		{{.WANVIP}}/24 dev {{.WANIf}}
	}
{{.TrackUse}}}
`

// keepalivedTiming is the advert interval part of keepalivedConf's
// instances: the example's VRRPv2 with a password at 1 s, or VRRPv3 at
// another interval.
const keepalivedTiming = `	advert_int 1
	authentication {
		auth_type PASS
		auth_pass labpass
	}`

func expand(tmpl string, kv map[string]string) string {
	for k, v := range kv {
		tmpl = strings.ReplaceAll(tmpl, "{{."+k+"}}", v)
	}
	return tmpl
}

// primaryBackupScript is conntrackd's shipped primary-backup.sh with its
// paths pointed at the lab's files.
func primaryBackupScript(conf, lock string) (string, error) {
	b, err := os.ReadFile("/usr/share/doc/conntrackd/examples/sync/primary-backup.sh")
	if err != nil {
		return "", err
	}
	s := string(b)
	s = regexp.MustCompile(`(?m)^CONNTRACKD_CONFIG=.*$`).ReplaceAllString(s, "CONNTRACKD_CONFIG="+conf)
	s = regexp.MustCompile(`(?m)^CONNTRACKD_LOCK=.*$`).ReplaceAllString(s, "CONNTRACKD_LOCK="+lock)
	return s, nil
}

// Start implements Stack.
func (c *Conntrackd) Start(i int) {
	t := c.L.T
	ctd := netns.RequireBinary(t, "conntrackd")
	kad := netns.RequireBinary(t, "keepalived")
	dir := filepath.Join(c.L.Dir, fmt.Sprintf("ka%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.dir[i] = dir
	prio := "150"
	if i == 2 {
		prio = "100"
	}
	kv := map[string]string{
		"I": strconv.Itoa(i), "Dir": dir, "Local": FWAddr(i, "sync").String(), "Peer": FWAddr(3-i, "sync").String(),
		"SyncIf": SyncIf, "LANIf": LANIf, "WANIf": WANIf, "LANVIP": LANVIP.String(), "WANVIP": WANVIP.String(),
		"LAN": FWAddr(i, "lan").String(), "WAN": FWAddr(i, "wan").String(), "Prio": prio,
		"Script": filepath.Join(dir, "primary-backup.sh"), "Timing": keepalivedTiming, "TrackDef": "", "TrackUse": "",
	}
	if c.AdvertInt != 0 {
		kv["Timing"] = fmt.Sprintf("\tversion 3\n\tadvert_int %s", strconv.FormatFloat(c.AdvertInt.Seconds(), 'f', -1, 64))
	}
	if c.TrackScript != nil {
		// keepalived runs a script file, not a command line.
		chk := filepath.Join(dir, "check.sh")
		if err := os.WriteFile(chk, []byte("#!/bin/sh\n"+c.TrackScript(i)+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		kv["TrackDef"] = "vrrp_script chk {\n\tscript \"" + chk + "\"\n\tinterval 1\n\ttimeout 1\n\tfall 2\n\trise 2\n\tweight 0\n}\n"
		kv["TrackUse"] = "\ttrack_script {\n\t\tchk\n\t}\n"
	}
	c.conf[i] = filepath.Join(dir, "conntrackd.conf")
	script, err := primaryBackupScript(c.conf[i], filepath.Join(dir, "conntrack.lock"))
	if err != nil {
		t.Skipf("conntrackd's primary-backup.sh not found: %v", err)
	}
	files := map[string]string{
		c.conf[i]:                               expand(conntrackdConf, kv),
		filepath.Join(dir, "keepalived.conf"):   expand(keepalivedConf, kv),
		filepath.Join(dir, "primary-backup.sh"): script,
	}
	for p, content := range files {
		mode := os.FileMode(0o644) // keepalived refuses an executable configuration
		if strings.HasSuffix(p, ".sh") {
			mode = 0o700
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	c.ctd[i] = c.L.FW[i].Start(ctd, "-C", c.conf[i])
	// conntrackd answers on its socket once it runs.
	if !Poll(10*time.Second, func() bool {
		_, err := c.L.FW[i].Output(ctd, "-C", c.conf[i], "-s", "cache")
		return err == nil
	}) {
		t.Fatalf("conntrackd on fw%d did not start: %v", i, c.ctd[i].Output())
	}
	c.kad[i] = c.L.FW[i].Start(kad, "-n", "-l", "-D", "-P", "-f", filepath.Join(dir, "keepalived.conf"),
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
}

// hasVIPs reports whether firewall i has both virtual addresses.
func (c *Conntrackd) hasVIPs(i int) bool {
	lan, _ := c.L.FW[i].Output("ip", "-4", "-o", "addr", "show", "dev", LANIf)
	wan, _ := c.L.FW[i].Output("ip", "-4", "-o", "addr", "show", "dev", WANIf)
	return strings.Contains(lan, LANVIP.String()+"/") && strings.Contains(wan, WANVIP.String()+"/")
}

// WaitMaster implements Stack: both VIPs present (the notify script,
// conntrackd -c -f -R -B, runs after keepalived installed them: the
// ordering of keepalived#2254).
func (c *Conntrackd) WaitMaster(i int, timeout time.Duration) {
	if !Poll(timeout, func() bool { return c.hasVIPs(i) }) {
		c.L.T.Fatalf("fw%d: keepalived did not install the VIPs within %v", i, timeout)
	}
}

// WaitBackup implements Stack: keepalived BACKUP (no VIPs) and conntrackd
// running.
func (c *Conntrackd) WaitBackup(i int, timeout time.Duration) {
	if _, _, err := c.kad[i].WaitLine(0, "Entering BACKUP STATE", timeout); err != nil {
		c.L.T.Fatal(err)
	}
}

var activeRE = regexp.MustCompile(`active objects:\s+(\d+)`)

// Replicated implements Stack: the external cache's "current active
// connections" (conntrackd -s cache; docs/interop.md, "The firewall-pair lab").
func (c *Conntrackd) Replicated(i int) int {
	out, err := c.L.FW[i].Output("conntrackd", "-C", c.conf[i], "-s", "cache")
	if err != nil {
		c.L.T.Fatal(err)
	}
	// The first section is the internal cache, the second the external.
	idx := strings.Index(out, "external")
	if idx < 0 {
		c.L.T.Fatalf("no external cache in %q", out)
	}
	m := activeRE.FindStringSubmatch(out[idx:])
	if m == nil {
		c.L.T.Fatalf("no active count in %q", out[idx:])
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// CPU implements Stack: conntrackd's CPU time (keepalived's is the
// VRRP side, which fwpair's figure includes but which is negligible).
func (c *Conntrackd) CPU() time.Duration {
	var d time.Duration
	for _, p := range c.ctd {
		if p != nil {
			d += processCPU(p.Pid())
		}
	}
	return d
}

// Crash implements Stack: keepalived (parent and VRRP child: the whole
// process group, docs/interop.md, "keepalived's two processes") and
// conntrackd SIGKILLed, links cut.
func (c *Conntrackd) Crash(i int) {
	if err := c.kad[i].Stop(); err != nil {
		c.L.T.Fatal(err)
	}
	if err := c.ctd[i].Stop(); err != nil {
		c.L.T.Fatal(err)
	}
	c.L.Cut(i, true)
}

// Poll checks cond every 10 ms until it holds (true) or timeout passes
// (false). The daemons offer no notification for what the lab waits for.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

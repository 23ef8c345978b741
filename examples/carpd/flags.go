package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/vip"
)

// options is the parsed and validated command line.
type options struct {
	Interface  string       // -i: interface adverts go out on
	SrcIP      netip.Addr   // -s: IPv4 source of adverts (zero: the interface's primary address)
	VHID       uint8        // -v
	Pass       string       // -p
	PassFile   string       // -o: first line is the password
	Addrs      []netip.Addr // -a, repeatable, IPv4 and IPv6
	AdvBase    uint8        // -b, seconds; 0 for sub-second adverts
	AdvSkew    uint8        // -k, 1/256 s
	Preempt    bool         // -P
	Neutral    bool         // -n: no downscript at start-up
	UpScript   string       // -u
	DownScript string       // -d
	DeadRatio  int          // -r
	Shutdown   bool         // -z: downscript on exit when not BACKUP
	XParam     string       // -x: third argument of the scripts
	IgnoreIf   bool         // -S: no link tracking
	Debug      bool         // -D
	Facility   string       // -f: syslog facility; "" logs to stderr
	LogFormat  string       // --log-format: text (default) or json

	McastIP       netip.Addr    // --mcast/--mcastip: only the default group is supported
	Peers         []netip.Addr  // --peer, any number per family
	DemoteFile    string        // --demote-file
	DemoteSkew    bool          // --demote-skew
	ManageVIP     bool          // --manage-vip
	VMAC          bool          // --vmac (implies --manage-vip)
	ScriptTimeout time.Duration // --script-timeout
	Metrics       string        // --metrics: ADDR:PORT serving /metrics and /healthz

	Protocol       carp.Protocol // --protocol: carp (default) or vrrp3
	Priority       uint8         // --priority, VRRPv3 only (default 100)
	AdvertInterval time.Duration // --advert-int, VRRPv3 only (default 1s)
	NoAccept       bool          // --no-accept, VRRPv3 only: drop packets addressed to the addresses

	// Interval is --interval as given: check sets AdvBase 0 and AdvSkew
	// from it (interval.go).
	Interval time.Duration

	Realtime int // --realtime: SCHED_FIFO priority of the whole process, 0 off (realtime_linux.go)

	Track trackOptions // --track-* (track.go)

	Help bool
}

// Bounds of --script-timeout. There is no "no limit": a script that never
// returns would hold every later script, and the daemon's shutdown, for
// ever.
const (
	defaultScriptTimeout = 10 * time.Second
	minScriptTimeout     = time.Millisecond
	maxScriptTimeout     = 24 * time.Hour
)

// usageError is a command-line mistake: carpd prints it and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flagSpec is one row of the flag table: ucarp's short letter (0 for
// long-only flags), the long name, the argument's name ("" for a switch),
// the help text, and how to apply a value. set returns only what is wrong
// with the value ("out of range 1-255", "is not a unicast IPv4 address");
// the parser puts the flag and the value before it, as in
// "--vhid 0 out of range 1-255".
type flagSpec struct {
	short rune
	long  string
	arg   string
	help  string
	set   func(o *options, v string) error
}

// flagTable lists ucarp 1.5.2's options with their meaning (docs/interop.md, "ucarp options"),
// then carpd's additions.
var flagTable = []flagSpec{
	{'i', "interface", "IF", "interface to run CARP on (required)", func(o *options, v string) error {
		if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ ") {
			return errors.New("is not an interface name (1-15 bytes, no '/' or space)")
		}
		o.Interface = v
		return nil
	}},
	{'s', "srcip", "IPv4", "source address of IPv4 adverts (default: the interface's first address)", func(o *options, v string) error {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() || !a.IsGlobalUnicast() {
			return errors.New("is not a unicast IPv4 address")
		}
		o.SrcIP = a
		return nil
	}},
	{'v', "vhid", "1-255", "virtual host id (required)", func(o *options, v string) error {
		n, err := parseRange(v, 1, 255)
		o.VHID = uint8(n)
		return err
	}},
	{'p', "pass", "PASSWORD", "HMAC password, at most 20 bytes (ucarp and BSD ifconfig: 19)", func(o *options, v string) error {
		if len(v) > carp.MaxPasswordLen {
			// Not echoed: the error shows the length instead.
			return &shownError{shown: fmt.Sprintf("length %d", len(v)), reason: fmt.Sprintf("out of range 0-%d", carp.MaxPasswordLen)}
		}
		o.Pass = v
		return nil
	}},
	{'o', "passfile", "FILE", "read the password from the first line of FILE (again on SIGHUP)", func(o *options, v string) error {
		if v == "" {
			return errors.New("is not a file name")
		}
		o.PassFile = v
		return nil
	}},
	{'a', "addr", "ADDR", "virtual address, IPv4 or IPv6; repeat for several (required)", func(o *options, v string) error {
		a, err := parseAddr(v)
		if err != nil {
			return err
		}
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return errors.New("is not a unicast IPv4 or IPv6 address")
		}
		a = a.Unmap()
		for _, b := range o.Addrs {
			if a == b {
				return errors.New("is given twice")
			}
		}
		o.Addrs = append(o.Addrs, a)
		return nil
	}},
	{'b', "advbase", "0-255", "base advertisement interval in seconds (default 1); 0: sub-second, every advskew/256 s (see --interval)", func(o *options, v string) error {
		n, err := parseRange(v, 0, 255)
		o.AdvBase = uint8(n)
		return err
	}},
	{'k', "advskew", "0-254", "advertisement skew in 1/256 s; lower is preferred (default 0)", func(o *options, v string) error {
		n, err := parseRange(v, 0, 254)
		o.AdvSkew = uint8(n)
		return err
	}},
	{'P', "preempt", "", "take over from a slower master", func(o *options, _ string) error { o.Preempt = true; return nil }},
	{'n', "neutral", "", "do not run the downscript at start-up", func(o *options, _ string) error { o.Neutral = true; return nil }},
	{'u', "upscript", "FILE", "run on becoming MASTER: FILE <interface> <addr> [xparam]", func(o *options, v string) error {
		o.UpScript = v
		return nil
	}},
	{'d', "downscript", "FILE", "run on leaving MASTER and at start-up: FILE <interface> <addr> [xparam]", func(o *options, v string) error {
		o.DownScript = v
		return nil
	}},
	{'r', "deadratio", "1-255", "adverts missed before a backup takes over (default 3)", func(o *options, v string) error {
		n, err := parseRange(v, 1, 255)
		o.DeadRatio = n
		return err
	}},
	{'z', "shutdown", "", "run the downscript on exit (SIGTERM, SIGINT, SIGQUIT) unless BACKUP", func(o *options, _ string) error {
		o.Shutdown = true
		return nil
	}},
	{'x', "xparam", "STRING", "extra (third) argument of the scripts", func(o *options, v string) error {
		o.XParam = v
		return nil
	}},
	{'S', "ignoreifstate", "", "ignore the interface's link state (no INIT on carrier loss)", func(o *options, _ string) error {
		o.IgnoreIf = true
		return nil
	}},
	{'D', "debug", "", "log at debug level (every dropped packet)", func(o *options, _ string) error { o.Debug = true; return nil }},
	{'B', "daemonize", "", "refused: carpd stays in the foreground; run it under a service manager", func(*options, string) error { return errDaemonize }},
	{'f', "facility", "NAME", "log to syslog with facility NAME (daemon, local0-7, ...); none: stderr (default)", setFacility},
	{0, "mcastip", "IPv4", "multicast group; only the CARP default 224.0.0.18 is supported", setMcast},
	{0, "mcast", "IPv4", "same as --mcastip (the name in ucarp's help text)", setMcast},
	{'h', "help", "", "print this help and exit", func(o *options, _ string) error { o.Help = true; return nil }},

	// carpd's additions.
	{0, "peer", "ADDR", "send adverts of ADDR's family to ADDR instead of multicast; repeat for more peers", func(o *options, v string) error {
		a, err := parseAddr(v)
		if err != nil {
			return err
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return errors.New("is not a unicast IPv4 or IPv6 address")
		}
		a = a.Unmap()
		if slices.Contains(o.Peers, a) {
			return errors.New("is given twice")
		}
		o.Peers = append(o.Peers, a)
		return nil
	}},
	{0, "demote-file", "FILE", "demote by the integer (0-255) in FILE, re-read every second and on SIGHUP; absent means 0", func(o *options, v string) error {
		if v == "" {
			return errors.New("is not a file name")
		}
		o.DemoteFile = v
		return nil
	}},
	{0, "demote-skew", "", "while demoted, also advertise advskew 240 (FreeBSD's way), so that ucarp and FreeBSD peers see the demotion", func(o *options, _ string) error {
		o.DemoteSkew = true
		return nil
	}},
	{0, "manage-vip", "", "install, announce and remove the addresses ourselves", func(o *options, _ string) error {
		o.ManageVIP = true
		return nil
	}},
	{0, "vmac", "", "put the addresses on a macvlan with the virtual MAC 00:00:5e:00:01:<vhid> (VRRPv3 IPv6: ...:02:<vrid>; implies --manage-vip)", func(o *options, _ string) error {
		o.VMAC, o.ManageVIP = true, true
		return nil
	}},
	{0, "script-timeout", "DURATION", "kill a script (and its process group) still running after DURATION, 1ms-24h (default 10s)", func(o *options, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < minScriptTimeout || d > maxScriptTimeout {
			return errors.New("out of range 1ms-24h (a duration, e.g. 30s)")
		}
		o.ScriptTimeout = d
		return nil
	}},
	{0, "interval", "DURATION", "sub-second advert interval, 10ms-992ms, rounded to 1/256 s: sets --advbase 0 and --advskew (lower is preferred)", setInterval},
	{0, "realtime", "1-99", "run carpd under SCHED_FIFO at priority 1-99, scripts included, GOMAXPROCS one below the CPUs, if permitted (CAP_SYS_NICE, two CPUs or more); else a warning", func(o *options, v string) error {
		n, err := parseRange(v, 1, 99)
		o.Realtime = n
		return err
	}},
	{0, "metrics", "ADDR:PORT", "serve Prometheus /metrics and /healthz on ADDR:PORT only (default: off)", func(o *options, v string) error {
		if _, err := netip.ParseAddrPort(v); err != nil {
			return errors.New("is not an IP address and port (e.g. 127.0.0.1:9310 or [::1]:9310)")
		}
		o.Metrics = v
		return nil
	}},
}

// vrrpFlags are carpd's VRRPv3 flags, appended to flagTable in init order
// after its other additions.
var vrrpFlags = []flagSpec{
	{0, "protocol", "carp|vrrp3", "wire protocol: CARP (default) or VRRPv3 (keepalived, routers; no password, -v is the VRID)", func(o *options, v string) error {
		switch v {
		case "carp":
			o.Protocol = carp.ProtocolCARP
		case "vrrp3":
			o.Protocol = carp.ProtocolVRRPv3
		default:
			return errors.New("out of range (carp, vrrp3)")
		}
		return nil
	}},
	{0, "priority", "1-254", "VRRP priority; higher is preferred (default 100; --protocol vrrp3)", func(o *options, v string) error {
		n, err := parseRange(v, 1, 254)
		o.Priority = uint8(n)
		return err
	}},
	{0, "advert-int", "DURATION", "VRRP advertisement interval, 10ms-40.95s in steps of 10ms (default 1s; --protocol vrrp3)", func(o *options, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < carp.MinAdvertInterval || d > carp.MaxAdvertInterval || d%carp.MinAdvertInterval != 0 {
			return errors.New("out of range 10ms-40.95s in steps of 10ms (a duration, e.g. 100ms)")
		}
		o.AdvertInterval = d
		return nil
	}},
	{0, "no-accept", "", "VRRP accept mode off (keepalived's no_accept): as master, drop packets addressed to the addresses, answering only ARP and ND; needs nft (--protocol vrrp3)", func(o *options, _ string) error {
		o.NoAccept = true
		return nil
	}},
}

func setMcast(o *options, v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || a != netip.AddrFrom4([4]byte{224, 0, 0, 18}) {
		return errors.New("is not 224.0.0.18 (other groups are not supported; use --peer for unicast)")
	}
	o.McastIP = a
	return nil
}

// parseRange parses a decimal integer in [lo, hi].
func parseRange(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("out of range %d-%d", lo, hi)
	}
	return n, nil
}

// allFlags returns flagTable followed by vrrpFlags, trackFlags and logFlags.
func allFlags() []flagSpec { return slices.Concat(flagTable, vrrpFlags, trackFlags, logFlags) }

// lookupLong finds a long flag as getopt_long does: an exact name, or else
// an unambiguous prefix (ucarp's help text says --mcast for --mcastip).
func lookupLong(name string) (*flagSpec, error) {
	var found *flagSpec
	flags := allFlags()
	for i := range flags {
		f := &flags[i]
		if f.long == name {
			return f, nil
		}
		if strings.HasPrefix(f.long, name) {
			if found != nil {
				return nil, usagef("--%s is ambiguous (--%s, --%s)", name, found.long, f.long)
			}
			found = f
		}
	}
	if found == nil {
		return nil, usagef("unknown flag --%s", name)
	}
	return found, nil
}

func lookupShort(c rune) (*flagSpec, error) {
	for i := range flagTable {
		if flagTable[i].short == c && c != 0 {
			return &flagTable[i], nil
		}
	}
	return nil, usagef("unknown flag -%c", c)
}

// shownError is a set error that shows something else than the value (a
// password's length).
type shownError struct{ shown, reason string }

func (e *shownError) Error() string { return e.shown + " " + e.reason }

// apply runs f.set and names the flag and the value in any error:
// "--vhid 0 out of range 1-255".
func apply(o *options, f *flagSpec, v string) error {
	if err := f.set(o, v); err != nil {
		var se *shownError
		switch {
		case f.arg == "":
			return usagef("--%s: %v", f.long, err)
		case errors.As(err, &se):
			return usagef("--%s %v", f.long, se)
		case v == "" || strings.ContainsAny(v, " \t"):
			return usagef("--%s %q %v", f.long, v, err)
		}
		return usagef("--%s %s %v", f.long, v, err)
	}
	return nil
}

// parseArgs parses args (without the program name) the way getopt_long
// does for ucarp: "-v 1", "-v1", "--vhid 1", "--vhid=1", clustered
// switches ("-PnD", "-Pk100"), unambiguous long prefixes, and "--" to end
// the flags. carpd takes no operands. A value given twice replaces the
// first, except for the repeatable --addr and --peer. It then checks the
// flags that depend on each other. The password file is not read here (see
// password).
func parseArgs(args []string) (*options, error) {
	o := &options{AdvBase: 1, DeadRatio: 3, ScriptTimeout: defaultScriptTimeout}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--": // carpd takes no operands
			if i+1 < len(args) {
				return nil, usagef("unexpected argument %q", args[i+1])
			}
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			f, err := lookupLong(name)
			if err != nil {
				return nil, err
			}
			switch {
			case f.arg == "" && hasVal:
				return nil, usagef("--%s takes no value", f.long)
			case f.arg != "" && !hasVal:
				if i+1 >= len(args) {
					return nil, usagef("--%s requires a value (%s)", f.long, f.arg)
				}
				i++
				val = args[i]
			}
			if err := apply(o, f, val); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			cluster := []rune(a[1:])
			for j := 0; j < len(cluster); j++ {
				f, err := lookupShort(cluster[j])
				if err != nil {
					return nil, err
				}
				if f.arg == "" {
					if err := apply(o, f, ""); err != nil {
						return nil, err
					}
					continue
				}
				// The rest of the cluster, or else the next argument, is the value.
				val := string(cluster[j+1:])
				if val == "" {
					if i+1 >= len(args) {
						return nil, usagef("-%c (--%s) requires a value (%s)", f.short, f.long, f.arg)
					}
					i++
					val = args[i]
				}
				if err := apply(o, f, val); err != nil {
					return nil, err
				}
				break
			}
		default:
			return nil, usagef("unexpected argument %q", a)
		}
	}
	if o.Help {
		return o, nil
	}
	return o, o.check()
}

// check validates what single flags cannot: required flags and
// combinations.
func (o *options) check() error {
	switch {
	case o.Interface == "":
		return usagef("--interface is required")
	case o.VHID == 0:
		return usagef("--vhid is required (1-255)")
	}
	if err := o.checkProtocol(); err != nil {
		return err
	}
	switch {
	case o.Protocol == carp.ProtocolCARP && o.Pass == "" && o.PassFile == "":
		return usagef("--pass or --passfile is required")
	case o.Pass != "" && o.PassFile != "":
		return usagef("--pass and --passfile are mutually exclusive")
	case len(o.Addrs) == 0:
		return usagef("--addr is required")
	}
	has4, has6 := o.families()
	if o.SrcIP.IsValid() && !has4 {
		return usagef("--srcip %v: no IPv4 --addr to advertise", o.SrcIP)
	}
	for _, p := range o.Peers {
		if p.Is4() && !has4 || p.Is6() && !has6 {
			return usagef("--peer %v: no --addr of that family", p)
		}
	}
	if o.McastIP.IsValid() && !has4 {
		return usagef("--mcastip %v: no IPv4 --addr to advertise", o.McastIP)
	}
	return o.Track.check()
}

// checkProtocol rejects the flags of the protocol not selected, which
// would otherwise be ignored, and fills in the VRRPv3 defaults.
func (o *options) checkProtocol() error {
	if o.Protocol == carp.ProtocolCARP {
		switch {
		case o.Priority != 0:
			return usagef("--priority %d: only with --protocol vrrp3 (CARP ranks by --advskew)", o.Priority)
		case o.AdvertInterval != 0:
			return usagef("--advert-int %v: only with --protocol vrrp3 (CARP uses --advbase, --advskew or --interval)", o.AdvertInterval)
		case o.NoAccept:
			return usagef("--no-accept: only with --protocol vrrp3 (CARP has no accept mode: its master accepts)")
		}
		return o.checkInterval() // interval.go
	}
	carpOnly := []struct {
		flag string
		set  bool
	}{
		{"--pass", o.Pass != ""},
		{"--passfile", o.PassFile != ""},
		{"--advbase", o.AdvBase != 1},
		{"--advskew", o.AdvSkew != 0},
		{"--interval", o.Interval != 0},
		{"--deadratio", o.DeadRatio != 3},
		{"--demote-skew", o.DemoteSkew},
	}
	for _, f := range carpOnly {
		if f.set {
			return usagef("%s: not with --protocol vrrp3 (VRRPv3 has no password; use --priority and --advert-int)", f.flag)
		}
	}
	if has4, has6 := o.families(); o.VMAC && has4 && has6 {
		// One macvlan has one MAC, and VRRP's differs by family.
		return usagef("--vmac: not with IPv4 and IPv6 --addr under --protocol vrrp3 (its virtual MAC is 00:00:5e:00:01:<vrid> for IPv4, 00:00:5e:00:02:<vrid> for IPv6; run one carpd per family, as keepalived runs one instance per family)")
	}
	if o.Priority == 0 {
		o.Priority = carp.DefaultPriority
	}
	if o.AdvertInterval == 0 {
		o.AdvertInterval = time.Second
	}
	return nil
}

// virtualMAC returns the MAC of the --vmac link: CARP's
// 00:00:5e:00:01:<vhid> for both families, VRRPv3's per family (check
// refuses a dual-stack VRRPv3 group with --vmac).
func (o *options) virtualMAC() net.HardwareAddr {
	_, has6 := o.families()
	if o.Protocol == carp.ProtocolVRRPv3 {
		return vip.VRRPVirtualMACAddr(o.VHID, has6)
	}
	return vip.VirtualMACAddr(o.VHID)
}

// families reports which address families the group advertises on.
func (o *options) families() (has4, has6 bool) {
	for _, a := range o.Addrs {
		if a.Is4() {
			has4 = true
		} else {
			has6 = true
		}
	}
	return has4, has6
}

// password returns --pass, or the first line of --passfile without its
// line ending (ucarp reads it with fgets and strips "\r\n").
func (o *options) password() ([]byte, error) {
	if o.PassFile == "" {
		return []byte(o.Pass), nil
	}
	f, err := os.Open(o.PassFile)
	if err != nil {
		return nil, usagef("--passfile %s: %v", o.PassFile, err)
	}
	defer f.Close()
	// A password and its line end at most: a longer first line is an error
	// either way, and reading it whole would cost the size of whatever the
	// path names. The file may be a pipe (-o <(command)): it is not
	// required to be a regular file.
	line, err := bufio.NewReader(io.LimitReader(f, int64(carp.MaxPasswordLen+len("\r\n")))).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, usagef("--passfile %s: %v", o.PassFile, err)
	}
	line = bytes.TrimRight(line, "\r\n")
	switch {
	case len(line) == 0:
		return nil, usagef("--passfile %s: first line is empty", o.PassFile)
	case len(line) > carp.MaxPasswordLen:
		return nil, usagef("--passfile %s: password length out of range 1-%d bytes", o.PassFile, carp.MaxPasswordLen)
	}
	return line, nil
}

// writeUsage prints the flag table.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: carpd -i IF -v VHID -p PASS|-o FILE -a ADDR [flags]

carpd runs one CARP group (a ucarp replacement): same flags, same scripts
(called as "script <interface> <addr> [xparam]"), plus IPv6, several
addresses, unicast peers, demotion and address management.

Flags:
`)
	writeFlagHelp(w, allFlags()) // usage.go
	fmt.Fprint(w, `
Signals: SIGUSR1 logs the state, the goroutine count and the packet counters;
SIGUSR2 steps down from MASTER for 3 s plus the master-down interval (as
ucarp; a bow-out advert hands over at once); SIGHUP re-reads --demote-file
and --passfile (the old password stays accepted for a while) and keeps
running; SIGTERM, SIGINT and SIGQUIT send a bow-out advert when MASTER and
exit (running the downscript with --shutdown).
`)
}

package main

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// base is the smallest valid ucarp command line.
var base = []string{"-i", "eth0", "-v", "7", "-p", "secret", "-a", "10.0.0.254"}

// want returns the options base parses to, changed by fn.
func want(fn func(o *options)) *options {
	o := &options{Interface: "eth0", VHID: 7, Pass: "secret",
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.254")}, AdvBase: 1, DeadRatio: 3, ScriptTimeout: 10 * time.Second}
	if fn != nil {
		fn(o)
	}
	return o
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *options
	}{
		{"minimal", base, want(nil)},
		{
			// A typical ucarp line, short flags with separate values.
			"ucarp short flags",
			[]string{"-i", "eth1", "-s", "10.0.0.2", "-v", "10", "-p", "pw", "-a", "10.0.0.254",
				"-b", "2", "-k", "100", "-P", "-n", "-u", "/up", "-d", "/down", "-r", "4", "-z",
				"-x", "extra", "-S", "-D", "-f", "local0"},
			&options{Interface: "eth1", SrcIP: netip.MustParseAddr("10.0.0.2"), VHID: 10, Pass: "pw",
				Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.254")}, AdvBase: 2, AdvSkew: 100,
				Preempt: true, Neutral: true, UpScript: "/up", DownScript: "/down", DeadRatio: 4,
				Shutdown: true, XParam: "extra", IgnoreIf: true, Debug: true, Facility: "local0",
				ScriptTimeout: 10 * time.Second},
		},
		{
			"long flags, both value forms",
			[]string{"--interface=eth0", "--vhid", "7", "--pass=secret", "--addr", "10.0.0.254",
				"--advskew=20", "--advbase", "3", "--preempt", "--shutdown", "--upscript=/u"},
			want(func(o *options) { o.AdvSkew, o.AdvBase, o.Preempt, o.Shutdown, o.UpScript = 20, 3, true, true, "/u" }),
		},
		{
			"clustered switches and attached values",
			append([]string{"-PnDk100", "-r5", "-zS"}, base...),
			want(func(o *options) {
				o.Preempt, o.Neutral, o.Debug, o.AdvSkew, o.DeadRatio, o.Shutdown, o.IgnoreIf = true, true, true, 100, 5, true, true
			}),
		},
		{
			"unambiguous long prefix, as getopt_long (ucarp's --mcast)",
			append([]string{"--mcast", "224.0.0.18", "--advs", "9", "--pree"}, base...),
			want(func(o *options) { o.McastIP, o.AdvSkew, o.Preempt = netip.MustParseAddr("224.0.0.18"), 9, true }),
		},
		{
			"several addresses of both families, peers, carpd flags",
			append(base, "-a", "fd00::254", "--addr=10.0.0.253", "--peer", "10.0.0.2", "--peer=fd00::2",
				"--demote-file", "/run/carp.demote", "--demote-skew", "--vmac", "--script-timeout=30s"),
			want(func(o *options) {
				o.Addrs = append(o.Addrs, netip.MustParseAddr("fd00::254"), netip.MustParseAddr("10.0.0.253"))
				o.Peers = []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
				o.DemoteFile, o.DemoteSkew, o.VMAC, o.ManageVIP, o.ScriptTimeout = "/run/carp.demote", true, true, true, 30*time.Second
			}),
		},
		{
			// Sub-second CARP: advbase 0, the interval is advskew/256 s.
			"advbase 0",
			append(base, "-b", "0", "-k", "26"),
			want(func(o *options) { o.AdvBase, o.AdvSkew = 0, 26 }),
		},
		{
			// 100 ms is 25.6/256 s: the nearest advskew is 26 (101.6 ms).
			"interval",
			append(base, "--interval", "100ms"),
			want(func(o *options) { o.Interval, o.AdvBase, o.AdvSkew = 100*time.Millisecond, 0, 26 }),
		},
		{
			"interval bounds",
			append(base, "--interval", "992ms", "--interval=10ms"),
			want(func(o *options) { o.Interval, o.AdvBase, o.AdvSkew = 10*time.Millisecond, 0, 3 }),
		},
		{
			"several peers of one family",
			append(base, "--peer", "10.0.0.2", "--peer", "10.0.0.3"),
			want(func(o *options) {
				o.Peers = []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
			}),
		},
		{"last value wins, as getopt", append(base, "-k", "5", "-k", "6"), want(func(o *options) { o.AdvSkew = 6 })},
		{"passfile instead of pass", []string{"-i", "eth0", "-v", "7", "-o", "/etc/pw", "-a", "10.0.0.254"},
			want(func(o *options) { o.Pass, o.PassFile = "", "/etc/pw" })},
		{"-- ends the flags", append(base, "--"), want(nil)},
		{"help needs nothing else", []string{"-h"}, &options{AdvBase: 1, DeadRatio: 3, ScriptTimeout: 10 * time.Second, Help: true}},
		{"bounds", append(base, "-v", "255", "-k", "254", "-b", "255", "-r", "1"),
			want(func(o *options) { o.VHID, o.AdvSkew, o.AdvBase, o.DeadRatio = 255, 254, 255, 1 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("parseArgs(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	without := func(flag string) []string {
		var out []string
		for i := 0; i < len(base); i += 2 {
			if base[i] != flag {
				out = append(out, base[i], base[i+1])
			}
		}
		return out
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"advskew too large", append(base, "--advskew", "300"), "--advskew 300 out of range 0-254"},
		{"advskew 255 (ucarp allows it, carp(4) does not)", append(base, "-k", "255"), "--advskew 255 out of range 0-254"},
		{"vhid 0", append(base, "-v", "0"), "--vhid 0 out of range 1-255"},
		{"vhid not a number", append(base, "--vhid=x"), "--vhid x out of range 1-255"},
		{"advbase 256", append(base, "-b", "256"), "--advbase 256 out of range 0-255"},
		{"advbase 0 with advskew 0", append(base, "-b", "0"), "--advskew 0 out of range 1-254 with --advbase 0 (the interval is advskew/256 s; or use --interval)"},
		{"interval too short", append(base, "--interval", "5ms"), "--interval 5ms out of range 10ms-992ms (a duration, e.g. 100ms; longer: --advbase, --advskew)"},
		{"interval too long", append(base, "--interval=1s"), "--interval 1s out of range 10ms-992ms (a duration, e.g. 100ms; longer: --advbase, --advskew)"},
		{"interval not a duration", append(base, "--interval", "100"), "--interval 100 out of range 10ms-992ms (a duration, e.g. 100ms; longer: --advbase, --advskew)"},
		{"interval with advskew", append(base, "--interval", "100ms", "-k", "3"), "--interval 100ms: not with --advbase or --advskew (it sets both)"},
		{"advbase before interval", append(base, "-b", "2", "--interval", "100ms"), "--interval 100ms: not with --advbase or --advskew (it sets both)"},
		{"deadratio 0", append(base, "-r0"), "--deadratio 0 out of range 1-255"},
		{"bad addr", append(base, "-a", "10.0.0"), "--addr 10.0.0 does not parse as an IPv4 or IPv6 address (IPv4 address too short)"},
		{"multicast addr", append(base, "-a", "224.0.0.1"), "--addr 224.0.0.1 is not a unicast IPv4 or IPv6 address"},
		{"addr twice", append(base, "-a", "10.0.0.254"), "--addr 10.0.0.254 is given twice"},
		{"srcip IPv6", append(base, "-s", "fd00::1"), "--srcip fd00::1 is not a unicast IPv4 address"},
		{"password too long", append(base, "-p", strings.Repeat("x", 21)), "--pass length 21 out of range 0-20"},
		{"peer twice", append(base, "--peer", "10.0.0.1", "--peer", "10.0.0.1"), "--peer 10.0.0.1 is given twice"},
		{"peer of a family without addr", append(base, "--peer", "fd00::1"), "--peer fd00::1: no --addr of that family"},
		{"other multicast group", append(base, "--mcastip", "239.1.1.1"),
			"--mcastip 239.1.1.1 is not 224.0.0.18 (other groups are not supported; use --peer for unicast)"},
		{"bad duration", append(base, "--script-timeout", "soon"), "--script-timeout soon out of range 1ms-24h (a duration, e.g. 30s)"},
		{"no script timeout (a hung script would hold shutdown)", append(base, "--script-timeout", "0"),
			"--script-timeout 0 out of range 1ms-24h (a duration, e.g. 30s)"},
		{"negative script timeout", append(base, "--script-timeout=-1s"), "--script-timeout -1s out of range 1ms-24h (a duration, e.g. 30s)"},
		{"script timeout too long", append(base, "--script-timeout", "25h"), "--script-timeout 25h out of range 1ms-24h (a duration, e.g. 30s)"},
		{"unknown short", append(base, "-q"), "unknown flag -q"},
		{"unknown short in a cluster", append(base, "-Pq"), "unknown flag -q"},
		{"unknown long", append(base, "--nomcast"), "unknown flag --nomcast"},
		{"ambiguous prefix", append(base, "--pa", "x"), "--pa is ambiguous (--pass, --passfile)"},
		{"missing value at the end", append(base, "-k"), "-k (--advskew) requires a value (0-254)"},
		{"missing long value", append(base, "--advskew"), "--advskew requires a value (0-254)"},
		{"value on a switch", append(base, "--preempt=yes"), "--preempt takes no value"},
		{"operand", append(base, "extra"), `unexpected argument "extra"`},
		{"operand after --", append(base, "--", "extra"), `unexpected argument "extra"`},
		{"no interface", without("-i"), "--interface is required"},
		{"no vhid", without("-v"), "--vhid is required (1-255)"},
		{"no password", without("-p"), "--pass or --passfile is required"},
		{"no addr", without("-a"), "--addr is required"},
		{"pass and passfile", append(base, "-o", "/etc/pw"), "--pass and --passfile are mutually exclusive"},
		{"srcip without IPv4", []string{"-i", "e", "-v", "1", "-p", "p", "-a", "fd00::1", "-s", "10.0.0.1"},
			"--srcip 10.0.0.1: no IPv4 --addr to advertise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseArgs(%q) = %v, want a usage error %q", tt.args, err, tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("parseArgs(%q) error (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	file := func(content string) string {
		p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{name: "first line only", content: "secret\nsecond line\n", want: "secret"},
		{name: "CRLF", content: "secret\r\n", want: "secret"},
		{name: "no newline", content: "secret", want: "secret"},
		{name: "20 bytes", content: strings.Repeat("p", 20), want: strings.Repeat("p", 20)},
		{name: "empty", content: "", wantErr: "first line is empty"},
		{name: "21 bytes", content: strings.Repeat("p", 21) + "\n", wantErr: "password length out of range 1-20 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &options{PassFile: file(tt.content)}
			got, err := o.password()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("password() = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("password() (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("huge first line", func(t *testing.T) {
		// 512 MiB of zeros without a newline, sparse: refused after a few
		// bytes, which the allocations of the call show.
		path := filepath.Join(dir, "huge")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, 512<<20); err != nil {
			t.Fatal(err)
		}
		o := &options{PassFile: path}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := o.password()
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "password length out of range 1-20 bytes") {
			t.Errorf("password() error = %v, want \"password length out of range 1-20 bytes\"", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
			t.Errorf("password() allocated %d bytes for a 512 MiB file, want a bounded read (< 64 KiB)", alloc)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		o := &options{PassFile: filepath.Join(dir, "nope")}
		if _, err := o.password(); err == nil || !strings.HasPrefix(err.Error(), "--passfile "+o.PassFile+": ") {
			t.Fatalf("password() error = %v, want one naming --passfile and the file", err)
		}
	})
}

// TestUsageListsEveryFlag: --help documents each row of the flag table.
func TestUsageListsEveryFlag(t *testing.T) {
	var b strings.Builder
	writeUsage(&b)
	for _, f := range flagTable {
		if !strings.Contains(b.String(), "--"+f.long) {
			t.Errorf("usage lacks --%s", f.long)
		}
		if f.short != 0 && !strings.Contains(b.String(), "-"+string(f.short)+", --"+f.long) {
			t.Errorf("usage lacks -%c, --%s", f.short, f.long)
		}
	}
}

// TestRunExitStatus: bad command lines exit 2 with one message naming the
// flag; --help prints the usage and exits 0. Neither opens a socket.
func TestRunExitStatus(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "up.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // prefix of stdout
		wantErr    string // stderr
	}{
		{"help", []string{"--help"}, 0, "Usage: carpd", ""},
		{"bad value", append(base, "--advskew", "300"), 2, "", "carpd: --advskew 300 out of range 0-254\nTry 'carpd --help'.\n"},
		{"missing flag", []string{"-i", "eth0"}, 2, "", "carpd: --vhid is required (1-255)\nTry 'carpd --help'.\n"},
		{"script not executable", append(base, "-u", notExec), 2, "",
			"carpd: --upscript " + notExec + ": not an executable file\nTry 'carpd --help'.\n"},
		{"missing passfile", []string{"-i", "eth0", "-v", "1", "-o", dir + "/none", "-a", "10.0.0.1"}, 2, "",
			"carpd: --passfile " + dir + "/none: open " + dir + "/none: no such file or directory\nTry 'carpd --help'.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if got := run(tt.args, &stdout, &stderr); got != tt.wantStatus {
				t.Errorf("run(%q) = %d, want %d; stderr %q", tt.args, got, tt.wantStatus, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantOut) || tt.wantOut == "" && stdout.Len() > 0 {
				t.Errorf("stdout %q, want prefix %q", stdout.String(), tt.wantOut)
			}
			if diff := cmp.Diff(tt.wantErr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseArgs: any command line either fails with a usage error or
// yields options that satisfy what the daemon relies on; it never panics.
func FuzzParseArgs(f *testing.F) {
	f.Add(strings.Join(base, "\x00"))
	f.Add("-PnDk100\x00-i\x00eth0\x00-v7\x00-psecret\x00-a\x00fd00::1\x00--peer=fd00::2")
	f.Add("--mcast\x00224.0.0.18\x00--\x00x")
	f.Add("-\x00--\x00---\x00-k")
	f.Fuzz(func(t *testing.T, line string) {
		o, err := parseArgs(strings.Split(line, "\x00"))
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not a usage error", err)
			}
			return
		}
		if o.Help {
			return
		}
		if o.Interface == "" || o.VHID == 0 || len(o.Addrs) == 0 || o.AdvBase == 0 || o.AdvSkew > 254 ||
			o.DeadRatio < 1 || (o.Pass == "") == (o.PassFile == "") || len(o.Pass) > 20 {
			t.Fatalf("accepted invalid options %+v", o)
		}
	})
}

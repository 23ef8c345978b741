package main

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/carp"
)

// vrrpBase is the smallest valid VRRPv3 command line: no password.
var vrrpBase = []string{"-i", "eth0", "-v", "7", "-a", "10.0.0.254", "--protocol", "vrrp3"}

func TestParseArgsVRRP(t *testing.T) {
	vrrp := func(fn func(o *options)) *options {
		o := &options{Interface: "eth0", VHID: 7, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.254")},
			AdvBase: 1, DeadRatio: 3, ScriptTimeout: 10 * time.Second,
			Protocol: carp.ProtocolVRRPv3, Priority: carp.DefaultPriority, AdvertInterval: time.Second}
		if fn != nil {
			fn(o)
		}
		return o
	}
	tests := []struct {
		name string
		args []string
		want *options
	}{
		{"defaults: priority 100, 1 s", vrrpBase, vrrp(nil)},
		{"priority and interval", append(vrrpBase, "--priority", "254", "--advert-int=100ms", "-P"),
			vrrp(func(o *options) { o.Priority, o.AdvertInterval, o.Preempt = 254, 100*time.Millisecond, true })},
		{"longest interval", append(vrrpBase, "--advert-int", "40.95s"),
			vrrp(func(o *options) { o.AdvertInterval = 40950 * time.Millisecond })},
		{"carp named explicitly", append(base, "--protocol", "carp"), want(nil)},
		{"scripts, peers and address management as with CARP", append(vrrpBase, "-u", "/up", "--peer", "10.0.0.2", "--vmac", "--demote-file", "/d"),
			vrrp(func(o *options) {
				o.UpScript, o.Peers, o.VMAC, o.ManageVIP, o.DemoteFile = "/up", []netip.Addr{netip.MustParseAddr("10.0.0.2")}, true, true, "/d"
			})},
		{"accept mode off", append(vrrpBase, "--no-accept"), vrrp(func(o *options) { o.NoAccept = true })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("parseArgs(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseArgsVRRPErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // contained in the message, which starts with the flag
	}{
		{"unknown protocol", append(vrrpBase, "--protocol", "vrrp2"), "--protocol vrrp2"},
		{"priority 0", append(vrrpBase, "--priority", "0"), "--priority 0"},
		{"priority 255", append(vrrpBase, "--priority", "255"), "--priority 255"},
		{"interval 5ms", append(vrrpBase, "--advert-int", "5ms"), "--advert-int 5ms"},
		{"interval 15ms", append(vrrpBase, "--advert-int", "15ms"), "--advert-int 15ms"},
		{"interval 41s", append(vrrpBase, "--advert-int", "41s"), "--advert-int 41s"},
		{"password with vrrp3", append(vrrpBase, "-p", "secret"), "--pass: not with --protocol vrrp3"},
		{"passfile with vrrp3", append(vrrpBase, "-o", "/pw"), "--passfile: not with --protocol vrrp3"},
		{"advskew with vrrp3", append(vrrpBase, "-k", "10"), "--advskew: not with --protocol vrrp3"},
		{"advbase with vrrp3", append(vrrpBase, "-b", "2"), "--advbase: not with --protocol vrrp3"},
		{"deadratio with vrrp3", append(vrrpBase, "-r", "4"), "--deadratio: not with --protocol vrrp3"},
		{"CARP interval with vrrp3", append(vrrpBase, "--interval", "100ms"), "--interval: not with --protocol vrrp3"},
		{"advbase 0 with vrrp3", append(vrrpBase, "-b", "0"), "--advbase: not with --protocol vrrp3"},
		{"demote-skew with vrrp3", append(vrrpBase, "--demote-skew"), "--demote-skew: not with --protocol vrrp3"},
		{"no addr with vrrp3", []string{"-i", "eth0", "-v", "7", "--protocol", "vrrp3"}, "--addr is required"},
		{"priority with carp", append(base, "--priority", "100"), "--priority 100: only with --protocol vrrp3"},
		{"interval with carp", append(base, "--advert-int", "1s"), "--advert-int 1s: only with --protocol vrrp3"},
		{"no-accept with carp", append(base, "--no-accept"), "--no-accept: only with --protocol vrrp3"},
		{"vmac dual-stack with vrrp3", append(vrrpBase, "-a", "2001:db8::1", "--vmac"), "--vmac: not with IPv4 and IPv6 --addr under --protocol vrrp3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseArgs(%q) = %v, want a usage error", tt.args, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("parseArgs(%q) = %q, want it to start with %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestUsageListsVRRPFlags(t *testing.T) {
	var b strings.Builder
	writeUsage(&b)
	for _, f := range vrrpFlags {
		if !strings.Contains(b.String(), "--"+f.long) {
			t.Errorf("usage lacks --%s", f.long)
		}
	}
}

func TestGroupConfig(t *testing.T) {
	o, err := parseArgs(append(vrrpBase, "--priority", "150", "--advert-int", "200ms"))
	if err != nil {
		t.Fatal(err)
	}
	c := o.groupConfig(carp.Config{})
	if c.Protocol != carp.ProtocolVRRPv3 || c.VHID != 7 || c.Priority != 150 || c.AdvertInterval != 200*time.Millisecond ||
		c.AdvBase != 0 || c.AdvSkew != 0 || c.DeadRatio != 0 {
		t.Errorf("VRRPv3 config %+v", c)
	}
	o, err = parseArgs(append(base, "-k", "20"))
	if err != nil {
		t.Fatal(err)
	}
	c = o.groupConfig(carp.Config{})
	if c.Protocol != carp.ProtocolCARP || c.AdvBase != 1 || c.AdvSkew != 20 || c.DeadRatio != 3 || c.Priority != 0 {
		t.Errorf("CARP config %+v", c)
	}
}

// TestVirtualMACByProtocol: --vmac uses CARP's MAC for both families and
// VRRPv3's per family (00:00:5e:00:02:<vrid> for IPv6).
func TestVirtualMACByProtocol(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{append(base, "--vmac"), "00:00:5e:00:01:07"},
		{[]string{"-i", "eth0", "-v", "7", "-p", "x", "-a", "2001:db8::7", "--vmac"}, "00:00:5e:00:01:07"},
		{append(vrrpBase, "--vmac"), "00:00:5e:00:01:07"},
		{[]string{"-i", "eth0", "-v", "7", "-a", "2001:db8::7", "--protocol", "vrrp3", "--vmac"}, "00:00:5e:00:02:07"},
	} {
		o, err := parseArgs(tt.args)
		if err != nil {
			t.Fatalf("parseArgs(%q): %v", tt.args, err)
		}
		if got := o.virtualMAC().String(); got != tt.want {
			t.Errorf("parseArgs(%q): virtual MAC %s; want %s", tt.args, got, tt.want)
		}
	}
}

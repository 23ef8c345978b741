package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/google/go-cmp/cmp"
)

// minimal is the smallest valid configuration.
const minimal = `{
  "node": 2,
  "groups": [{"vhid": 1, "interface": "lan0", "addresses": ["10.1.0.254"]}],
  "sync": {"interface": "sync0", "local": "10.9.0.2", "peers": [{"node": 1, "address": "10.9.0.1"}],
           "key_file": "/k", "boot_file": "/b"}
}`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Node: 2, ControlSocket: defaultControlSocket, LogLevel: "info",
		CARP:   CARPConfig{AdvBase: 1, StartWait: Duration{defaultStartWait}},
		Groups: []GroupConfig{{Name: "vhid1", VHID: 1, Interface: "lan0", Addresses: []netip.Addr{netip.MustParseAddr("10.1.0.254")}}},
		Sync: SyncConfig{Interface: "sync0", Local: "10.9.0.2", Peers: []SyncPeer{{Node: 1, Address: "10.9.0.1"}},
			KeyFile: "/k", BootFile: "/b", Commit: "direct", CommitTimeout: Duration{defaultCommitTimeout}},
		Follow: FollowConfig{Hold: Duration{defaultFollowHold}, MaxHold: Duration{defaultFollowMaxHold}},
	}
	if diff := cmp.Diff(want, c, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestExampleConfig(t *testing.T) {
	f, err := os.Open("fwpair.example.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != 1 || len(c.Groups) != 2 || c.Groups[1].VHID != 2 || !c.CARP.Preempt || c.Sync.CommitTimeout.Duration != 2*time.Second {
		t.Errorf("example parsed as %+v", c)
	}
	// -check prints a configuration that parses back to the same one,
	// with the password masked.
	out := c.String()
	if strings.Contains(out, c.CARP.Password) {
		t.Error("String leaks the password")
	}
	back, err := ParseConfig(strings.NewReader(out))
	if err != nil {
		t.Fatalf("String output does not parse: %v\n%s", err, out)
	}
	back.CARP.Password = c.CARP.Password
	if diff := cmp.Diff(c, back, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// edit returns minimal with one change applied to its decoded form.
func edit(t *testing.T, f func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(minimal), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func group(m map[string]any) map[string]any {
	return m["groups"].([]any)[0].(map[string]any)
}
func syncSec(m map[string]any) map[string]any { return m["sync"].(map[string]any) }

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"unknown field", func(m map[string]any) { m["nodes"] = 1 }, `unknown field "nodes"`},
		{"node zero", func(m map[string]any) { m["node"] = 0 }, "node 0 out of range 1-4294967295"},
		{"log level", func(m map[string]any) { m["log_level"] = "loud" }, `log_level "loud" not one of`},
		{"advskew", func(m map[string]any) { m["carp"] = map[string]any{"advskew": 255} }, "carp.advskew 255 out of range 0-254"},
		{"password", func(m map[string]any) { m["carp"] = map[string]any{"password": strings.Repeat("x", 21)} }, "carp.password length 21 out of range 0-20 bytes"},
		{"start wait", func(m map[string]any) { m["carp"] = map[string]any{"start_wait": "2m"} }, "carp.start_wait 2m0s out of range 0-1m"},
		{"duration type", func(m map[string]any) { m["carp"] = map[string]any{"start_wait": 3} }, `duration must be a string like "1s"`},
		{"no groups", func(m map[string]any) { m["groups"] = []any{} }, "groups: count 0 out of range 1-16"},
		{"vhid zero", func(m map[string]any) { group(m)["vhid"] = 0 }, "groups[0].vhid 0 out of range 1-255"},
		{"vhid twice", func(m map[string]any) {
			m["groups"] = append(m["groups"].([]any), map[string]any{"vhid": 1, "interface": "wan0", "addresses": []string{"10.2.0.254"}})
		}, "groups[1].vhid 1 used by two groups"},
		{"interface", func(m map[string]any) { group(m)["interface"] = "a-very-long-interface" }, `groups[0].interface "a-very-long-interface" is not an interface name`},
		{"no address", func(m map[string]any) { group(m)["addresses"] = []string{} }, "groups[0].addresses: at least one virtual address required"},
		{"multicast address", func(m map[string]any) { group(m)["addresses"] = []string{"224.0.0.18"} }, "groups[0].addresses[0] 224.0.0.18 is not a unicast address"},
		{"bad address", func(m map[string]any) { group(m)["addresses"] = []string{"10.1.0.300"} }, `groups[0].addresses[0] "10.1.0.300" out of range (an IPv4 or IPv6 address)`},
		{"vhid 300", func(m map[string]any) { group(m)["vhid"] = 300 }, "groups[0].vhid 300 out of range 1-255"},
		{"negative advskew", func(m map[string]any) { m["carp"] = map[string]any{"advskew": -1} }, "carp.advskew -1 out of range 0-254"},
		{"node string", func(m map[string]any) { m["node"] = "one" }, `node "one" out of range 1-4294967295`},
		{"bad prefix", func(m map[string]any) { m["conntrack"] = map[string]any{"ignore": []string{"10.0.0.0/33"}} }, `conntrack.ignore[0] "10.0.0.0/33" out of range (an address/prefix length`},
		{"sync on group link", func(m map[string]any) { syncSec(m)["interface"] = "lan0" }, `sync.interface "lan0" is also a group interface`},
		{"sync local", func(m map[string]any) { syncSec(m)["local"] = "sync-host" }, `sync.local "sync-host": want an address or address:port`},
		{"sync port", func(m map[string]any) { syncSec(m)["local"] = "10.9.0.2:0" }, "port 0 out of range 1-65535"},
		{"no peers", func(m map[string]any) { syncSec(m)["peers"] = []any{} }, "sync.peers: count 0 out of range 1-16"},
		{"peer is self", func(m map[string]any) { syncSec(m)["peers"] = []any{map[string]any{"node": 2, "address": "10.9.0.1"}} }, "sync.peers[0].node 2 is not unique"},
		{"peer family", func(m map[string]any) { syncSec(m)["peers"] = []any{map[string]any{"node": 1, "address": "fe80::1"}} }, "not of sync.local's family"},
		{"no key", func(m map[string]any) { delete(syncSec(m), "key_file") }, "sync.key_file required"},
		{"no boot file", func(m map[string]any) { delete(syncSec(m), "boot_file") }, "sync.boot_file required"},
		{"commit mode", func(m map[string]any) { syncSec(m)["commit"] = "later" }, `sync.commit "later" not one of on-takeover, direct`},
		{"commit timeout", func(m map[string]any) { syncSec(m)["commit_timeout"] = "10ms" }, "sync.commit_timeout 10ms out of range 100ms-1m"},
		{"heartbeat", func(m map[string]any) { syncSec(m)["heartbeat"] = "2m" }, "sync.heartbeat 2m0s out of range 10ms-1m"},
		{"bulk rate", func(m map[string]any) { syncSec(m)["bulk_rate"] = -1 }, "sync.bulk_rate -1 out of range"},
		{"protocol", func(m map[string]any) { m["conntrack"] = map[string]any{"protocols": []string{"ipx"}} }, `conntrack.protocols[0] "ipx" not one of`},
		{"resync", func(m map[string]any) { m["conntrack"] = map[string]any{"resync": "10ms"} }, "conntrack.resync 10ms out of range 1s-24h"},
		{"follow hold", func(m map[string]any) { m["follow"] = map[string]any{"hold": "10ms"} }, "follow.hold 10ms out of range 100ms-1h"},
		{"follow max hold", func(m map[string]any) { m["follow"] = map[string]any{"hold": "1m", "max_hold": "30s"} }, "follow.max_hold 30s out of range 1m0s-24h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(edit(t, tt.edit)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigTrailingData(t *testing.T) {
	if _, err := ParseConfig(strings.NewReader(minimal + "{}")); err == nil {
		t.Error("trailing object accepted")
	}
}

func TestRunCheck(t *testing.T) {
	var out, errb bytes.Buffer
	dir := t.TempDir()
	if rc := run([]string{"-genkey", filepath.Join(dir, "sync.key")}, &out, &errb); rc != 0 {
		t.Fatalf("-genkey: exit %d: %s", rc, errb.String())
	}
	conf := exampleWithFiles(t, dir, filepath.Join(dir, "sync.key"), filepath.Join(dir, "boot"))
	if rc := run([]string{"-config", conf, "-check"}, &out, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	if !strings.Contains(out.String(), `"vhid": 2`) {
		t.Errorf("-check printed %s", out.String())
	}
	errb.Reset()
	if rc := run([]string{"-config", "/nonexistent.json", "-check"}, &out, &errb); rc != 2 {
		t.Errorf("missing config: exit %d, want 2", rc)
	}
	if rc := run([]string{"-bogus"}, &out, &errb); rc != 2 {
		t.Errorf("bad flag: exit %d, want 2", rc)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimal))
	if b, err := os.ReadFile("fwpair.example.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(bytes.NewReader(b))
		if err == nil && (c.Node == 0 || len(c.Groups) == 0) {
			t.Fatalf("invalid config accepted: %+v", c)
		}
	})
}

func TestRunGenkey(t *testing.T) {
	path := t.TempDir() + "/sync.key"
	var out, errb bytes.Buffer
	if rc := run([]string{"-genkey", path}, &out, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	if _, err := seal.LoadKeyFile(path); err != nil {
		t.Errorf("generated key does not load: %v", err)
	}
	if rc := run([]string{"-genkey", path}, &out, &errb); rc != 1 {
		t.Errorf("overwriting a key: exit %d, want 1", rc)
	}
}

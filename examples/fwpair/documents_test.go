package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/google/go-cmp/cmp"
)

// fakeRulesetNft records the scripts it is given and refuses those containing
// "bogus", as nft -c would.
type fakeRulesetNft struct{ applied []string }

func (f *fakeRulesetNft) run(ctx context.Context, check bool, script string) error {
	if strings.Contains(script, "bogus") {
		return errors.New("nft -c: exit status 1: /dev/stdin:2:1-5: Error: syntax error")
	}
	if !check {
		f.applied = append(f.applied, script)
	}
	return nil
}

// testDocuments returns the documents of cfg without a confsync node,
// with nft and the apply commands faked.
func testDocuments(t *testing.T, cfg *Config) (*documents, *fakeRulesetNft, *[]string) {
	t.Helper()
	nft := &fakeRulesetNft{}
	var cmds []string
	ds := &documents{cfg: cfg, log: slog.New(slog.DiscardHandler), dir: cfg.ConfigSync.StateDir, docs: map[string]*docState{},
		nft: nft.run, runCmd: func(ctx context.Context, argv, env []string) error {
			cmds = append(cmds, strings.Join(argv, " ")+" "+strings.Join(env, " "))
			if argv[0] == "false" {
				return errors.New("false: exit status 1")
			}
			return nil
		}}
	var err error
	if ds.versions, err = loadVersions(ds.dir); err != nil {
		t.Fatal(err)
	}
	for _, dc := range cfg.docConfigs() {
		ds.docs[dc.name] = &docState{docConfig: dc}
		ds.order = append(ds.order, dc.name)
	}
	return ds, nft, &cmds
}

func docTestConfig(t *testing.T, dir, firewall, files string) *Config {
	t.Helper()
	c, err := ParseConfig(strings.NewReader(`{
  "node": 1,
  "groups": [{"vhid": 1, "interface": "lan0", "addresses": ["10.1.0.254"]}],
  "sync": {"interface": "sync0", "local": "10.9.0.1", "peers": [{"node": 2, "address": "10.9.0.2"}],
           "key_file": "/k", "boot_file": "` + dir + `/boot"},
  "firewall": ` + firewall + `,
  "files": ` + files + `
}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A publisher's ruleset: applied and versioned at start; a reload applies
// and re-versions a changed file; a ruleset nft -c refuses refuses the
// reload and the version in force stays; a restart with a file nft
// refuses falls back to the last good copy.
func TestDocumentsPublisherRuleset(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.nft")
	write(t, rules, "table inet fw { }\n")
	cfg := docTestConfig(t, dir, `{"ruleset": "`+rules+`", "sync": "publish"}`, `[]`)
	ds, nft, _ := testDocuments(t, cfg)
	d := ds.docs[firewallDoc]
	if err := ds.startOne(d, 0); err != nil {
		t.Fatal(err)
	}
	v1 := d.version
	if v1 == 0 || len(nft.applied) != 1 {
		t.Fatalf("after start: version %d, %d nft runs", v1, len(nft.applied))
	}
	if changes, _, err := ds.planReload(cfg); err != nil || len(changes) != 0 {
		t.Errorf("reload of an unchanged file: changes %v, err %v", changes, err)
	}

	write(t, rules, "table inet fw { chain c { } }\n")
	changes, apply, err := ds.planReload(cfg)
	if err != nil || len(changes) != 1 {
		t.Fatalf("reload of a changed file: changes %v, err %v", changes, err)
	}
	if len(nft.applied) != 1 {
		t.Error("planning applied the ruleset")
	}
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	v2 := d.version
	if v2 <= v1 || len(nft.applied) != 2 {
		t.Fatalf("after the reload: version %d (was %d), %d nft runs", v2, v1, len(nft.applied))
	}

	write(t, rules, "table inet fw { bogus }\n")
	if _, _, err := ds.planReload(cfg); err == nil || !strings.Contains(err.Error(), "line 1:") {
		t.Errorf("reload of a broken ruleset: %v, want nft's refusal at line 1", err)
	}
	if st := ds.status()[0]; st.Version != v2 || st.Err == "" || len(nft.applied) != 2 {
		t.Errorf("after the refused reload: %+v, %d nft runs; want version %d and the error", st, len(nft.applied), v2)
	}

	// A restart with the broken file: the last good copy is applied and
	// published with its version.
	ds2, nft2, _ := testDocuments(t, cfg)
	d = ds2.docs[firewallDoc]
	if err := ds2.startOne(d, 0); err != nil {
		t.Fatal(err)
	}
	if d.version != v2 || d.err == "" || len(nft2.applied) != 1 || !strings.Contains(nft2.applied[0], "chain c") {
		t.Errorf("restart with a broken file: version %d (want %d), err %q, applied %q", d.version, v2, d.err, nft2.applied)
	}
}

// A subscriber's file: replaced and its command run with the version; a
// failing command puts the previous content back and runs it again.
func TestDocumentsSubscriberFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dhcp.conf")
	write(t, path, "old\n")
	cfg := docTestConfig(t, dir, `{}`, `[{"name": "dhcp", "path": "`+path+`", "apply": ["reload-dhcp"], "sync": "subscribe"}]`)
	ds, _, cmds := testDocuments(t, cfg)
	if err := ds.applyReceived("dhcp", 7, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("file holds %q, want the received version", b)
	}
	if len(*cmds) != 1 || !strings.Contains((*cmds)[0], "FWPAIR_VERSION=7") {
		t.Errorf("commands run: %q", *cmds)
	}

	ds.docs["dhcp"].file.Apply = []string{"false"}
	err := ds.applyReceived("dhcp", 8, []byte("newer\n"))
	if err == nil || !strings.Contains(err.Error(), "previous content put back") {
		t.Errorf("failing command: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("file holds %q after a failed apply, want version 7's", b)
	}
	if st := ds.status()[0]; st.Version != 7 || st.Err == "" {
		t.Errorf("status after a failed apply: %+v", st)
	}
}

// A received ruleset replaces the tables of the one in force, and its copy
// is kept for the next start.
func TestDocumentsSubscriberRuleset(t *testing.T) {
	dir := t.TempDir()
	cfg := docTestConfig(t, dir, `{"sync": "subscribe"}`, `[]`)
	ds, nft, _ := testDocuments(t, cfg)
	if err := ds.applyReceived(firewallDoc, 3, []byte("table ip old { }\n")); err != nil {
		t.Fatal(err)
	}
	if err := ds.applyReceived(firewallDoc, 4, []byte("table inet fw { }\n")); err != nil {
		t.Fatal(err)
	}
	if len(nft.applied) != 2 || !strings.HasPrefix(nft.applied[1], "table inet fw; delete table inet fw; table ip old; delete table ip old;") {
		t.Errorf("second transaction %q, want it to delete the previous version's table", nft.applied)
	}
	if b, err := os.ReadFile(ds.copyPath(firewallDoc)); err != nil || string(b) != "table inet fw { }\n" {
		t.Errorf("copy %q, %v", b, err)
	}
	if err := ds.applyReceived(firewallDoc, 5, []byte("table inet fw { bogus }\n")); err == nil {
		t.Error("a ruleset nft refuses was applied")
	}
	if st := ds.status()[0]; st.Version != 4 || st.Err == "" {
		t.Errorf("status after a refused version: %+v", st)
	}
}

func TestDocumentsConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ firewall, files, want string }{
		{`{"sync": "publish"}`, `[]`, "firewall.ruleset required with firewall.sync publish"},
		{`{"ruleset": "rel.nft"}`, `[]`, "not an absolute path"},
		{`{"sync": "both"}`, `[]`, `firewall.sync "both" not one of publish, subscribe, off`},
		{`{}`, `[{"name": "firewall", "path": "/a", "sync": "publish"}]`, `files[0].name "firewall" used twice`},
		{`{}`, `[{"name": "a/b", "path": "/a", "sync": "publish"}]`, "is not a document name"},
		{`{"ruleset": "/a"}`, `[{"name": "x", "path": "/a", "sync": "publish"}]`, "is also firewall.ruleset"},
		{`{}`, `[{"name": "x", "path": "/a"}]`, `files[0].sync "" not one of`},
		{`{}`, `[{"name": "x", "path": "/a", "sync": "publish", "apply_timeout": "1ms"}]`, "files[0].apply_timeout 1ms out of range"},
	} {
		_, err := ParseConfig(strings.NewReader(`{"node": 1,
  "groups": [{"vhid": 1, "interface": "lan0", "addresses": ["10.1.0.254"]}],
  "sync": {"interface": "sync0", "local": "10.9.0.1", "peers": [{"node": 2, "address": "10.9.0.2"}],
           "key_file": "/k", "boot_file": "` + dir + `/boot"},
  "firewall": ` + tc.firewall + `, "files": ` + tc.files + `}`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("firewall %s files %s: error %v, want %q", tc.firewall, tc.files, err, tc.want)
		}
	}
	c := docTestConfig(t, dir, `{"sync": "subscribe"}`, `[]`)
	if cs := c.ConfigSync; cs.Port != 7241 || cs.StateDir != dir || cs.From != 2 || !cs.demoteOnStale() {
		t.Errorf("config_sync defaults: %+v", cs)
	}
}

type levelDemoter struct {
	mu    sync.Mutex
	calls []int
}

func (r *levelDemoter) SetDemotion(source string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, n)
}

// A subscriber stale for less than the grace (a transfer after a reload
// on the publisher) is not demoted; one stale longer is, and the
// demotion is cleared at once.
func TestGraceDemoter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &levelDemoter{}
		g := &graceDemoter{next: rec, grace: 2 * time.Second}
		g.SetDemotion(confsync.DemoteSource, 50)
		time.Sleep(time.Second)
		g.SetDemotion(confsync.DemoteSource, 0)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if len(rec.calls) != 0 {
			t.Fatalf("demotions passed on for a stale second: %v", rec.calls)
		}
		g.SetDemotion(confsync.DemoteSource, 50)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		g.SetDemotion(confsync.DemoteSource, 0)
		if diff := cmp.Diff([]int{50, 0}, rec.calls); diff != "" {
			t.Errorf("demotions (-want +got):\n%s", diff)
		}
		g.SetDemotion(confsync.DemoteSource, 50)
		g.stop()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if len(rec.calls) != 2 {
			t.Errorf("a demotion passed on after stop: %v", rec.calls)
		}
	})
}

// A subscriber restarting (a reboot: the kernel lost the ruleset)
// re-applies its copy of the version confsync recorded as applied.
func TestDocumentsSubscriberRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := docTestConfig(t, dir, `{"sync": "subscribe"}`, `[]`)
	ds, _, _ := testDocuments(t, cfg)
	if err := ds.applyReceived(firewallDoc, 4, []byte("table inet fw { }\n")); err != nil {
		t.Fatal(err)
	}
	ds2, nft, _ := testDocuments(t, cfg)
	d := ds2.docs[firewallDoc]
	if err := ds2.startOne(d, 4); err != nil {
		t.Fatal(err)
	}
	if d.version != 4 || len(nft.applied) != 1 || !strings.Contains(nft.applied[0], "table inet fw { }") {
		t.Errorf("after a restart: version %d, applied %q; want version 4 re-applied", d.version, nft.applied)
	}
}

// A published file: read at start without running its command; a reload
// of a changed file runs the command with the new version and keeps it
// only if the command succeeds.
func TestDocumentsPublisherFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dhcp.conf")
	write(t, path, "one\n")
	cfg := docTestConfig(t, dir, `{}`, `[{"name": "dhcp", "path": "`+path+`", "apply": ["reload-dhcp"], "sync": "publish"}]`)
	ds, _, cmds := testDocuments(t, cfg)
	d := ds.docs["dhcp"]
	if err := ds.startOne(d, 0); err != nil {
		t.Fatal(err)
	}
	v1 := d.version
	if v1 == 0 || len(*cmds) != 0 {
		t.Fatalf("after start: version %d, commands %q", v1, *cmds)
	}
	write(t, path, "two\n")
	_, apply, err := ds.planReload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	if d.version <= v1 || len(*cmds) != 1 || !strings.Contains((*cmds)[0], "FWPAIR_VERSION="+strconv.FormatUint(d.version, 10)) {
		t.Errorf("after the reload: version %d (was %d), commands %q", d.version, v1, *cmds)
	}
	v2 := d.version

	next := docTestConfig(t, dir, `{}`, `[{"name": "dhcp", "path": "`+path+`", "apply": ["false"], "sync": "publish"}]`)
	write(t, path, "three\n")
	changes, apply, err := ds.planReload(next)
	if err != nil || len(changes) != 2 {
		t.Fatalf("reload with a new command: changes %q, err %v", changes, err)
	}
	if err := apply(); err == nil || d.version != v2 {
		t.Errorf("failing command: err %v, version %d; want an error and version %d in force", err, d.version, v2)
	}
}

// A live key rotation moves the configuration sync with the state sync:
// after the rotation's last step, a peer restarted with the new key file
// (keys derived as at start) opens what this node seals, and the reverse.
func TestDocumentsRotateKeys(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	sealer := func(node pfsync.NodeID, psk []byte) *seal.Sealer {
		t.Helper()
		keys, err := confsyncKeys([]seal.Key{{ID: sendKeyID, Secret: psk}, {ID: otherKeyID, Secret: psk}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := seal.New(seal.Config{Node: node, Boot: 1, Keys: keys, SendKeyID: sendKeyID})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ds := &documents{sealer: sealer(1, oldKey)}
	// The steps of reload_sync.go's rotation, from id 1 to id 2.
	for _, step := range []struct {
		keys []seal.Key
		send uint8
	}{
		{[]seal.Key{{ID: sendKeyID, Secret: oldKey}, {ID: otherKeyID, Secret: newKey}}, sendKeyID},
		{[]seal.Key{{ID: sendKeyID, Secret: oldKey}, {ID: otherKeyID, Secret: newKey}}, otherKeyID},
		{[]seal.Key{{ID: sendKeyID, Secret: newKey}, {ID: otherKeyID, Secret: newKey}}, otherKeyID},
	} {
		if err := ds.rotateKeys(step.keys, step.send); err != nil {
			t.Fatal(err)
		}
	}
	peer := sealer(2, newKey)
	frame, err := ds.sealer.Seal(nil, []byte("offer"))
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := peer.Open(nil, frame); err != nil || string(p) != "offer" {
		t.Errorf("restarted peer opens this node's frame: %q, %v", p, err)
	}
	frame, err = peer.Seal(nil, []byte("have"))
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := ds.sealer.Open(nil, frame); err != nil || string(p) != "have" {
		t.Errorf("this node opens the restarted peer's frame: %q, %v", p, err)
	}
	if err := (*documents)(nil).rotateKeys(nil, sendKeyID); err != nil {
		t.Errorf("no documents: %v", err)
	}
}

// A publisher restarted with a file that dropped a table deletes it: the
// transaction replaces the tables of its copy of the version in force.
func TestDocumentsPublisherRestartDropsTable(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.nft")
	write(t, rules, "table inet fw { }\ntable ip old { }\n")
	cfg := docTestConfig(t, dir, `{"ruleset": "`+rules+`", "sync": "off"}`, `[]`)
	ds, _, _ := testDocuments(t, cfg)
	if err := ds.startOne(ds.docs[firewallDoc], 0); err != nil {
		t.Fatal(err)
	}
	write(t, rules, "table inet fw { }\n")
	ds2, nft, _ := testDocuments(t, cfg)
	if err := ds2.startOne(ds2.docs[firewallDoc], 0); err != nil {
		t.Fatal(err)
	}
	if len(nft.applied) != 1 || !strings.Contains(nft.applied[0], "delete table ip old;") {
		t.Errorf("transaction after the restart %q, want it to delete table ip old", nft.applied)
	}
}

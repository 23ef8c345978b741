package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/track"
)

// reloadDaemon is a daemon as far as a reload of the groups' and
// trackers' configuration sees it: the groups "run" (their groupRun holds
// the configuration, no socket is open), the trackers run for real and
// feed a follow group with no member. It returns the daemon and a function
// that rewrites its configuration file: edit gets the example file.
func reloadDaemon(t *testing.T) (*daemon, func(edit func(string) string)) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(key, k); err != nil {
		t.Fatal(err)
	}
	conf := exampleWithFiles(t, dir, key, filepath.Join(dir, "boot"))
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// The example's trackers are replaced by none: the tests add theirs.
	base := string(orig)
	base = base[:strings.Index(base, `,
  "track": [`)] + "\n}\n"
	write := func(edit func(string) string) {
		if err := os.WriteFile(conf, []byte(edit(base)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(func(s string) string { return s })
	cfg, err := LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := carp.NewFollowGroup(nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(seal.Config{Node: 1, Boot: 1, Keys: []seal.Key{{ID: sendKeyID, Secret: k}, {ID: otherKeyID, Secret: k}}, SendKeyID: sendKeyID})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cfg: cfg, log: slog.New(slog.DiscardHandler), follow: f, syncKey: k, syncPeers: cfg.Sync.Peers, sealer: sealer}
	t.Cleanup(d.stopKeyRotation)
	var groups []*groupRun
	for _, gc := range cfg.Groups {
		groups = append(groups, &groupRun{cfg: gc, carp: cfg.CARP})
	}
	d.setRunning(groups, nil)
	t.Cleanup(func() {
		_, tracks := d.running()
		for _, tr := range tracks {
			tr.t.Close()
		}
	})
	return d, write
}

const trackFailing = `,
  "track": [{"name": "svc", "type": "script", "script": "exit 1", "interval": "1h"}]
}`

func withTrack(track string) func(string) string {
	return func(s string) string { return strings.TrimSuffix(strings.TrimSpace(s), "}") + track }
}

func TestReloadUnchanged(t *testing.T) {
	d, _ := reloadDaemon(t)
	changes, err := d.reload("test")
	if err != nil || strings.Join(changes, ",") != "none" {
		t.Errorf("reload of the same file: %q, %v; want none", changes, err)
	}
}

// A change that cannot be applied live is refused, naming the key, and
// nothing of the file is applied: not even the tracker it also adds.
func TestReloadRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		edit       func(string) string
		wantErrKey string
	}{
		{"node", func(s string) string { return strings.Replace(s, `"node": 1`, `"node": 3`, 1) },
			"node 3 cannot change while fwpair runs (running with 1)"},
		{"control socket", func(s string) string {
			return strings.Replace(s, `/run/fwpair/fwpair.sock`, `/run/other.sock`, 1)
		}, `control_socket "/run/other.sock" cannot change`},
		{"group interface", func(s string) string {
			return strings.Replace(s, `"interface": "lan0"`, `"interface": "lan1"`, 1)
		}, `groups[0].interface "lan1": the group with vhid 1 runs on "lan0"`},
		{"group family", func(s string) string {
			return strings.Replace(s, `["10.1.0.254"]`, `["10.1.0.254", "fd00::254"]`, 1)
		}, `groups[0].addresses [10.1.0.254 fd00::254]: the group sends on IPv4`},
		{"sync local", func(s string) string { return strings.Replace(s, `10.9.0.1:7240`, `10.9.0.3:7240`, 1) },
			`sync.local "10.9.0.3:7240" cannot change while fwpair runs (running with "10.9.0.1:7240")`},
		{"conntrack", func(s string) string { return strings.Replace(s, `"assured_only": false`, `"assured_only": true`, 1) },
			`conntrack {"protocols":["tcp","udp","icmp"],"assured_only":true`},
		{"invalid file", func(s string) string { return strings.Replace(s, `"vhid": 2`, `"vhid": 0`, 1) },
			"groups[1].vhid 0 out of range 1-255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, write := reloadDaemon(t)
			write(func(s string) string { return withTrack(trackFailing)(tc.edit(s)) })
			changes, err := d.reload("test")
			if err == nil || !strings.Contains(err.Error(), tc.wantErrKey) {
				t.Errorf("reload: %q, error %v; want %q", changes, err, tc.wantErrKey)
			}
			if _, tracks := d.running(); len(tracks) != 0 {
				t.Errorf("a refused reload started %d trackers", len(tracks))
			}
		})
	}
}

// A new key in sync.key_file is rotated in: accepted at once under the
// other key id, sealing after syncKeyRollover, the old key dropped after
// twice that; the same key under another path is not a change, and a new
// key while a rotation runs is refused, naming the key.
func TestReloadSyncKeyRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, write := reloadDaemon(t)
		other := filepath.Join(t.TempDir(), "copy.key")
		b, err := os.ReadFile(d.cfg.Sync.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(other, b, 0o600); err != nil {
			t.Fatal(err)
		}
		write(func(s string) string { return strings.Replace(s, d.cfg.Sync.KeyFile, other, 1) })
		if changes, err := d.reload("test"); err != nil || strings.Join(changes, ",") != "none" {
			t.Errorf("same key, other path: %q, %v; want none", changes, err)
		}
		newKey := func() {
			t.Helper()
			k, err := seal.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(other); err != nil {
				t.Fatal(err)
			}
			if err := seal.WriteKeyFile(other, k); err != nil {
				t.Fatal(err)
			}
		}
		keyIDs := func() string {
			ids, send := d.sealer.KeyIDs()
			return fmt.Sprintf("accepted %v, send %d", ids, send)
		}
		oldKey := d.syncKey
		// opens reports whether d opens a frame of a peer node holding
		// key under both ids and sealing with id send.
		opens := func(node pfsync.NodeID, key []byte, send uint8) error {
			t.Helper()
			peer, err := seal.New(seal.Config{Node: node, Boot: 1, Keys: []seal.Key{{ID: 1, Secret: key}, {ID: 2, Secret: key}}, SendKeyID: send})
			if err != nil {
				t.Fatal(err)
			}
			f, err := peer.Seal(nil, []byte("frame"))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = d.sealer.Open(nil, f)
			return err
		}
		newKey()
		rotated, err := seal.LoadKeyFile(other)
		if err != nil {
			t.Fatal(err)
		}
		changes, err := d.reload("test")
		if err != nil || len(changes) != 1 || !strings.Contains(changes[0], "new key (id 2), sealing with it in 30s") {
			t.Fatalf("new key: %q, %v", changes, err)
		}
		if got := keyIDs(); got != "accepted [1 2], send 1" {
			t.Errorf("step 1: %s", got)
		}
		if err := opens(2, oldKey, 1); err != nil {
			t.Errorf("step 1: a peer not yet reloaded is refused: %v", err)
		}
		if err := opens(3, rotated, 2); err != nil {
			t.Errorf("step 1: a peer in step 2 is refused: %v", err)
		}
		newKey()
		if _, err := d.reload("test"); err == nil || !strings.Contains(err.Error(), "while the rotation to the previous one runs") {
			t.Errorf("new key during a rotation: %v", err)
		}
		time.Sleep(syncKeyRollover)
		synctest.Wait()
		if got := keyIDs(); got != "accepted [1 2], send 2" {
			t.Errorf("step 2: %s", got)
		}
		time.Sleep(syncKeyRollover)
		synctest.Wait()
		if got := keyIDs(); got != "accepted [1 2], send 2" {
			t.Errorf("step 3: %s", got)
		}
		if err := opens(4, oldKey, 1); err == nil {
			t.Error("step 3: the old key is still accepted")
		}
		if err := opens(5, rotated, 1); err != nil {
			t.Errorf("step 3: a peer started with the new key (id 1) is refused: %v", err)
		}
		// The rotation is over: the key written during it is taken now,
		// from id 2 to id 1.
		if changes, err := d.reload("test"); err != nil || !strings.Contains(strings.Join(changes, ""), "new key (id 1)") {
			t.Errorf("second rotation: %q, %v", changes, err)
		}
	})
}

// The groups' planner lists every live change of a running group.
func TestReloadPlanGroups(t *testing.T) {
	d, write := reloadDaemon(t)
	write(func(s string) string {
		s = strings.Replace(s, `"advskew": 0`, `"advskew": 50`, 1)
		s = strings.Replace(s, `"s3cret-carp"`, `"new-secret"`, 1)
		s = strings.Replace(s, `["10.1.0.254"]`, `["10.1.0.254", "10.1.0.253"], "peers": ["10.1.0.2"]`, 1)
		return strings.Replace(s, `"name": "wan"`, `"name": "uplink"`, 1)
	})
	next, err := LoadConfig(d.cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planGroups(d, next)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(p.changes, "\n")
	for _, want := range []string{
		"groups[0].addresses: +10.1.0.253 (group lan)",
		"carp.advskew 50 (group lan)",
		"carp.advskew 50 (group uplink)",
		"carp.password changed (old and new key both accepted for the rollover window) (group lan)",
		"groups[0].peers [10.1.0.2] (group lan, was [])",
		`groups[1].name "uplink" (was "wan")`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "groups[1].addresses") {
		t.Errorf("an unchanged address set listed:\n%s", got)
	}

	// A vhid no longer listed is removed, a new one added (its interface
	// must exist: the loopback does).
	write(func(s string) string {
		return strings.Replace(s, `{"name": "wan", "vhid": 2, "interface": "wan0", "addresses": ["10.2.0.254"]}`,
			`{"name": "mgmt", "vhid": 3, "interface": "lo", "addresses": ["10.3.0.254"]}`, 1)
	})
	if next, err = LoadConfig(d.cfg.File); err != nil {
		t.Fatal(err)
	}
	if p, err = planGroups(d, next); err != nil {
		t.Fatal(err)
	}
	want := "groups[1]: new group mgmt (vhid 3 on lo, addresses [10.3.0.254])\ngroup wan removed (vhid 2 on wan0)"
	if got := strings.Join(p.changes, "\n"); got != want {
		t.Errorf("changes:\n%s\nwant:\n%s", got, want)
	}
	// A new group on an interface that does not exist is refused.
	write(func(s string) string {
		return strings.Replace(s, `"vhid": 2, "interface": "wan0"`, `"vhid": 4, "interface": "nosuch0"`, 1)
	})
	if _, err := d.reload("test"); err == nil || !strings.Contains(err.Error(), `groups[1].interface "nosuch0"`) {
		t.Errorf("a group moved to a missing interface: %v", err)
	}
}

// Trackers follow the file: added, changed (restarted), removed; a removed
// tracker is closed, which clears its demotion.
func TestReloadTrackers(t *testing.T) {
	d, write := reloadDaemon(t)
	write(withTrack(trackFailing))
	changes, err := d.reload("test")
	if err != nil || strings.Join(changes, ",") != "track[0] svc added (script)" {
		t.Fatalf("add: %q, %v", changes, err)
	}
	_, tracks := d.running()
	if len(tracks) != 1 {
		t.Fatalf("%d trackers run, want 1", len(tracks))
	}
	first := tracks[0].t

	write(withTrack(strings.Replace(trackFailing, `"interval": "1h"`, `"interval": "1h", "weight": 10`, 1)))
	if changes, err := d.reload("test"); err != nil || strings.Join(changes, ",") != "track[0] svc changed (restarted)" {
		t.Fatalf("change: %q, %v", changes, err)
	}
	_, tracks = d.running()
	if len(tracks) != 1 || tracks[0].t == first || tracks[0].cfg.Weight != 10 {
		t.Fatalf("after the change: %+v", tracks)
	}
	if err := first.Start(); !errors.Is(err, track.ErrClosed) {
		t.Errorf("the replaced tracker still runs: Start = %v", err)
	}
	second := tracks[0].t

	write(func(s string) string { return s })
	if changes, err := d.reload("test"); err != nil || strings.Join(changes, ",") != "track svc removed (its demotion cleared)" {
		t.Fatalf("remove: %q, %v", changes, err)
	}
	if _, tracks := d.running(); len(tracks) != 0 {
		t.Errorf("%d trackers after removal", len(tracks))
	}
	if err := second.Start(); !errors.Is(err, track.ErrClosed) {
		t.Errorf("the removed tracker still runs: Start = %v", err)
	}
}

// A change of sync.peers is planned node by node: the removed, the added,
// and a node whose address changed (both lines, same node).
func TestReloadPlanSyncPeers(t *testing.T) {
	d, write := reloadDaemon(t)
	write(func(s string) string {
		return strings.Replace(s, `"peers": [{"node": 2, "address": "10.9.0.2:7240"}]`,
			`"peers": [{"node": 3, "address": "10.9.0.3:7240"}, {"node": 4, "address": "10.9.0.4"}]`, 1)
	})
	next, err := LoadConfig(d.cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planSync(d, next)
	if err != nil {
		t.Fatal(err)
	}
	want := "sync.peers: -node 2 10.9.0.2:7240\nsync.peers: +node 3 10.9.0.3:7240\nsync.peers: +node 4 10.9.0.4"
	if got := strings.Join(p.changes, "\n"); got != want {
		t.Errorf("changes:\n%s\nwant:\n%s", got, want)
	}
}

package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// Roles of a replicated document (firewall.sync, files[i].sync).
const (
	syncOff       = "off"
	syncPublish   = "publish"
	syncSubscribe = "subscribe"
)

// firewallDoc is the name under which the firewall ruleset is replicated.
const firewallDoc = "firewall"

// defaultApplyTimeout bounds a file's apply command.
const defaultApplyTimeout = 30 * time.Second

// maxFiles bounds the files list.
const maxFiles = 32

// FirewallConfig is the firewall section: the nftables ruleset fwpair
// applies (firewall.go) and replicates.
type FirewallConfig struct {
	// Ruleset is the nftables file. Required with sync "publish" and
	// "off"; with "subscribe" it is what the node applies until it has
	// received a version (it is never overwritten).
	Ruleset string `json:"ruleset,omitempty"`
	// Sync is "publish", "subscribe" or "off" (the default).
	Sync string `json:"sync,omitempty"`
}

// FileConfig is one entry of files: a document replicated as a file.
type FileConfig struct {
	// Name identifies the document on both nodes (paths may differ).
	Name string `json:"name"`
	// Path is the file: read on the publisher, replaced atomically on a
	// subscriber.
	Path string `json:"path"`
	// Apply is the command (argv, no shell) run after the file changed:
	// on a subscriber after each version is written, on the publisher
	// when a reload finds the file changed. Empty runs nothing.
	Apply []string `json:"apply,omitempty"`
	// ApplyTimeout bounds Apply; zero means 30s.
	ApplyTimeout Duration `json:"apply_timeout,omitzero"`
	// Sync is "publish", "subscribe" or "off".
	Sync string `json:"sync"`
}

// ConfigSyncConfig configures the replication of the firewall ruleset and
// the files (package confsync) over the sync link.
type ConfigSyncConfig struct {
	// Port is the UDP port of the configuration sync on every node;
	// zero means sync.local's port + 1.
	Port uint16 `json:"port,omitempty"`
	// StateDir holds the versions this node published or applied and a
	// copy of each document in force; empty means the directory of
	// sync.boot_file.
	StateDir string `json:"state_dir,omitempty"`
	// From is the node that publishes what this node subscribes to; zero
	// means the only entry of sync.peers.
	From uint32 `json:"from,omitempty"`
	// Demote holds the groups demoted while a subscribed document failed
	// to apply or is older than the one its publisher offers; nil means
	// true.
	Demote *bool `json:"demote,omitempty"`
}

// docConfig is one replicated or applied document, firewall or file, as
// the runtime (documents.go) sees it.
type docConfig struct {
	name    string
	role    string
	path    string
	file    *FileConfig // nil for the firewall ruleset
	isRules bool
}

// docConfigs lists the documents of c: the ruleset first, then the files.
// Entries with sync "off" and nothing to apply are left out.
func (c *Config) docConfigs() []docConfig {
	var out []docConfig
	if fw := c.Firewall; fw.Ruleset != "" || fw.Sync == syncSubscribe {
		out = append(out, docConfig{name: firewallDoc, role: fw.Sync, path: fw.Ruleset, isRules: true})
	}
	for i := range c.Files {
		f := &c.Files[i]
		if f.Sync != syncOff {
			out = append(out, docConfig{name: f.Name, role: f.Sync, path: f.Path, file: f})
		}
	}
	return out
}

// demoteOnStale is config_sync.demote with its default.
func (cs *ConfigSyncConfig) demoteOnStale() bool { return cs.Demote == nil || *cs.Demote }

func checkSyncRole(field, v string, allowEmpty bool) error {
	switch v {
	case syncPublish, syncSubscribe, syncOff:
		return nil
	case "":
		if allowEmpty {
			return nil
		}
	}
	return fmt.Errorf("%s %q not one of publish, subscribe, off", field, v)
}

// validDocName reports whether n can name a document and the file that
// keeps its copy in config_sync.state_dir.
func validDocName(n string) bool {
	if n == "" || len(n) > 64 || n[0] == '.' {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// validateDocuments checks the firewall, files and config_sync sections
// and fills in their defaults. It runs after the sync section's checks.
func (c *Config) validateDocuments() error {
	fw := &c.Firewall
	if err := checkSyncRole("firewall.sync", fw.Sync, true); err != nil {
		return err
	}
	if fw.Sync == "" && fw.Ruleset != "" {
		fw.Sync = syncOff
	}
	if fw.Ruleset != "" && !filepath.IsAbs(fw.Ruleset) {
		return fmt.Errorf("firewall.ruleset %q is not an absolute path", fw.Ruleset)
	}
	if fw.Sync == syncPublish && fw.Ruleset == "" {
		return fmt.Errorf("firewall.ruleset required with firewall.sync publish")
	}
	if len(c.Files) > maxFiles {
		return rangeErr("files: count", len(c.Files), fmt.Sprintf("0-%d", maxFiles))
	}
	names := map[string]bool{firewallDoc: true}
	paths := map[string]string{}
	if fw.Ruleset != "" {
		paths[filepath.Clean(fw.Ruleset)] = "firewall.ruleset"
	}
	for i := range c.Files {
		f := &c.Files[i]
		where := fmt.Sprintf("files[%d]", i)
		if !validDocName(f.Name) {
			return fmt.Errorf("%s.name %q is not a document name (1-64 of a-z A-Z 0-9 . _ -, not starting with '.')", where, f.Name)
		}
		if names[f.Name] {
			return fmt.Errorf("%s.name %q used twice (%q is the firewall ruleset's)", where, f.Name, firewallDoc)
		}
		names[f.Name] = true
		if !filepath.IsAbs(f.Path) {
			return fmt.Errorf("%s.path %q is not an absolute path", where, f.Path)
		}
		if other, ok := paths[filepath.Clean(f.Path)]; ok {
			return fmt.Errorf("%s.path %q is also %s", where, f.Path, other)
		}
		paths[filepath.Clean(f.Path)] = where + ".path"
		if err := checkSyncRole(where+".sync", f.Sync, false); err != nil {
			return err
		}
		if len(f.Apply) > 0 && f.Apply[0] == "" {
			return fmt.Errorf("%s.apply[0] empty; want a command", where)
		}
		if f.ApplyTimeout.Duration == 0 {
			f.ApplyTimeout.Duration = defaultApplyTimeout
		}
		if d := f.ApplyTimeout.Duration; d < 100*time.Millisecond || d > 10*time.Minute {
			return rangeErr(where+".apply_timeout", d, "100ms-10m")
		}
	}

	cs := &c.ConfigSync
	if len(c.docConfigs()) == 0 && *cs == (ConfigSyncConfig{}) {
		return nil // no document: no defaults to show in -check
	}
	local, _ := parseAddrPort(c.Sync.Local) // validated
	if cs.Port == 0 {
		if local.Port() == 65535 {
			return fmt.Errorf("config_sync.port 0 with sync.local port 65535: set config_sync.port")
		}
		cs.Port = local.Port() + 1
	}
	for i, p := range c.Sync.Peers {
		if ap, _ := parseAddrPort(p.Address); ap.Port() == cs.Port {
			return fmt.Errorf("config_sync.port %d is sync.peers[%d]'s port; want a port of its own", cs.Port, i)
		}
	}
	if cs.Port == local.Port() {
		return fmt.Errorf("config_sync.port %d is sync.local's port; want a port of its own", cs.Port)
	}
	if cs.StateDir == "" {
		cs.StateDir = filepath.Dir(c.Sync.BootFile)
	}
	if !filepath.IsAbs(cs.StateDir) {
		return fmt.Errorf("config_sync.state_dir %q is not an absolute path", cs.StateDir)
	}
	if cs.From == 0 {
		if c.subscribes() && len(c.Sync.Peers) != 1 {
			return fmt.Errorf("config_sync.from required with %d sync peers: which node publishes", len(c.Sync.Peers))
		}
		if len(c.Sync.Peers) == 1 {
			cs.From = c.Sync.Peers[0].Node
		}
	} else {
		found := false
		for _, p := range c.Sync.Peers {
			found = found || p.Node == cs.From
		}
		if !found {
			return fmt.Errorf("config_sync.from %d is not a node of sync.peers", cs.From)
		}
	}
	return nil
}

// subscribes reports whether c subscribes to any document.
func (c *Config) subscribes() bool {
	for _, d := range c.docConfigs() {
		if d.role == syncSubscribe {
			return true
		}
	}
	return false
}

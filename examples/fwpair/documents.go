package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/internal/atomicfile"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/pfsync/udp"
)

// The documents are the firewall ruleset and the files list. Each has a
// role: "publish" (this node reads its file, applies it and offers every
// version to the subscribers), "subscribe" (this node applies what the
// publisher sends) or "off" (the ruleset alone: applied, not replicated).
//
// config_sync.state_dir keeps, per document, a copy of the version in
// force (fwpair-doc-NAME): a subscriber re-applies it at start (after a
// reboot the kernel has lost the ruleset, but confsync remembers the
// version as applied and would not fetch it again), and a publisher whose
// file no longer passes nft -c at start falls back to it, still publishing
// the last good version.

// docCopyPrefix names the copies in config_sync.state_dir.
const docCopyPrefix = "fwpair-doc-"

// confsyncStateFile is confsync's record of applied versions in
// config_sync.state_dir.
const confsyncStateFile = "fwpair-confsync.json"

// documents runs the documents of one daemon.
type documents struct {
	cfg      *Config
	log      *slog.Logger
	nft      nftRunner // nil when no ruleset is configured
	dir      string
	versions *versionStore
	node     *confsync.Node // nil when nothing is replicated
	demoter  *graceDemoter  // config_sync.demote; nil when off
	sealer   *seal.Sealer   // the node's; nil when nothing is replicated
	tr       *udp.Unicast   // the node's transport (it owns it)
	runCmd   func(ctx context.Context, argv []string, env []string) error

	op    sync.Mutex // serialises applies and reloads
	mu    sync.Mutex // guards the fields of docs (written holding op too)
	docs  map[string]*docState
	order []string
}

// docState is what this node has of one document.
type docState struct {
	docConfig
	version uint64 // in force (publisher: also published)
	data    []byte // the version in force, nil if none
	err     string // last local error: refused ruleset, failed apply
	errAt   time.Time
}

// openDocuments prepares the documents of cfg and applies at once what
// this node applies from its own files and copies; the configuration sync
// starts with start. boot is the boot counter the state sync's sealer uses.
// demoter is held demoted while a subscribed document is stale or failed
// (config_sync.demote).
func openDocuments(cfg *Config, boot uint32, demoter pfsync.Demoter, log *slog.Logger) (*documents, error) {
	ds := &documents{cfg: cfg, log: log, dir: cfg.ConfigSync.StateDir, docs: map[string]*docState{}, runCmd: runCommand}
	dcs := cfg.docConfigs()
	if len(dcs) == 0 {
		return ds, nil
	}
	for _, dc := range dcs {
		if dc.isRules {
			path, err := exec.LookPath("nft")
			if err != nil {
				return nil, fmt.Errorf("firewall.ruleset needs the nft binary: %w", err)
			}
			ds.nft = execNft(path)
		}
		ds.docs[dc.name] = &docState{docConfig: dc}
		ds.order = append(ds.order, dc.name)
	}
	var err error
	if ds.versions, err = loadVersions(ds.dir); err != nil {
		return nil, err
	}
	// A subscribed ruleset whose copy is gone (a wiped state directory)
	// cannot be re-applied, and confsync, which remembers its version as
	// applied, would not fetch it again: forget what was applied, so that
	// every subscribed document is fetched and applied anew.
	if d := ds.docs[firewallDoc]; d != nil && d.role == syncSubscribe {
		if _, err := os.Stat(ds.copyPath(firewallDoc)); errors.Is(err, fs.ErrNotExist) {
			if err := os.Remove(filepath.Join(ds.dir, confsyncStateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("config_sync: %w", err)
			}
		}
	}
	if err := ds.openNode(boot, demoter); err != nil {
		return nil, err
	}
	var applied map[string]uint64
	if ds.node != nil {
		applied = map[string]uint64{}
		for _, st := range ds.node.Status() {
			applied[st.Name] = st.Version
		}
	}
	for _, name := range ds.order {
		if err := ds.startOne(ds.docs[name], applied[name]); err != nil {
			return nil, errors.Join(err, ds.close())
		}
	}
	return ds, nil
}

// openNode creates the confsync node when a document is replicated.
func (ds *documents) openNode(boot uint32, demoter pfsync.Demoter) error {
	cfg := ds.cfg
	var pub []string
	sub := map[string]pfsync.NodeID{}
	for _, name := range ds.order {
		switch d := ds.docs[name]; d.role {
		case syncPublish:
			pub = append(pub, name)
		case syncSubscribe:
			sub[name] = pfsync.NodeID(cfg.ConfigSync.From)
		}
	}
	if len(pub) == 0 && len(sub) == 0 {
		return nil
	}
	psk, err := seal.LoadKeyFile(cfg.Sync.KeyFile)
	if err != nil {
		return err
	}
	// The key ids are the state sync's (daemon.go), so that a live key
	// rotation (reload_sync.go) moves both protocols in step.
	keys, err := confsyncKeys([]seal.Key{{ID: sendKeyID, Secret: psk}, {ID: otherKeyID, Secret: psk}})
	if err != nil {
		return err
	}
	sealer, err := seal.New(seal.Config{
		Node: pfsync.NodeID(cfg.Node), Boot: boot, Keys: keys, SendKeyID: sendKeyID, Logger: ds.log,
	})
	if err != nil {
		return err
	}
	ds.sealer = sealer
	port := cfg.ConfigSync.Port
	local, _ := parseAddrPort(cfg.Sync.Local) // validated
	peers := map[pfsync.NodeID]netip.AddrPort{}
	for _, p := range cfg.Sync.Peers {
		ap, _ := parseAddrPort(p.Address)
		peers[pfsync.NodeID(p.Node)] = netip.AddrPortFrom(ap.Addr(), port)
	}
	tr, err := udp.NewUnicast(udp.UnicastConfig{Local: netip.AddrPortFrom(local.Addr(), port), Interface: cfg.Sync.Interface, Peers: peers})
	if err != nil {
		return fmt.Errorf("config_sync: %w", err)
	}
	ds.tr = tr
	cc := confsync.Config{
		Node: pfsync.NodeID(cfg.Node), Transport: tr, Sealer: sealer,
		Publish: pub, Subscribe: sub, Apply: ds.applyReceived,
		StateFile: filepath.Join(ds.dir, confsyncStateFile), Logger: ds.log,
	}
	if len(sub) > 0 {
		if cfg.ConfigSync.demoteOnStale() {
			ds.demoter = &graceDemoter{next: demoter, grace: demoteGrace}
			cc.Demoter = ds.demoter
		}
	} else {
		cc.Subscribe, cc.Apply = nil, nil
	}
	if ds.node, err = confsync.New(cc); err != nil {
		return errors.Join(err, tr.Close())
	}
	return nil
}

// startOne brings one document into force at start. applied is the
// version confsync recorded as applied (subscribers).
func (ds *documents) startOne(d *docState, applied uint64) error {
	cp, cpErr := os.ReadFile(ds.copyPath(d.name))
	if cpErr != nil && !errors.Is(cpErr, fs.ErrNotExist) {
		return fmt.Errorf("document %s: %w", d.name, cpErr)
	}
	haveCopy := cpErr == nil
	switch d.role {
	case syncSubscribe:
		if !d.isRules { // the file in place is the last version written
			d.version = applied
			return nil
		}
		switch {
		case haveCopy && applied != 0:
			if err := applyRuleset(ds.nft, cp, nil); err != nil {
				ds.failed(d, fmt.Errorf("re-applying received version %d: %w", applied, err))
				return nil
			}
			d.version, d.data = applied, cp
			ds.log.Info("fwpair: firewall ruleset re-applied", "document", d.name, "version", applied)
		case d.path != "":
			rules, err := os.ReadFile(d.path)
			if err == nil {
				err = applyRuleset(ds.nft, rules, nil)
			}
			if err != nil {
				ds.failed(d, fmt.Errorf("firewall.ruleset %s (until the publisher's arrives): %w", d.path, err))
				return nil
			}
			d.data = rules
			ds.log.Info("fwpair: firewall ruleset applied from the local file until the publisher's arrives", "document", d.name, "path", d.path)
		default:
			ds.log.Warn("fwpair: no firewall ruleset in force until the publisher's arrives (set firewall.ruleset to have one from the start)", "document", d.name)
		}
		return nil
	}
	// publish or off: this node's own file, replacing the tables of the
	// version in force before the restart too (a table dropped from the
	// file meanwhile goes).
	data, err := os.ReadFile(d.path)
	if err == nil && d.isRules {
		err = applyRuleset(ds.nft, data, cp)
	}
	if err != nil {
		v, _ := ds.versions.get(d.name)
		if !haveCopy || v == 0 {
			return fmt.Errorf("document %s: %w", d.name, err)
		}
		ds.failed(d, fmt.Errorf("%s refused, the last good version %d stays in force: %w", d.path, v, err))
		if d.isRules {
			if err := applyRuleset(ds.nft, cp, nil); err != nil {
				return fmt.Errorf("document %s: last good version %d: %w", d.name, v, err)
			}
		}
		data = cp
	}
	return ds.install(d, data)
}

// install makes data the version in force of d (publisher or off): it
// gets its version, its copy, and is published.
func (ds *documents) install(d *docState, data []byte) error {
	v, err := ds.versions.next(d.name, sha256.Sum256(data))
	if err != nil {
		return err
	}
	if err := atomicfile.Write(ds.copyPath(d.name), data); err != nil {
		return fmt.Errorf("document %s: keeping a copy: %w", d.name, err)
	}
	ds.mu.Lock()
	d.version, d.data = v, data
	ds.mu.Unlock()
	if d.role == syncPublish && ds.node != nil {
		if err := ds.node.Publish(d.name, v, data); err != nil {
			return err
		}
	}
	ds.log.Info("fwpair: document in force", "document", d.name, "version", v, "role", d.role, "bytes", len(data))
	return nil
}

func (ds *documents) copyPath(name string) string {
	return filepath.Join(ds.dir, docCopyPrefix+name)
}

// failed records and logs a local error of d.
func (ds *documents) failed(d *docState, err error) {
	ds.mu.Lock()
	d.err, d.errAt = err.Error(), time.Now()
	ds.mu.Unlock()
	ds.log.Error("fwpair: document", "document", d.name, "err", err)
}

// start starts the configuration sync (a subscriber asks at once for
// what is newer).
func (ds *documents) start() {
	if ds.node != nil {
		ds.node.Start()
	}
}

// close stops the configuration sync.
func (ds *documents) close() error {
	if ds == nil || ds.node == nil {
		return nil
	}
	err := ds.node.Close()
	if ds.demoter != nil {
		ds.demoter.stop()
	}
	return err
}

// applyReceived is confsync's Apply on a subscriber: the ruleset through
// nft -c and one transaction, a file replaced atomically and its apply
// command run (the previous content is put back if the command fails).
func (ds *documents) applyReceived(name string, version uint64, data []byte) error {
	ds.op.Lock()
	defer ds.op.Unlock()
	d := ds.docs[name]
	if d == nil {
		return fmt.Errorf("fwpair: document %s not configured", name)
	}
	var err error
	if d.isRules {
		err = applyRuleset(ds.nft, data, d.data)
	} else {
		err = ds.replaceFile(d, version, data)
	}
	if err != nil {
		ds.failed(d, fmt.Errorf("version %d from node %d not applied: %w", version, ds.cfg.ConfigSync.From, err))
		return err
	}
	if d.isRules {
		if cerr := atomicfile.Write(ds.copyPath(name), data); cerr != nil {
			// In force, but a reboot would re-apply the previous copy
			// without fetching this version again: say so.
			ds.failed(d, fmt.Errorf("version %d applied, copy not kept: %w", version, cerr))
		}
	}
	ds.mu.Lock()
	d.version, d.data, d.err = version, data, ""
	ds.mu.Unlock()
	ds.log.Info("fwpair: document applied", "document", name, "version", version, "bytes", len(data))
	return nil
}

// replaceFile writes data over d's file atomically and runs its apply
// command; if the command fails, the previous content is written back and
// the command run again.
func (ds *documents) replaceFile(d *docState, version uint64, data []byte) error {
	prev, perr := os.ReadFile(d.path)
	if err := atomicfile.Write(d.path, data); err != nil {
		return err
	}
	err := ds.runApply(d, version)
	if err == nil {
		return nil
	}
	if perr != nil { // nothing to put back
		return err
	}
	if rerr := atomicfile.Write(d.path, prev); rerr != nil {
		return errors.Join(err, fmt.Errorf("putting back the previous content: %w", rerr))
	}
	if rerr := ds.runApply(d, d.version); rerr != nil {
		return errors.Join(err, fmt.Errorf("previous content put back, its apply failed too: %w", rerr))
	}
	return fmt.Errorf("%w; previous content put back", err)
}

// runApply runs d's apply command, if any.
func (ds *documents) runApply(d *docState, version uint64) error {
	if d.file == nil || len(d.file.Apply) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.file.ApplyTimeout.Duration)
	defer cancel()
	env := []string{"FWPAIR_DOCUMENT=" + d.name, "FWPAIR_PATH=" + d.path, "FWPAIR_VERSION=" + strconv.FormatUint(version, 10)}
	return ds.runCmd(ctx, d.file.Apply, env)
}

// runCommand runs argv with env added to fwpair's environment; its error
// quotes the end of what the command wrote.
func runCommand(ctx context.Context, argv []string, env []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(out.Bytes())
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		return fmt.Errorf("%s: %w: %s", argv[0], err, msg)
	}
	return nil
}

// docChange is one document a reload brings into force.
type docChange struct {
	d    *docState
	data []byte
}

// planReload is the documents' part of a reload (reload.go): it re-reads
// the files of the documents this node publishes or applies from its own
// files and finds those that changed. A changed ruleset must pass nft -c
// here: one that does not refuses the whole reload (nothing changes, the
// version in force stays published, -status shows why). Roles, names,
// paths and config_sync cannot change without a restart. The returned
// apply brings the changed documents into force (a ruleset in one nft
// transaction, a file through its apply command) and publishes each with a
// new version; a document that fails there keeps its version in force.
func (ds *documents) planReload(next *Config) (changes []string, apply func() error, err error) {
	if err := sameDocuments(ds.cfg, next); err != nil {
		return nil, nil, err
	}
	ds.op.Lock()
	defer ds.op.Unlock()
	files := map[string]*FileConfig{}
	for _, dc := range next.docConfigs() {
		if dc.file != nil {
			files[dc.name] = dc.file
		}
	}
	var todo []docChange
	var refused []error
	for _, name := range ds.order {
		d := ds.docs[name]
		if d.role == syncSubscribe {
			continue
		}
		data, err := os.ReadFile(d.path)
		if err == nil && d.data != nil && bytes.Equal(data, d.data) {
			continue
		}
		if err == nil && d.isRules {
			err = checkRulesetOver(ds.nft, data, d.data)
		}
		if err != nil {
			err = fmt.Errorf("%s %s refused, version %d stays in force: %w", docKey(d), d.path, d.version, err)
			ds.failed(d, err)
			refused = append(refused, err)
			continue
		}
		todo = append(todo, docChange{d: d, data: data})
		changes = append(changes, fmt.Sprintf("%s %s: changed (%d bytes), published with a new version", docKey(d), d.path, len(data)))
	}
	if err := errors.Join(refused...); err != nil {
		return nil, nil, err
	}
	for _, name := range ds.order {
		if d, f := ds.docs[name], files[name]; d.file != nil && f != nil && !reflect.DeepEqual(*d.file, *f) {
			changes = append(changes, fmt.Sprintf("files[%s]: apply command or timeout changed", name))
		}
	}
	apply = func() error {
		ds.op.Lock()
		defer ds.op.Unlock()
		ds.mu.Lock()
		for _, d := range ds.docs {
			if f := files[d.name]; f != nil {
				d.file = f // apply command and timeout may change
			}
		}
		ds.cfg = next
		ds.mu.Unlock()
		var errs []error
		for _, c := range todo {
			if err := ds.bringIntoForce(c.d, c.data); err != nil {
				err = fmt.Errorf("%s %s: version %d stays in force: %w", docKey(c.d), c.d.path, c.d.version, err)
				ds.failed(c.d, err)
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return changes, apply, nil
}

// bringIntoForce applies data as d's new version and publishes it.
func (ds *documents) bringIntoForce(d *docState, data []byte) error {
	var err error
	if d.isRules {
		err = applyRuleset(ds.nft, data, d.data)
	} else {
		// The version first, for the command's FWPAIR_VERSION: one lost
		// to a failed command leaves a gap, and versions only need to grow.
		var v uint64
		if v, err = ds.versions.next(d.name, sha256.Sum256(data)); err == nil {
			err = ds.runApply(d, v)
		}
	}
	if err != nil {
		return err
	}
	if err := ds.install(d, data); err != nil {
		return err
	}
	ds.mu.Lock()
	d.err = ""
	ds.mu.Unlock()
	return nil
}

// docKey names d's key in the configuration file.
func docKey(d *docState) string {
	if d.isRules {
		return "firewall.ruleset"
	}
	return "files[" + d.name + "]"
}

// sameDocuments refuses a reload that changes what needs a restart.
func sameDocuments(old, cfg *Config) error {
	a, b := old.docConfigs(), cfg.docConfigs()
	key := func(dcs []docConfig) []string {
		var out []string
		for _, d := range dcs {
			out = append(out, d.name+"\x00"+d.role+"\x00"+d.path)
		}
		return out
	}
	if !slices.Equal(key(a), key(b)) {
		return errors.New("firewall or files: documents, roles or paths changed; restart fwpair to change them")
	}
	oc, nc := old.ConfigSync, cfg.ConfigSync
	fromChanged := oc.From != nc.From && old.subscribes() // the publisher of what this node receives
	if oc.Port != nc.Port || oc.StateDir != nc.StateDir || fromChanged || oc.demoteOnStale() != nc.demoteOnStale() {
		return errors.New("config_sync changed; restart fwpair to change it")
	}
	return nil
}

// planDocuments is the reload section of the firewall ruleset and the
// files (documents.planReload).
func planDocuments(d *daemon, next *Config) (*sectionPlan, error) {
	if d.docs == nil {
		return nil, nil
	}
	changes, apply, err := d.docs.planReload(next)
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	return &sectionPlan{changes: changes, apply: apply}, nil
}

// demoteGrace is how long a subscribed document must stay stale or failed
// before config_sync.demote demotes the node. A reload on the publisher
// makes every subscriber stale for the ~100 ms of the transfer and apply;
// demoting at once would make a MASTER subscriber hand its groups to the
// publisher on every reload there.
const demoteGrace = 2 * time.Second

// graceDemoter passes a demotion on to next once it has lasted
// demoteGrace; a cleared one is cleared at once.
type graceDemoter struct {
	next  pfsync.Demoter
	grace time.Duration

	mu     sync.Mutex
	timer  *time.Timer
	passed bool // next has the demotion
}

// SetDemotion implements pfsync.Demoter.
func (g *graceDemoter) SetDemotion(source string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if n == 0 {
		if g.passed {
			g.passed = false
			g.next.SetDemotion(source, 0)
		}
		return
	}
	if g.passed {
		g.next.SetDemotion(source, n)
		return
	}
	var t *time.Timer
	t = time.AfterFunc(g.grace, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.timer != t { // cleared or replaced meanwhile
			return
		}
		g.timer, g.passed = nil, true
		g.next.SetDemotion(source, n)
	})
	g.timer = t
}

// stop cancels a pending demotion (at shutdown).
func (g *graceDemoter) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// confsyncKeys derives the configuration sync's keys from the state
// sync's, id for id.
func confsyncKeys(keys []seal.Key) ([]seal.Key, error) {
	out := make([]seal.Key, len(keys))
	for i, k := range keys {
		d, err := confsync.Key(k.Secret)
		if err != nil {
			return nil, err
		}
		out[i] = seal.Key{ID: k.ID, Secret: d}
	}
	return out, nil
}

// rotateKeys gives the configuration sync's sealer the keys the state
// sync's now has (a step of a live key rotation). ds may be nil.
func (ds *documents) rotateKeys(keys []seal.Key, send uint8) error {
	if ds == nil || ds.sealer == nil {
		return nil
	}
	derived, err := confsyncKeys(keys)
	if err != nil {
		return err
	}
	if err := ds.sealer.Rotate(derived, send); err != nil {
		return fmt.Errorf("config_sync: %w", err)
	}
	return nil
}

// setPeers gives the configuration sync's transport the sync peers of a
// reload, on config_sync.port. ds may be nil.
func (ds *documents) setPeers(peers map[pfsync.NodeID]netip.AddrPort) error {
	if ds == nil || ds.tr == nil {
		return nil
	}
	cp := make(map[pfsync.NodeID]netip.AddrPort, len(peers))
	for id, ap := range peers {
		cp[id] = netip.AddrPortFrom(ap.Addr(), ds.cfg.ConfigSync.Port)
	}
	if err := ds.tr.SetPeers(cp); err != nil {
		return fmt.Errorf("config_sync: %w", err)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/httpmetrics"
	"github.com/gocarp/gocarp/internal/sdnotify"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/conntrack"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/pfsync/udp"
	"github.com/gocarp/gocarp/vip"
	"github.com/prometheus/client_golang/prometheus"
)

// sendKeyID is the key id of the pre-shared key on the wire at start. The
// key is accepted under otherKeyID too: a live rotation (reload_sync.go)
// ends with the new key under both ids, sending with either, so a node
// that starts afterwards with id 1 understands, and is understood by,
// one that rotated.
const (
	sendKeyID  = 1
	otherKeyID = 2
)

// maxCommits is how many takeover commits the status keeps.
const maxCommits = 8

// shutdownStep bounds each step of the shutdown (the groups' bow-outs, the
// address followers, the conntrack watcher, the engine, the control
// socket): a step still running then is left behind, logged, and the
// shutdown goes on, so that fwpair exits even if a kernel call or a hook
// never returns.
const shutdownStep = 5 * time.Second

// errAborted is newDaemon's error when its context ended (a terminating
// signal during start-up).
var errAborted = errors.New("start-up aborted by a signal")

// daemon is one running fwpair: the sync engine and its conntrack backend,
// the CARP groups, their address followers, the follow rule and the
// control socket.
type daemon struct {
	cfg     *Config
	log     *slog.Logger
	started time.Time

	sealer  *seal.Sealer
	tr      *udp.Unicast
	backend *conntrack.Backend
	engine  *pfsync.Engine
	follow  *carp.FollowGroup // the engine's Demoter, and the groups' follow rule
	control *controlServer
	metrics *httpmetrics.Server // metrics.listen
	// The metrics registry and each group's collectors (metrics.go), so
	// that a reload adds and removes a group's.
	metricsReg      *prometheus.Registry
	groupCollectors map[*carp.Group][]prometheus.Collector
	gate            *gate              // nil when forwarding.gate is false
	noAccept        *vip.NoAccept      // carp.accept false (accept.go)
	notify          *sdnotify.Notifier // systemd's notify protocol (notify.go)
	docs            *documents         // the firewall ruleset and files (documents.go)
	boot            uint32             // the boot counter read at start, shared by both syncs' sealers

	// The work of a takeover commit: the engine's PrepareTakeover and the
	// backend's Takeover (fields, so that a test can make them hang).
	prepare, liberalize func(context.Context) (int, error)
	takeoverSem         chan struct{} // capacity 1: one liberalize at a time, even an abandoned one

	mu              sync.Mutex
	commits         []CommitStatus // the latest maxCommits takeover commits
	startedAsMaster bool

	// What runs: a reload replaces these slices, never changes them in
	// place, so a reader ranges over what running returned without a lock.
	runMu  sync.Mutex
	groups []*groupRun
	tracks []*trackRun

	// reloadMu serialises reloads with each other and with the shutdown
	// (closing: no reload starts once the shutdown has begun).
	reloadMu  sync.Mutex
	closing   bool
	syncKey   []byte     // the sealing key in use, to tell a changed sync.key_file
	syncPeers []SyncPeer // the sync peers in use
	keyRot    keyRotation

	maintMu sync.Mutex
	maint   Maintenance
}

// groupRun is one CARP group and what follows it. A reload that changes
// the group replaces its groupRun by a copy with the new configuration.
type groupRun struct {
	cfg           GroupConfig
	carp          CARPConfig // the carp section the group runs with
	startAsMaster bool       // carp.Config.StartAsMaster, fixed at NewGroup
	ifindex       int
	tr            *carp.RawTransport
	group         *carp.Group
	mgr           *vip.NetlinkManager
	ann           *vip.PacketAnnouncer
	fol           *vip.Follower
	link          *carp.LinkWatcher
}

// newDaemon opens and starts everything. On error it closes what it
// opened. When ctx ends (a terminating signal) it stops waiting for a sync
// peer and returns errAborted before starting the groups.
func newDaemon(ctx context.Context, cfg *Config, log *slog.Logger) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, started: time.Now(), takeoverSem: make(chan struct{}, 1), notify: sdnotify.New(log)}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if cfg.Forwarding.gateOn() {
		if err := checkNotRunning(cfg.ControlSocket); err != nil {
			return nil, err
		}
		if d.gate, err = newGate(cfg.groupInterfaces(), log); err != nil {
			return nil, err
		}
		if err := d.gate.Close(); err != nil {
			return nil, err
		}
	}
	// The follow group exists before the engine: the engine demotes the
	// whole node through it, the groups (attached later) included.
	if d.follow, err = carp.NewFollowGroup(&carp.FollowConfig{
		Hold: cfg.Follow.Hold.Duration, MaxHold: cfg.Follow.MaxHold.Duration, Logger: log,
	}); err != nil {
		return nil, err
	}
	// Maintenance mode (maintenance.go) is in force before anything
	// advertises: a node restarted in maintenance never takes a group
	// from a healthy peer.
	if d.maint, err = readMaintenance(cfg.maintenancePath()); err != nil {
		return nil, err
	}
	if d.maint.On {
		log.Info("fwpair: maintenance mode on (from an earlier run): the groups stay with the peer", "since", d.maint.Since)
		d.applyMaintenance()
	}
	if err := d.openSync(); err != nil {
		return nil, err
	}
	if err := d.engine.Start(); err != nil {
		return nil, err
	}
	if err := d.backend.Start(d.engine); err != nil {
		return nil, err
	}
	d.prepare, d.liberalize = d.engine.PrepareTakeover, d.backend.Takeover
	// The ruleset is in force before any group starts.
	if d.docs, err = openDocuments(cfg, d.boot, d.follow, log); err != nil {
		return nil, err
	}
	d.docs.start()

	startAsMaster := false
	if cfg.CARP.StartAsMaster {
		log.Info("fwpair: start_as_master: waiting for a sync peer", "start_wait", cfg.CARP.StartWait.Duration)
		startAsMaster = !d.waitForPeer(ctx, cfg.CARP.StartWait.Duration)
		if ctx.Err() != nil {
			return nil, errAborted
		}
		if !startAsMaster {
			log.Info("fwpair: start_as_master ignored: a sync peer is up, so the pair is running; joining as BACKUP")
		}
	}
	d.startedAsMaster = startAsMaster
	if err := d.openNoAccept(); err != nil {
		return nil, err
	}
	var groups []*groupRun
	for _, gc := range cfg.Groups {
		gr, err := d.openGroup(gc, cfg.CARP, startAsMaster)
		if gr != nil {
			groups = append(groups, gr)
			d.setRunning(groups, nil)
		}
		if err != nil {
			return nil, err
		}
	}
	// The trackers start before the groups, so that a check failing at
	// start keeps the node from taking a group from a healthy peer.
	var tracks []*trackRun
	for _, tc := range cfg.Track {
		tr, err := d.newTracker(tc)
		if err != nil {
			return nil, err
		}
		tracks = append(tracks, tr)
		d.setRunning(groups, tracks)
		if err := tr.t.Start(); err != nil {
			return nil, fmt.Errorf("track %s: %w", tc.Name, err)
		}
	}
	if d.control, err = listenControlRequests(cfg.ControlSocket, d.handleRequest, log); err != nil {
		return nil, err
	}
	if err := d.openMetrics(); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, errAborted
	}
	for _, gr := range groups {
		if err := gr.group.Start(); err != nil {
			return nil, fmt.Errorf("group %s: %w", gr.cfg.Name, err)
		}
	}
	d.metricsRunning(true)
	if off := linkdownOff("/proc/sys"); len(off) > 0 {
		log.Warn("fwpair: routes through a link without carrier are still used: a packet sent to it waits and arrives late, after newer ones through the peer; set these to 1 (docs/interop.md, \"Host sysctls\")", "sysctls", off)
	}
	log.Info("fwpair: started", "node", cfg.Node, "groups", len(groups), "start_as_master", startAsMaster,
		"commit", cfg.Sync.Commit, "control", cfg.ControlSocket, "track", len(tracks), "maintenance", d.maint.On)
	return d, nil
}

// openSync opens the sealed UDP transport on the sync link, the conntrack
// backend and the engine.
func (d *daemon) openSync() error {
	cfg := d.cfg
	key, err := seal.LoadKeyFile(cfg.Sync.KeyFile)
	if err != nil {
		return err
	}
	boot, err := seal.BootCounter(cfg.Sync.BootFile)
	if err != nil {
		return err
	}
	d.boot = boot
	d.syncKey, d.syncPeers = key, slices.Clone(cfg.Sync.Peers)
	if d.sealer, err = seal.New(seal.Config{
		Node: pfsync.NodeID(cfg.Node), Boot: boot,
		Keys: []seal.Key{{ID: sendKeyID, Secret: key}, {ID: otherKeyID, Secret: key}}, SendKeyID: sendKeyID, Logger: d.log,
	}); err != nil {
		return err
	}
	local, _ := parseAddrPort(cfg.Sync.Local) // validated
	peers := map[pfsync.NodeID]netip.AddrPort{}
	for _, p := range cfg.Sync.Peers {
		peers[pfsync.NodeID(p.Node)], _ = parseAddrPort(p.Address)
	}
	if d.tr, err = udp.NewUnicast(udp.UnicastConfig{Local: local, Interface: cfg.Sync.Interface, Peers: peers}); err != nil {
		return err
	}

	ignore, err := d.ignoreList()
	if err != nil {
		return err
	}
	if d.backend, err = conntrack.New(conntrack.Config{
		Filter: conntrack.Filter{
			AssuredOnly: cfg.Conntrack.AssuredOnly,
			Ignore:      ignore,
			Protocols:   cfg.Conntrack.protocols(),
		},
		Resync: cfg.Conntrack.Resync.Duration,
		Logger: d.log,
	}); err != nil {
		return err
	}
	mode, _ := commitMode(cfg.Sync.Commit) // validated
	d.engine, err = pfsync.New(pfsync.Config{
		Node:       pfsync.NodeID(cfg.Node),
		Transport:  d.tr, // the engine owns it from here
		Sealer:     d.sealer,
		Table:      d.backend,
		Commit:     mode,
		Demoter:    syncDemoter{next: d.follow, d: d}, // opens the forwarding gate when in sync
		Logger:     d.log,
		FlushDelay: cfg.Sync.FlushDelay.Duration,
		Heartbeat:  cfg.Sync.Heartbeat.Duration,
		BulkRate:   cfg.Sync.BulkRate,
	})
	return err // close() closes d.tr when there is no engine
}

// ignoreList returns the flows never replicated (conntrackd's Address
// Ignore): every address of this node, every virtual address, and
// conntrack.ignore. Host prefixes only: the filter drops a flow whose
// original or reply source is inside a prefix, and the LAN's subnet must
// not be one.
func (d *daemon) ignoreList() ([]netip.Prefix, error) {
	out := append([]netip.Prefix(nil), d.cfg.Conntrack.Ignore...)
	host := func(a netip.Addr) netip.Prefix { a = a.Unmap(); return netip.PrefixFrom(a, a.BitLen()) }
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing own addresses: %w", err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, host(p.Addr()))
		}
	}
	for _, g := range d.cfg.Groups {
		for _, a := range g.Addresses {
			out = append(out, host(a))
		}
	}
	return out, nil
}

// waitForPeer reports whether a sync peer is heard within wait: a running
// pair answers the engine's hello within a heartbeat. It gives up when ctx
// ends.
func (d *daemon) waitForPeer(ctx context.Context, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if d.engine.Stats().PeersUp > 0 {
			return true
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		}
	}
	return d.engine.Stats().PeersUp > 0
}

// openGroup creates one group, with the carp section cc, its address
// follower and its link watcher. The group is not started.
func (d *daemon) openGroup(gc GroupConfig, cc CARPConfig, startAsMaster bool) (*groupRun, error) {
	log := d.groupLog(gc)
	ifi, err := net.InterfaceByName(gc.Interface)
	if err != nil {
		return nil, fmt.Errorf("group %s: interface %s: %w", gc.Name, gc.Interface, err)
	}
	rc := &carp.RawConfig{Src4: gc.Source, Logger: log}
	has4, has6 := false, false
	for _, a := range gc.Addresses {
		has4 = has4 || a.Is4() || a.Is4In6()
		has6 = has6 || (a.Is6() && !a.Is4In6())
	}
	if has4 {
		rc.Families = append(rc.Families, carp.IPv4)
	}
	if has6 {
		rc.Families = append(rc.Families, carp.IPv6)
	}
	rc.Peers4, rc.Peers6 = groupPeers(gc)
	tr, err := carp.NewRawTransport(gc.Interface, rc)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", gc.Name, err)
	}
	gr := &groupRun{cfg: gc, carp: cc, startAsMaster: startAsMaster, ifindex: ifi.Index, tr: tr}
	c := gr.carpConfig()
	c.Transport, c.Logger, c.OnTransition, c.OnContested = tr, log, d.onTransition, d.onContested
	gr.group, err = carp.NewGroup(c)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("group %s: %w", gc.Name, err)
	}
	if gr.mgr, err = vip.NewNetlinkManager(ifi, &vip.ManagerConfig{Logger: log}); err != nil {
		return gr, err
	}
	if gr.ann, err = vip.NewPacketAnnouncer(ifi, &vip.AnnouncerConfig{Logger: log}); err != nil {
		return gr, err
	}
	if gr.fol, err = vip.NewFollower(vip.Config{
		VHID:                 gc.VHID,
		Addrs:                vip.Host(gc.Addresses...),
		Manager:              gr.mgr,
		Announcer:            gr.ann,
		AdvertInterval:       gr.group.AdvertInterval(),
		BeforeInstall:        d.commit,
		BeforeInstallTimeout: d.cfg.Sync.CommitTimeout.Duration,
		Logger:               log,
	}); err != nil {
		return gr, err
	}
	if err := gr.fol.Start(); err != nil {
		return gr, err
	}
	if err := d.follow.Add(gr.group); err != nil {
		return gr, fmt.Errorf("group %s: %w", gc.Name, err)
	}
	// The follow group learns of the link through the group.
	if gr.link, err = carp.NewLinkWatcher(gc.Interface, gr.group.SetLinkState, log); err != nil {
		return gr, err
	}
	return gr, nil
}

// groupLog is the logger of one group's parts: the group, its transport,
// link watcher, address follower, manager and announcer. It names the
// group; each part adds what it knows itself (vhid, iface), so those are
// not added here.
func (d *daemon) groupLog(gc GroupConfig) *slog.Logger {
	return d.log.With("group", gc.Name)
}

// onTransition is every group's OnTransition: the address follower of the
// group (which commits state, then installs and announces). The follow
// group has seen the transition already.
func (d *daemon) onTransition(t carp.Transition) {
	d.log.Info("fwpair: carp transition", "vhid", t.VHID, "from", t.From, "to", t.To, "reason", t.Reason)
	d.notifyState()
	for _, gr := range d.groupList() {
		if gr.cfg.VHID == t.VHID && gr.fol != nil {
			gr.fol.Handle(t)
		}
	}
}

// onContested is every group's OnContested: the group, MASTER, out-ranked
// a peer that had taken it over (a split brain healing, a backup that
// missed an advert), and that peer announced the group's addresses with
// its own MAC meanwhile; the group's follower announces them again at
// once. Each group is contested on its own, so only its addresses go out.
func (d *daemon) onContested(c carp.Contest) {
	for _, gr := range d.groupList() {
		if gr.cfg.VHID == c.VHID && gr.fol != nil {
			gr.fol.HandleContest(c)
		}
	}
}

// commit is every Follower's BeforeInstall: the replicated flows go into
// the kernel before the addresses are installed and announced, so the
// first packet drawn by the announcement finds its state (the ordering
// keepalived + conntrackd get wrong, keepalived#2254). Both groups call it
// on a takeover; the second finds nothing left to commit.
//
// Then the backend makes this node's own TCP flows BE_LIBERAL
// (conntrack.Backend.Takeover): the peer may have forwarded them since this
// node last was MASTER, and their sequence windows in this kernel would be
// stale.
//
// Both steps stop at ctx's end, and commit returns then even if one of them
// does not (a kernel call that never returns): the Follower, and fwpair's
// shutdown behind it, wait for this hook.
func (d *daemon) commit(ctx context.Context, t carp.Transition) error {
	defer d.openGateAsMaster() // a MASTER forwards, whatever the commit did
	start := time.Now()
	n, err := runBounded(ctx, d.prepare, nil)
	var lib int
	var lerr error
	select {
	case d.takeoverSem <- struct{}{}: // both groups run this at once; the second finds nothing left
		lib, lerr = runBounded(ctx, d.liberalize, func() { <-d.takeoverSem })
	case <-ctx.Done():
		lerr = fmt.Errorf("liberalizing own flows: not started, another takeover still runs: %w", ctx.Err())
	}
	err = errors.Join(err, lerr)
	took := time.Since(start)
	c := CommitStatus{VHID: t.VHID, At: start, Records: n, Liberalized: lib, Took: took.String()}
	if err != nil {
		c.Err = err.Error()
	}
	d.mu.Lock()
	d.commits = append(d.commits, c)
	if len(d.commits) > maxCommits {
		d.commits = d.commits[len(d.commits)-maxCommits:]
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("fwpair: commit before takeover incomplete", "vhid", t.VHID, "records", n, "liberalized", lib, "took", took, "err", err)
		return err
	}
	d.log.Info("fwpair: committed replicated state before installing the addresses", "vhid", t.VHID, "records", n,
		"liberalized", lib, "took", took)
	return nil
}

// runBounded calls fn(ctx) on its own goroutine and returns its result,
// or ctx's error as soon as ctx ends if fn has not returned by then. An
// abandoned fn finishes on its own; release, if not nil, runs when it
// does.
func runBounded(ctx context.Context, fn func(context.Context) (int, error), release func()) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		if release != nil {
			defer release()
		}
		n, err := fn(ctx)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("abandoned, still running at the end of its context: %w", ctx.Err())
	}
}

// closer is one thing the shutdown closes.
type closer struct {
	name  string
	close func() error
}

// closeAll closes cs concurrently and waits until all have returned or
// within has passed. It returns their errors and the names of those still
// running, which are left to finish on their own.
func closeAll(within time.Duration, cs []closer) (errs []error, pending []string) {
	type result struct {
		i   int
		err error
	}
	done := make(chan result, len(cs))
	for i, c := range cs {
		go func() { done <- result{i, c.close()} }()
	}
	finished := make([]bool, len(cs))
	timer := time.NewTimer(within)
	defer timer.Stop()
	for left := len(cs); left > 0; left-- {
		select {
		case r := <-done:
			finished[r.i] = true
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", cs[r.i].name, r.err))
			}
		case <-timer.C:
			for i, c := range cs {
				if !finished[i] {
					pending = append(pending, c.name)
				}
			}
			return errs, pending
		}
	}
	return errs, nil
}

// close stops everything, step by step, each step bounded by
// shutdownStep: the link watchers; the groups, together, so every MASTER
// sends its bow-out advert at once; the followers (they withdraw the
// addresses) and then their announcers and address managers; the conntrack
// watcher; the engine (it flushes what is queued); the control socket.
// Kernel conntrack entries stay.
func (d *daemon) close() {
	d.reloadMu.Lock() // waits for a reload that runs
	d.closing = true
	d.stopKeyRotation()
	d.reloadMu.Unlock()
	d.metricsRunning(false)
	var errs []error
	step := func(what string, cs []closer) {
		e, pending := closeAll(shutdownStep, cs)
		errs = append(errs, e...)
		if len(pending) > 0 {
			d.log.Error("fwpair: shutdown step not finished; going on without it", "step", what, "pending", pending, "waited", shutdownStep)
		}
	}
	running, trackers := d.running()
	links, groups, fols, addrs := groupClosers(running)
	var tracks []closer
	step("link watchers", links)
	step("groups", groups)
	for _, tr := range trackers { // after the groups: a cleared demotion must not let a leaving group take over
		tracks = append(tracks, closer{"tracker " + tr.cfg.Name, tr.t.Close})
	}
	step("trackers", tracks)
	if d.follow != nil {
		d.follow.Close()
	}
	step("address followers", fols)
	step("announcers and address managers", addrs)
	if d.noAccept != nil { // after the addresses are gone
		step("no-accept rule", []closer{{"no-accept rule", d.noAccept.Close}})
	}
	if d.backend != nil {
		step("conntrack", []closer{{"conntrack backend", d.backend.Close}})
	}
	if d.engine != nil {
		step("sync engine", []closer{{"sync engine", d.engine.Close}})
	} else if d.tr != nil {
		step("sync transport", []closer{{"sync transport", d.tr.Close}})
	}
	if d.docs != nil {
		step("config sync", []closer{{"config sync", d.docs.close}})
	}
	if d.gate != nil { // stops retrying; the gate stays as it is
		step("forwarding gate", []closer{{"forwarding gate", d.gate.Stop}})
	}
	if d.control != nil {
		step("control socket", []closer{{"control socket", d.control.Close}})
	}
	if d.metrics != nil {
		step("metrics", []closer{{"metrics server", d.closeMetrics}})
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Warn("fwpair: shutting down", "err", err)
	}
}

// carpConfig is the group's carp.Config without its Transport, Logger,
// OnTransition and OnContested (nil: unchanged, for Group.Reconfigure).
func (gr *groupRun) carpConfig() carp.Config {
	return gr.carp.groupConfig(carp.Config{
		VHID:          gr.cfg.VHID,
		Addrs:         gr.cfg.Addresses,
		Preempt:       gr.carp.Preempt,
		StartAsMaster: gr.startAsMaster,
		IfIndex:       gr.ifindex,
	})
}

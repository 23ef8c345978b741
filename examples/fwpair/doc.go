// Command fwpair runs one node of a Linux HA firewall pair: CARP groups for
// the LAN and WAN virtual addresses, conntrack replication over a dedicated,
// sealed sync link, and a takeover that commits the replicated flows into
// the kernel before the addresses move — so established connections,
// source-NATed to the WAN virtual address, survive a failover even with
// nf_conntrack_tcp_loose=0.
//
// It is the gocarp counterpart of keepalived (vrrp_sync_group, notify
// scripts) plus conntrackd (FTFW, primary-backup.sh), in one process:
//
//   - carp: one Group per entry of "groups" (typically LAN vhid 1 and WAN
//     vhid 2), raw CARP sockets bound to the interface, the interface's
//     link state fed to the group (carp.LinkWatcher).
//
//   - vip: a vip.Follower per group installs the virtual addresses on
//     MASTER and withdraws them otherwise (also the ones a crashed run
//     left behind), with gratuitous ARP / unsolicited NA. Its BeforeInstall
//     hook is pfsync.Engine.PrepareTakeover with a deadline: the external
//     cache (sync.commit "on-takeover"), or any record whose write failed
//     (sync.commit "direct"), reaches the kernel before any address is
//     announced; then this node's own TCP flows are made BE_LIBERAL, since
//     their sequence windows are stale if the peer forwarded them meanwhile
//     (conntrack.Backend.Takeover). A group that, as MASTER, out-ranks a
//     peer claiming it (carp.Config.OnContested: a split brain healing, a
//     starved backup that took over) has its follower announce its
//     addresses again (vip.Follower.HandleContest), so the LAN and WAN
//     neighbours do not keep the peer's MAC.
//
//   - pfsync: one Engine, sealed with the pre-shared key (pfsync/seal,
//     AES-256-GCM, boot counter persisted in sync.boot_file), over UDP
//     unicast on the sync link (pfsync/udp, bound to sync.interface). Its
//     Table is the conntrack backend (pfsync/conntrack), which also watches
//     the kernel's events and reports this node's flows. The engine holds
//     every group demoted (by 32) until its first bulk sync is complete.
//     A silent peer does not demote: see docs/sync-demotion.md.
//
//   - a carp.FollowGroup keeps the groups together and carries the
//     engine's demotion to every group; see below.
//
//   - the forwarding gate (gate.go) keeps the node from forwarding until it
//     is in sync or MASTER; see below.
//
// # Follow rule
//
// One firewall must forward both directions of every flow, so the groups
// fail over together (pfSense's behaviour). fwpair puts every group in one
// carp.FollowGroup, which only raises demotion, always on every group of
// the node at once:
//
//	condition on this node                      demotion, every group   cleared when
//	------------------------------------------  ----------------------  ---------------------------------
//	a group's link is down (that group is INIT) follow-link +1          every link is up again
//	a group went MASTER -> BACKUP while another follow +1               no group MASTER for follow.hold
//	group of this node is still MASTER                                  (doubled on repeats, up to
//	                                                                    follow.max_hold), or all MASTER
//	anything else (all MASTER, all BACKUP,      none                    -
//	a group became MASTER)
//
// A backup takes over from a more demoted master at once, even without
// preemption, so the healthy groups follow within one advertisement.
// Node-wide demotion keeps every group of a node equal (no deadlock between
// groups); becoming MASTER never demotes, and the follow demotion outlives
// the hand-over by the hold time, so the groups cannot flap at advertisement
// speed. The carp.FollowGroup documentation has the argument in full. The
// same FollowGroup is the engine's Demoter, so its bulk-sync demotion
// reaches every group.
//
// # Forwarding gate
//
// The nodes keep their physical MAC addresses (the addresses move with
// gratuitous ARP and unsolicited NA), so after a crash whose links come
// back before the peer's master-down interval, clients and servers still
// send to the rebooted box. Its kernel, with an empty conntrack table and
// fwpair not running, would forward that traffic: late (it waited in the
// neighbour queue while the links came up, so a UDP flow sees datagrams
// older than ones the peer already delivered) and with fresh conntrack and
// NAT entries of its own. With forwarding.gate true (the default) fwpair
// owns the nftables table "inet fwpair_gate": a forward chain at priority
// "filter - 10" that drops what enters on the groups' interfaces (never the
// sync link). fwpair loads it closed at start, and deletes it once, at the
// first of: the sync engine in sync (bulk sync from every peer up
// complete, or, heard no peer, the end of the discovery window), or a group
// becoming MASTER (after the takeover commit, before the addresses go up).
// It stays open until the process exits and is not closed on shutdown: the
// kernel keeps forwarding with its state while the peer takes over. Every
// nft run is bounded (3 s); a failed opening is logged and retried every
// second; a failed closing at start stops fwpair.
//
// The daemon protects the box only once it runs: the appliance's boot
// ruleset must load the same table, closed, before the data links come up
// (internal/lab/fwbench.GateRuleset is the lab's; docs/forwarding-gate.md
// has the snippet and the reasons). A "flush ruleset" by the appliance
// deletes the table, which opens the gate.
//
// # Usage
//
//	fwpair -config /etc/fwpair/fwpair.json     # run
//	fwpair -config FILE -check                  # validate (and the key file, boot file directory, ruleset with nft -c, files), print with defaults
//	fwpair -config FILE -status                 # status of the running daemon (JSON)
//	fwpair -status -socket /run/fwpair/fwpair.sock  # same, socket given directly
//	fwpair -config FILE -reload                 # apply the edited file live (as SIGHUP); prints the changes
//	fwpair -config FILE -maintenance on|off     # persistent maintenance mode
//	fwpair -genkey /etc/fwpair/sync.key         # new pre-shared key (0600)
//	fwpair -config FILE -log-format json        # run, logging JSON objects (default: text)
//
// Signals: SIGUSR1 logs the status (the same JSON as -status); SIGHUP
// reloads the configuration (see Reloading) and never shuts down; SIGTERM
// and SIGINT shut down: every MASTER group sends its bow-out advert
// at once (the peer takes over at once), the addresses are withdrawn;
// kernel conntrack entries stay. They are caught from the start: during
// start-up (carp.start_wait) they stop it without starting the groups.
// The shutdown is bounded: a takeover commit in progress is abandoned at
// once (its context ends and the hook returns even if a kernel call inside
// it does not), and each step (link watchers, groups, address followers,
// announcers and address managers, conntrack, sync engine, control socket)
// that has not finished within 5 s is logged and left behind, so a hung
// address install or kernel call cannot keep fwpair running. Exit status:
// 0 after a signal, 1 if the daemon cannot run, 2 for a bad command line
// or configuration.
//
// The status (-status, the control socket) reports the number of
// goroutines (one that keeps growing is a leak), every group's state,
// demotion and carpstats counters, the address follower's counters, the
// follow rule, the sync peers (up/down, last heard), table sizes (records,
// local, external cache), bulk progress and every engine, seal, transport and
// conntrack counter, the last takeover commit (records, duration), and
// the forwarding gate ("forwarding": state open, closed or disabled,
// opened_at, reason, error), the maintenance mode ("maintenance": on,
// since) and every tracker ("track": state unknown, healthy or failed,
// weight, the demotion it contributes now, streak, checks, last_error).
//
// The control socket takes one request line (a client that sends none
// gets the status after 200 ms, so "connect and read" still works):
// "status", "reload", "maintenance on", "maintenance off"; the answer is
// one JSON object. -status, -reload and -maintenance send them.
//
// # Reloading
//
// SIGHUP or fwpair -config FILE -reload makes the running daemon read its
// configuration file again, validate it as at start, and apply the
// difference live, with no group closed and re-opened that the change
// does not remove, so no group changes state unless the election outcome
// does:
//
//   - carp.advbase, advskew, password, preempt, dead_ratio (vrrp3:
//     priority, advert_int): every group takes them at once
//     (carp.Group.Reconfigure). A new password is rolled over: for a
//     window (at least the master-down interval) a group sends with the
//     old key and accepts both, so the two nodes can be reloaded a few
//     seconds apart without either taking over.
//   - groups[]: a group is known by its vhid. A new vhid starts as BACKUP,
//     a vhid no longer listed is closed (a MASTER bows out, its addresses
//     are withdrawn), and a listed one takes its new name, addresses (the
//     MASTER installs and announces added ones, withdraws removed ones and
//     leaves the others alone) and unicast peers.
//   - track[]: a tracker is known by its name: a new one starts, a changed
//     one restarts, a removed one stops and its demotion is cleared.
//   - sync.peers: the transport's list is replaced; a node no longer
//     listed is forgotten by the engine (its stream and bulk syncs; the
//     flows it created stay), a new one is greeted at once and gets a
//     bulk sync.
//   - sync.key_file holding a new key: it is rolled in over 60 s, in three
//     steps: at once it is accepted (under the other key id) next to the
//     old one, after 30 s it seals, after 60 s the old key is refused. Two
//     nodes reloaded less than 30 s apart never stop understanding each
//     other. A node restarted during the minute, with the new file, is not
//     understood by its peer until the peer's second step. Another new key
//     is refused until the rotation is over.
//   - firewall.ruleset and files[]: a changed ruleset must pass nft -c, or
//     the whole reload is refused; then it is applied in one transaction
//     and published with a new version. A changed published file runs its
//     apply command and is published. A file's apply and apply_timeout
//     change live; roles, names, paths and config_sync need a restart.
//   - carp.start_as_master and carp.start_wait are taken for the next start.
//
// A group a reload adds is in /metrics and watched by the systemd watchdog
// at once; one it removes leaves both. The flows to or from a virtual
// address a reload adds are replicated (the conntrack filter that ignores
// the virtual addresses is fixed at start): harmless, as the peer's
// kernel gets a flow it never forwards, until the next restart.
//
// Anything else is refused, with an error naming the key, and the daemon
// goes on running its previous configuration untouched: node,
// control_socket, log_level, carp.protocol, a group's interface or source,
// a new address family in a group, the rest of sync, conntrack, follow,
// metrics, forwarding. Every change is checked before any is applied; should applying one
// fail (an interface gone), the others are applied, the error is reported,
// and the next reload tries it again. -reload prints the changes (one line
// each, "none" when the file is unchanged) and exits 1 with the error if
// the daemon refused the file; the log has a line per change.
//
// A reload on one node only is a configuration the pair does not share:
// change both nodes (the password rollover covers the seconds between).
// After a reload that changed a group's addresses or the password, do not
// restart a node before the rollover window is over (10 s, or the
// master-down interval if longer): a node that starts knows only the new
// key, while its peer still signs with the old one until the window ends,
// so the restarted node hears no master for that group and takes it.
//
// # Maintenance mode
//
// fwpair -config FILE -maintenance on hands every group to the peer at
// once and keeps them there, across restarts of fwpair, until
// -maintenance off (pfSense's persistent CARP maintenance mode). It raises
// the node-wide demotion (source "maintenance") to carp's cap, 255: a
// MASTER advertises it at once and the peer, less demoted, takes over at
// once whatever its preempt setting; with off the demotion is cleared and,
// with preempt, the groups come back. The mode is recorded in the file
// "maintenance" in sync.boot_file's directory (written atomically; it
// holds the time it was switched on), read at start before any group
// advertises. When no fwpair runs, -maintenance records the mode for the
// next start. A node in maintenance still takes the groups when no
// healthier node advertises (its peer down): maintenance moves the
// traffic, it never leaves the pair without a master.
//
// # Health checks
//
// The track list runs health checks (package track) that, while failed,
// demote every group of the node (through the follow group, so the groups
// move together), as keepalived's track_script, track_interface,
// track_process, TCP_CHECK and HTTP_GET do. A check fails after fall
// failures in a row and recovers after rise successes; the first result
// after start sets the state at once. A failed check on the MASTER raises
// its demotion, which it advertises at once, and the peer takes over
// within one advertisement. Removing a check (reload) clears its demotion.
//
// # Running under systemd
//
// fwpair.service (next to this file) runs it with Type=notify: fwpair
// sends READY once the groups run and the first sync decision is made
// (founder with start_as_master and no peer, or joining a running pair), a
// STATUS line with every group's state after each transition ("node 1
// (joined): wan MASTER, lan MASTER"), STOPPING at a terminating signal, and,
// with WatchdogSec, a WATCHDOG ping every half period while every group's
// protocol loop makes progress. The unit grants CAP_NET_ADMIN and
// CAP_NET_RAW only, on a read-only file system but for the state directory
// (sync.boot_file under /var/lib/fwpair) and the runtime directory
// (control_socket under /run/fwpair).
//
// # Configuration file
//
// One JSON object; unknown fields are errors. Every error names the field,
// the value and what is allowed. fwpair.example.json is the primary of a
// pair; the secondary differs in node, carp.advskew (100), sync.local and
// sync.peers, and carp.start_as_master (false).
//
//	node               sync node id of this firewall, 1-4294967295, unique in
//	                   the pair and kept across restarts. Required.
//	control_socket     unix socket of the status and the requests (mode
//	                   0600; its directory is created if missing). Default
//	                   "/run/fwpair/fwpair.sock" (fwpair.service's
//	                   RuntimeDirectory).
//	log_level          "debug", "info" (default), "warn" or "error".
//	log_format         "text" (default: key=value lines) or "json" (one
//	                   object a line); the -log-format flag, when given,
//	                   wins.
//
//	carp.advbase       advertisement base interval in seconds, 1-255.
//	                   Default 1.
//	carp.advskew       0-254, added to advbase in 1/256 s; lower is preferred.
//	                   0 on the primary, 100 on the secondary.
//	carp.password      shared CARP password, at most 20 bytes (BSD ifconfig
//	                   accepts 19). Empty means the BSD default key.
//	carp.preempt       take the groups back from a slower master (the primary
//	                   returning after its bulk sync). Recommended true.
//	carp.start_as_master  become MASTER at start instead of BACKUP — but only
//	                   if no sync peer answers within carp.start_wait: a node
//	                   that restarts while its peer runs the pair joins as
//	                   BACKUP, takes its bulk sync, and preempts later. A node
//	                   grabbing the addresses before it has any state would
//	                   reset every flow. The groups also wait as BACKUP while
//	                   the sync engine demotes them, and a node that hears no
//	                   sync peer keeps a demotion of 1: it becomes master
//	                   when a master-down interval passes without an advert,
//	                   so a master that only the sync link cannot reach keeps
//	                   its role.
//	carp.start_wait    how long to wait for a sync peer before honouring
//	                   start_as_master, 0-1m. Default "3s".
//	carp.dead_ratio    advert intervals without an advert before a backup
//	                   takes over, 0-255; 0 means 3 (the BSD value).
//	carp.interval      sub-second CARP instead of advbase and advskew (which
//	                   must then be unset): "10ms" to "992ms", rounded to
//	                   1/256 s; it advertises advbase 0 and that advskew
//	                   ("100ms" is advskew 26, 101.6 ms; -status shows
//	                   advert_interval and master_down), and a backup
//	                   waits dead_ratio intervals. Give the primary the
//	                   shorter one. ucarp and FreeBSD peers cannot follow
//	                   (docs/sub-second.md).
//	carp.protocol      "carp" (default) or "vrrp3": the groups speak VRRPv3
//	                   (RFC 5798, keepalived and routers) instead. advbase,
//	                   advskew, interval, password and dead_ratio must then be unset;
//	                   a demotion (sync not ready, a follow rule) puts a
//	                   node at priority 1, below every undemoted one, as it
//	                   ranks it below with CARP.
//	carp.priority      vrrp3 only: 1-254, higher is preferred. Default 100;
//	                   give the primary the higher one.
//	carp.advert_int    vrrp3 only: advertisement interval, 10ms-40.95s in
//	                   steps of 10ms. Default "1s".
//	carp.accept        vrrp3 only: accept mode. Absent or true (keepalived's
//	                   default without vrrp_strict): a master accepts packets
//	                   addressed to the virtual addresses. false
//	                   (keepalived's no_accept): an nftables table
//	                   fwpair_noaccept drops them from start to exit (ARP and
//	                   neighbour discovery still answered; forwarded traffic
//	                   untouched); needs the nft binary.
//
//	groups[]           1-16 CARP groups, all following each other:
//	  .name            label for logs and status. Default "vhid<N>".
//	  .vhid            1-255, unique.
//	  .interface       the interface the group runs on (and its addresses
//	                   live on); unique, not the sync interface.
//	  .addresses       the virtual addresses, IPv4 and/or IPv6, at least
//	                   one. Installed with the prefix length of the
//	                   interface's subnet that contains them (else /32,
//	                   /128). Every node lists the same ones.
//	  .source          IPv4 source of the adverts. Default: the interface's
//	                   first primary address.
//	  .peers           unicast peers: adverts of each family go to every
//	                   peer of that family instead of the multicast group
//	                   (clouds and hypervisors that drop multicast). Every
//	                   peer's family must have an address in .addresses.
//	                   Default: none (multicast).
//
//	sync.interface     the dedicated sync link (the transport's socket is
//	                   bound to it). Required.
//	sync.local         this node's address[:port] on the sync link; port
//	                   default 7240.
//	sync.peers[]       1-16 peers: {"node": id, "address": "addr[:port]"}.
//	sync.key_file      the 32-byte pre-shared key (raw, hex or base64; mode
//	                   0600 or 0400; fwpair -genkey makes one). Required:
//	                   the sync link is always authenticated and encrypted.
//	sync.boot_file     the persisted boot counter (incremented at each
//	                   start; frames of an older boot are refused). Required;
//	                   its directory must be writable.
//	sync.commit        "direct" (default): the peer's flows are written into
//	                   the kernel as they arrive (pfsync's way; conntrackd's
//	                   DisableExternalCache), so a takeover has nothing to
//	                   commit. "on-takeover": they wait in the engine
//	                   (conntrackd's external cache) and are committed into
//	                   the kernel when this node becomes MASTER, before its
//	                   addresses are installed. direct stays the default
//	                   although the conntrack backend's Commit now
//	                   pipelines its writes (60-85k entries/s on its own):
//	                   the engine's takeover commit still hands the kernel
//	                   one record per call, while the new master's watcher
//	                   digests the echo event of every written flow on the
//	                   same cores. Measured with 100 000 extra flows
//	                   (FWPAIR_E2E_ENTRIES=100000 go test -count=1 -v -run
//	                   'TestFailover$' ./examples/fwpair, late_join phase):
//	                   on-takeover commits 101 050 records in 7.4 s and the
//	                   flows' largest gap is 14.2 s; direct has nothing to
//	                   commit (the takeover hook takes 23-35 ms) and a
//	                   largest gap of 3.6 s. Writing the external cache
//	                   with the backend's batched Commit before the engine's
//	                   pass did not help (8.9 s, gap 14.0 s; once past the
//	                   lab's 10 s commit_timeout). on-takeover keeps a
//	                   backup's kernel free of foreign state for ~30 % less
//	                   CPU per replicated connection.
//	sync.commit_timeout  deadline of that commit, 100ms-1m, default "2s".
//	                   The addresses go up at the deadline anyway (the rest
//	                   is committed on the next takeover or update).
//	sync.heartbeat     engine heartbeat, 10ms-1m; default "1s". A peer is
//	                   down after 3 silent heartbeats.
//	sync.flush_delay   how long a change waits to share a frame, 1ms-1s;
//	                   default "100ms".
//	sync.bulk_rate     bulk sync frames per second to a joining peer,
//	                   0-10000000; 0 means 2000.
//
//	conntrack.protocols  IP protocols replicated: "tcp", "udp", "icmp",
//	                   "icmpv6", "sctp", "dccp", "gre". Empty means all.
//	conntrack.assured_only  replicate a flow only once it is ASSURED.
//	conntrack.ignore   extra prefixes whose flows are never replicated. The
//	                   node's own addresses (all interfaces, at start) and
//	                   the virtual addresses are always ignored.
//	conntrack.resync   period of the full-table resync, 1s-24h; "0s" or
//	                   absent means 1m; negative disables it.
//
//	follow.hold        how long the follow demotion stays after the node
//	                   gave up every group, 100ms-1h; default "10s".
//	follow.max_hold    repeats within this time double the hold, up to it;
//	                   default "5m".
//
//	metrics.listen     IP address and port ("127.0.0.1:9310") serving
//	                   Prometheus /metrics (package metrics: groups,
//	                   addresses, sync engine and peers, sealer, conntrack,
//	                   takeover commits; Go and process) and /healthz (200
//	                   while the groups run, else 503), on that address
//	                   only. Absent or empty: off.
//
//	forwarding.gate    true (default, also when absent): keep forwarding on
//	                   the groups' interfaces closed from start until the
//	                   node is in sync or MASTER (see Forwarding gate;
//	                   needs the nft binary). false: fwpair leaves
//	                   forwarding alone.
//
//	track[]            0-64 health checks, each {"name", "type", the type's
//	                   keys, "interval", "timeout", "rise", "fall", "weight"}:
//	  .name            unique, 1-64 bytes; the demotion source is
//	                   "track:<name>".
//	  .type            "script": .script, a shell command line (sh -c),
//	                   healthy when it exits 0, killed with its children at
//	                   the timeout. "interface": .interface, healthy while
//	                   up with carrier. "process": .pid_file or .process (the
//	                   name in /proc/PID/comm), healthy while it runs. "tcp":
//	                   .address "host:port", healthy when a connection is
//	                   accepted. "http": .url (http or https) and .status
//	                   (100-599; 0 or absent: any 2xx).
//	  .interval        time between the end of a check and the next,
//	                   10ms-1h; default "1s".
//	  .timeout         a check still running then has failed, 10ms-1h;
//	                   default the interval.
//	  .rise, .fall     successes (failures) in a row that turn a failed
//	                   (healthy) check healthy (failed), 1-1000; default 1.
//	  .weight          the demotion while failed, 1-255; 0 (default) forces
//	                   the node out of MASTER: the cap, 255, above any
//	                   healthy peer (keepalived's FAULT, without its own
//	                   state: the node would still take over if no healthier
//	                   one advertised).
//
//	firewall.ruleset   the nftables file fwpair applies (see Firewall ruleset
//	                   and files); required with sync "publish" or "off". A
//	                   subscriber applies its own until the publisher's
//	                   first version arrives, and never writes it.
//	firewall.sync      "publish", "subscribe" or "off" (default: applied,
//	                   not replicated).
//	files[]            0-32 other documents (DHCP, DNS configuration), each
//	                   {"name", "path", "apply", "apply_timeout", "sync"}:
//	  .name            the document's name on both nodes (paths may
//	                   differ): 1-64 of a-z A-Z 0-9 . _ -, not "firewall".
//	  .path            absolute; read on the publisher, replaced atomically
//	                   on a subscriber.
//	  .apply           command and arguments (no shell) run after the file
//	                   changed, with FWPAIR_DOCUMENT, FWPAIR_PATH and
//	                   FWPAIR_VERSION set; empty runs nothing.
//	  .apply_timeout   100ms-10m, default "30s".
//	  .sync            "publish", "subscribe" or "off" (ignored).
//	config_sync.port   UDP port of the configuration sync on every node,
//	                   on the sync link; default sync.local's port + 1.
//	config_sync.state_dir  where the versions and a copy of each document
//	                   in force are kept; default sync.boot_file's directory.
//	config_sync.from   the node that publishes what this node subscribes
//	                   to; default the only sync peer.
//	config_sync.demote true (default): hold the groups demoted (by 50)
//	                   while a subscribed document has failed to apply or
//	                   been older than the publisher's for 2 s, so the node
//	                   does not take over with a stale ruleset (unless the
//	                   peer is gone: a demotion only ranks). The 2 s cover
//	                   the transfer after a reload on the publisher, which
//	                   would otherwise hand a MASTER subscriber's groups to
//	                   the publisher on every reload there.
//
// Durations are Go duration strings ("1.5s", "200ms").
//
// # Firewall ruleset and files
//
// fwpair replicates configuration from the node that publishes it (the
// primary) to the one that subscribes (the secondary), as pfSense's
// configuration sync does, over the sync link: package confsync, on its
// own UDP port (config_sync.port), sealed with a key derived from
// sync.key_file and the same boot counter as the state sync (a reload
// that changes sync.peers or rotates the key changes both). A subscriber
// reports what it applied; -status shows, per document, the version in
// force, on the publisher every peer's applied version, and the last error
// ("documents": name, role, path, version, offered, failed, error,
// peers[]: node, applied, failed, error, heard).
//
// The ruleset file owns the tables it declares, as a whole: fwpair applies
// it as one nft transaction that deletes those tables (and any table of the
// version in force that the new one dropped) and declares them again from
// the file, after "nft -c" accepted the same transaction. Applying a file
// twice therefore replaces its tables rather than appending rules, and
// every other table (fwpair's own gate, inet fwpair_gate; another
// program's) is left alone. Write tables, not "flush ruleset" (refused: it
// would remove the gate and others' tables), and keep the file
// self-contained ("include" is refused: the peer applies the same bytes).
// A ruleset that fails nft -c is refused: at start the last good version
// (its copy in config_sync.state_dir) stays in force and published, on
// -reload the reload is refused; either way it is never published and the
// error shows in -status. A subscriber applies each received version the
// same way; one its kernel refuses leaves the previous in force, reported
// to the publisher and in -status.
//
// Versions only grow. The publisher persists, per document, its last
// version and the content's SHA-256 (config_sync.state_dir): an unchanged
// file keeps its version (a restart resends nothing), a changed one gets
// the larger of the last version + 1 and the Unix time in seconds (so
// versions still grow when the state directory was lost or the publisher
// role moved to the other node). So after a restart of the publisher its
// file as it is then wins, and the subscribers apply it. A subscriber
// keeps a copy of the ruleset in force and re-applies it at start (after a
// reboot the kernel has lost it); confsync remembers the applied versions
// and fetches only newer ones.
//
// A published file is read at start and on -reload; on a change its apply
// command runs on the publisher too (a failure refuses the change). On a
// subscriber each version replaces the file atomically and the command
// runs; if it fails, the previous content is put back and the command run
// again. -check runs the ruleset through nft -c (as root), checks that a
// published file is readable, a subscribed file's directory exists, every
// apply command is found, and config_sync.state_dir is writable.
//
// # Firewall rules
//
// Without a firewall section fwpair touches nftables only for its
// forwarding gate (its own table, above). The rules it is tested with (see
// internal/lab/fwbench.Ruleset, used by e2e_linux_test.go): forward policy drop, "ct state established,related
// accept", "ct state invalid drop", new flows LAN->WAN only with a SYN,
// "snat ip to <WAN VIP>" and "snat ip6 to <WAN IPv6 VIP>" (not masquerade:
// masquerade flushes its entries when the WAN link goes down and those
// deletes replicate), and nf_conntrack_tcp_loose=0,
// nf_conntrack_tcp_be_liberal=0; IPv4 and IPv6 flows are tested through
// every failover. Replicated TCP flows carry BE_LIBERAL in the kernel
// (ctnetlink cannot restore sequence windows), on both firewalls: the
// creator sets it on its own flows once they carry data, so a flow survives
// a split where each firewall is MASTER of one group (lost adverts) and
// forwards one of its directions. On the firewalls, set
// net.ipv6.conf.<iface>.keep_addr_on_down=1 or have the network
// configuration restore the interfaces' IPv6 addresses: Linux flushes them
// when a link is set down, and the IPv6 virtual addresses take their
// prefix from them. Set net.ipv4.conf.all.ignore_routes_with_linkdown=1 and
// net.ipv6.conf.all.ignore_routes_with_linkdown=1: otherwise a packet that
// reaches the master just as one of its links loses carrier waits in the
// neighbour queue and leaves seconds later, behind newer packets the peer
// forwarded (docs/interop.md, "Host sysctls"). fwpair warns at start when
// they are 0.
package main

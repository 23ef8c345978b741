// Package carp implements the Common Address Redundancy Protocol (CARP
// version 2, OpenBSD/FreeBSD carp(4), ucarp) for embedding in Go programs:
// a few nodes share virtual IP addresses, one of them is MASTER and owns
// them, the others are BACKUP and take over when it fails. A group can
// speak VRRP version 3 (RFC 5798; keepalived, routers) on the wire instead,
// with the same state machine; see "VRRPv3" below.
//
// The package has three layers:
//
//   - [Advertisement] and [Authenticator]: the 36-byte wire format and its
//     HMAC-SHA1, as pure values, byte-compatible with OpenBSD, FreeBSD and
//     ucarp 1.5.2, and telling CARP from VRRP on IP protocol 112.
//     [VRRPAdvertisement] is the VRRPv3 advert, byte-compatible with
//     keepalived 2.2.7.
//   - [Group]: the state machine of one virtual host id, driven by time
//     timers and received adverts, on one goroutine.
//   - [Transport]: the seam to the network. [NewRawTransport] opens the
//     Linux one (raw IP protocol 112 sockets bound to one interface, IPv4
//     and IPv6, multicast or unicast peers); carptest provides an
//     in-memory segment for tests.
//
// On Linux, [NewLinkWatcher] follows the interface's IFF_UP and carrier
// through rtnetlink notifications and feeds [Group.SetLinkState], so a
// group drops to INIT when its link goes down, as carp(4) does. Elsewhere
// both constructors return errors.ErrUnsupported.
//
// A typical embedder:
//
//	tr, err := carp.NewRawTransport("eth0", nil)
//	g, err := carp.NewGroup(carp.Config{VHID: 1, Password: pw, Addrs: vips,
//		Transport: tr, OnTransition: follow})
//	w, err := carp.NewLinkWatcher("eth0", g.SetLinkState, logger)
//	err = g.Start()
//	...
//	w.Close(); g.Close() // g.Close also closes tr
//
// # States
//
//	             Start (after HoldDown), link up
//	+------+ --------------------------------------> +--------+
//	|      |                                         |        |
//	| INIT | <-------------------------------------- | BACKUP |
//	|      |        link down, Close                 |        |
//	+------+                                         +--------+
//	  ^  |                                             |    ^
//	  |  |         master-down timer expired, bow-out, |    | faster or equally fast advert
//	  |  |     preempting a slower master (Preempt),   |    | (unless less demoted), less
//	  |  |  more demoted master, master stepped down,  |    | demoted advert, StepDown
//	  |  |  master will time out                       v    | (one bow-out first)
//	  |  |                                           +--------+
//	  |  +------ StartAsMaster (first election) ---> |        |
//	  |                                              | MASTER |
//	  +--- link down; Close (one bow-out first) ---- |        |
//	                                                 +--------+
//
// # Timing
//
// A MASTER advertises every advbase + advskew/256 seconds. A BACKUP becomes
// MASTER when it has heard no advert for the master-down interval, which
// depends on [Profile]: FreeBSD and ucarp use DeadRatio·advbase +
// advskew/256 (the default: faster failover, and what ucarp peers use),
// OpenBSD uses DeadRatio·(advbase + advskew/256). Timings are compared as
// the integer advbase·256 + advskew; lower wins. With advbase 0
// (Config.ZeroAdvBase: sub-second adverts) both profiles wait DeadRatio
// advert intervals. A dual-stack group sends one advert per family and
// runs one master-down timer per family.
//
// # Election rules
//
// Received adverts that pass the checks of carp(4) (interface, TTL 255,
// length, checksum, version, vhid, HMAC) and the replay checks below are
// applied with OpenBSD's rules, which include the demote byte:
//
//   - MASTER becomes BACKUP if the advert is at least as fast and not more
//     demoted, or less demoted whatever its timing. There is no address
//     tie-break: of two equal masters both yield, as on the BSDs. A MASTER
//     that hears a worse master (a backup that missed its adverts) answers
//     at once with an advert, so that one yields without waiting for the
//     next interval (an addition to the BSDs, in the spirit of ucarp's
//     "reassert"; peers see one extra, valid advert). It answers at most
//     once per quarter advert interval; answers not sent are counted in
//     Stats.Suppressed, the ones sent in Stats.Contested, and each one
//     sent is reported to Config.OnContested (see Notifications).
//   - BACKUP becomes MASTER at once on a bow-out advert (advbase 255,
//     advskew 255), if Preempt is set and the master is slower and not less
//     demoted, if the master is more demoted (even without Preempt), if the
//     master just made itself slower than this node (its advskew rose since
//     its previous advert, at the same advbase and not less demoted: a
//     planned handover, see below; even without Preempt), or if the master
//     advertises so slowly that it would time out anyway
//     (DeadRatio·advbase < its interval); otherwise it restarts the
//     master-down timer of the advert's family.
//   - A BACKUP whose master-down timer is seen more than 50 ms late was not
//     running when it was due (a stopped process, a paused virtual
//     machine, CPU starvation), and its master's adverts may still be
//     queued: it arms the timer again for as long as it was late (at most
//     one advert interval) and reads what arrived first, instead of taking
//     over at once on resume while the master is alive. Counted in
//     Stats.LateTimers. A stop that ends just before or just after the
//     timer falls due does not make it late, so a timer that expires while
//     received packets wait unread (with the group's reader, or in a
//     Transport that is a PendingReporter) gets the same second look, of
//     50 ms. Counted in Stats.Unread.
//
// # Replays
//
// The HMAC covers only the vhid, the addresses and the 8-byte counter:
// anyone on the LAN can capture an advert, rewrite its timing and demote
// byte, and send it again from any address. The group therefore judges
// adverts by their counter:
//
//   - An advert carrying a counter this group sent in its life (however
//     long ago, in either CounterMode) is its own coming back, looped or
//     replayed, and is dropped (Stats.Badloop).
//   - A BACKUP follows its master: its address per family, its last
//     counters (each accepted once, in any order) and whether the counter
//     increments (FreeBSD, ucarp, CounterIncrement) or stays constant
//     (OpenBSD, CounterCookie). Adverts reusing a counter of an
//     incrementing master, or of one followed earlier, are dropped
//     (Stats.Replay) and do not restart the master-down timer. A bow-out
//     is honoured only if it is the master's next advert (incrementing) or
//     carries its cookie (constant), from the master's address; others are
//     dropped (Stats.Replay). Only such fresh adverts can make a BACKUP
//     take over at once (bow-out, preemption, demoted master, master will
//     time out); the first advert of a new sender only restarts the
//     master-down timer, and while the current master is heard another
//     sender cannot replace it.
//   - A MASTER drops adverts reusing a counter of a master it followed
//     (Stats.Replay).
//   - A backup that becomes master continues its own counter (FreeBSD and
//     ucarp continue the old master's; nobody checks, so peers see no
//     difference), so two nodes' counters never overlap.
//
// What remains possible without the password: a capture from another life
// of a constant-counter (OpenBSD) master, replayed, is indistinguishable
// from that master; and an attacker who intercepts the master's next advert
// before the backups do can deliver it rewritten. docs/carp-replay.md in
// the repository has the reasoning.
//
// # Demotion
//
// [Group.SetDemotion] lets the embedder lower the node's priority from
// several sources (health checks, state sync not ready); the sum is sent in
// the demote byte. The group demotes itself while the link is down (source
// "link") and after 3 consecutive send failures (source "senderr"). The
// senderr demotion clears after 3 successful sends as MASTER; a BACKUP
// sends nothing, so it clears after one master-down interval as BACKUP
// instead (FreeBSD keeps a demoted backup demoted forever,
// opnsense/core#8437). If sends still fail when the node is master again,
// it demotes again after 3 failures.
//
// FreeBSD and ucarp peers ignore the demote byte. FreeBSD shows demotion
// in the advskew instead (each of its sources adds 240, the advskew
// clamped to 240); with Config.DemoteInSkew a demoted group does the same,
// advertising and electing with advskew 240, so that such peers with
// Preempt take over from it. A group configured with StartAsMaster waits
// as BACKUP while demoted.
//
// # Changing a running group
//
// [Group.Reconfigure] takes a new Config while the group runs: addresses,
// timing, priority, preemption, password and demotion settings change
// without a state change unless the election outcome changes, and a
// MASTER keeps advertising with no gap. A new password or address set
// changes the advert's HMAC, so the group keeps sending the old one and
// accepts both for a window ([KeyRollover] or the master-down interval,
// whichever is longer), then sends the new one and still accepts the old
// for another window: nodes changed less than one window apart always
// hear each other and never both become MASTER.
//
// # Planned handover
//
// A MASTER that steps down on purpose hands the group over within a link
// delay, not a master-down interval, and whatever the backup's Preempt:
//
//   - [Group.StepDown] sends a bow-out (VRRPv3: priority 0) and only then
//     becomes BACKUP, so the backup takes over on that advert (a VRRPv3
//     backup after its Skew_Time, RFC 5798) and the two are never both
//     MASTER. It stays BACKUP for the time given; if nobody took over by
//     then, it takes the group back once the master-down interval passed.
//   - A demotion raised while MASTER (SetDemotion, a FollowGroup, a health
//     tracker, a maintenance switch) and a Reconfigure that ranks it lower
//     (a higher advskew, a lower VRRPv3 priority) are advertised at once.
//     A backup that now wins the election takes over on that advert, with
//     or without Preempt (a less demoted one by the demote byte; a faster
//     one because the master's advskew or priority just got worse); the
//     old master yields on the new one's first advert, one link delay
//     later, so the group is never without a master. A backup that does
//     not win (equally demoted, slower) leaves the master in place: no
//     failover for nothing, and no master lost when there is no peer. The
//     demoted node stays BACKUP: the demotion that moved the group keeps
//     it behind.
//
// Peers that ignore the demote byte and never take over without
// preemption (FreeBSD, ucarp, keepalived with nopreempt) see only the
// bow-out: StepDown hands over to them too, a demotion only with their
// preemption and Config.DemoteInSkew. docs/design.md ("Planned handover")
// has the reasoning.
//
// # Groups that fail over together
//
// A node with several groups (a firewall's LAN and WAN) usually needs them
// on the same node. [FollowGroup] keeps them together: it demotes every
// group of the node when one of their links is down, or when one group
// lost mastership while another is still MASTER, for a hold time that
// doubles on repeats. Its documentation gives the reasons it can neither
// deadlock nor flap. It is also the node-wide demotion counter (OpenBSD's
// interface group "carp"): a demotion set on it reaches every group.
//
// # VRRPv3
//
// With Config.Protocol set to [ProtocolVRRPv3] a group sends and accepts
// only VRRPv3 adverts (no authentication; the checksum covers the IP
// pseudo-header, so the Transport must be an [Addresser]). The election is
// the one above, with VRRP's ranking mapped onto it: a node's priority p
// (Config.Priority, lowered by its demotion times Config.DemotionWeight but
// never below 1, as keepalived's track weights lower it) ranks like a CARP
// timing of 255 - p,
// so higher priorities win; VRRP has no demote byte. Where VRRP differs,
// the group follows RFC 5798:
//
//   - a BACKUP waits 3·interval + (256 - p)·interval/256, where interval is
//     the one the master advertises (learned from its adverts);
//   - of two masters of equal priority, the one with the higher primary
//     (source) address stays master;
//   - a master that stops (Close) sends priority 0 instead of a bow-out; a
//     BACKUP that hears it takes over after only the skew part,
//     (256 - p)·interval/256, so the highest priority goes first; a MASTER
//     that hears it answers at once;
//   - priority 255 (the address owner) starts as MASTER;
//   - a MASTER that hears an advert of a lower priority answers it at once
//     and reports it to Config.OnContested, as CARP does, where RFC 5798
//     only discards it: keepalived answers it too, and re-sends its
//     gratuitous ARPs and unsolicited neighbour advertisements;
//   - adverts must list the group's addresses of their family (else
//     Stats.Badauth: most likely another router with the same VRID);
//     VRRPv2 and CARP packets are counted (Stats.VRRPv2, Stats.CARP) and
//     ignored. There is no counter, so the replay checks above do not
//     apply; anyone on the LAN can send VRRPv3 adverts.
//
// Since the demotion travels only inside the priority, a demoted VRRP
// master is taken over only by backups with Preempt (CARP backups take
// over from a more demoted master even without it), and only by one whose
// priority is now higher: enable Preempt on every node when something
// demotes (a sync engine, a FollowGroup, a health check), and set
// DemotionWeight to 255 for CARP's rule that any demoted node ranks below
// every undemoted one.
//
// One deliberate difference: a BACKUP with Preempt takes over at the first
// advert of a lower priority, as CARP does, where RFC 5798 lets it ignore
// such adverts until its master-down timer fires. The outcome is the same,
// sooner. Accept mode (whether a master that is not the address owner
// accepts packets addressed to the virtual addresses) is not the
// election's business but the address handling's: the default, as
// keepalived's without vrrp_strict, is to accept; vip.NoAccept is
// keepalived's no_accept (the addresses installed, packets to them
// dropped, ARP and neighbour discovery still answered). An owner
// (priority 255) always accepts.
//
// # Notifications
//
// Config.OnTransition receives every state change, serially and in order,
// on its own goroutine. Becoming MASTER sends the first advert before the
// hook runs, and a hook that blocks never delays adverts. Group.Close sends
// the bow-out first and waits for the hook at most Config.CloseTimeout; a
// hook still blocked then keeps its one goroutine until it returns.
//
// Config.OnContested reports a [Contest]: this node, MASTER, heard another
// node advertise as master of the group and out-ranks it. That happens
// when a split brain heals or when a backup missed this node's adverts
// (CPU starvation, a lost advert) and took over; the other node yields to
// the answer, but while it was MASTER it announced the addresses with its
// own MAC, and without a virtual MAC the LAN keeps sending there until
// its neighbour caches expire. Wire the hook to vip.Follower.HandleContest
// to announce the addresses again at once, as keepalived does. It is
// called only for the contests answered (at most one per quarter
// interval), on the OnTransition goroutine, in order with the
// transitions, and Close waits for it the same way. It is not a state
// change: Transitions and OnTransition never see it.
//
// A contest is per group. In a [FollowGroup] each group that another node
// claimed is contested on its own (each group answers the adverts of its
// own vhid), so wiring every group's hook to that group's own address
// follower re-announces exactly the addresses the other node took; the
// FollowGroup adds nothing.
package carp

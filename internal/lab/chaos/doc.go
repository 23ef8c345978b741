// Package chaos is a test lab, not part of the library: the chaos soak of
// carpd and fwpair, a three-node carpd group and a firewall pair with flows
// running, in network namespaces, under random faults, with invariants
// checked all along.
//
// # Running it
//
// The soak is TestSoak. It needs root (it skips otherwise, and fails under
// CI=true, through internal/lab/netns.Require), nft and tc. By default it
// injects events for 30 s, which with start-up and the settling of the
// last event takes about a minute, so it runs in every `go test ./...`:
//
//	go test -count=1 -v -run TestSoak ./internal/lab/chaos
//
// A long soak, with a fixed seed and the daemons built with the race
// detector:
//
//	go test -count=1 -v -timeout 45m -run TestSoak ./internal/lab/chaos \
//	    -args -chaos.duration=30m -chaos.seed=42 -chaos.race
//
// CHAOS_DURATION=30m in the environment does the same as -chaos.duration
// (handy under `go test ./...`). The other flags: -chaos.seed (0, the
// default, seeds from the clock; the seed is printed first, and the same
// seed gives each system the same sequence of events, with the same
// targets and durations when the system is in the same state), -chaos.slack
// (500ms, added to every bound below), -chaos.poll (50ms, cadence of the
// address and master checks), -chaos.tcp and -chaos.udp (20 and 4 flows),
// -chaos.kinds (only these event kinds, e.g. "freeze" or
// "fwpair/sync-partition,host/cpu-stress": to reproduce one finding
// quickly).
//
// # What runs
//
//   - carpd: nodes c1, c2, c3 on one bridge, vhid 7, advbase 1, advskew 0,
//     50 and 100, preemption, --manage-vip with an IPv4 and an IPv6
//     address. c1 is the preferred master.
//   - fwpair: the lab of internal/lab/fwbench (client, LAN bridge, fw1 and fw2,
//     WAN bridge, server, a sync link between the firewalls), LAN group
//     vhid 1 and WAN group vhid 2 with an IPv4 and an IPv6 address each,
//     advskew 0 and 100, preemption, sync.commit direct, the follow rule's
//     hold shortened to 1 s (at most 10 s). fw1 is the preferred master.
//     20 TCP and 4 UDP flows (IPv4, source-NATed to the WAN address,
//     nf_conntrack_tcp_loose=0) send a message every 150 ms.
//
// Both daemons are built from examples/ with `go build` into a temporary
// directory.
//
// # Events
//
// Each system has its own injector: it picks an event kind (weighted) and a
// target (the master half of the time, any node otherwise), holds the fault
// for a random duration, undoes it, and waits until the system has settled
// (below) before the next event. A host-wide CPU stress runs on its own
// schedule and overlaps the others.
//
//	kill            SIGKILL of the daemon, restarted after 0.2-1.5 s (a
//	                crashed process restarted by its supervisor; the
//	                addresses it held stay in the kernel until the new
//	                process removes them)
//	crash           SIGKILL and every link of the node down (switch ports,
//	                sync link) for 1-6 s, then its virtual addresses and
//	                conntrack table cleared, on a firewall fwpair's
//	                forwarding gate loaded closed (its boot ruleset), links
//	                up, daemon restarted (a box losing power and rebooting)
//	freeze          SIGSTOP for 1-6 s, then SIGCONT (a frozen master)
//	flap            one of the node's switch ports down for 0.3-5 s
//	partition       carpd: CARP (IPv4 and IPv6 protocol 112) to and from
//	                the node dropped in the switch for 1-8 s
//	sync-partition  fwpair: the sync link cut for 2-15 s, either link down
//	                at one firewall or everything received on it dropped by
//	                nftables on both
//	loss            5-40 % of the frames to and from one of the node's
//	                switch ports (or, on the pair, received on the sync
//	                link) dropped at random (nftables "numgen random mod
//	                100 < N drop": this kernel has no netem) for 3-10 s
//	delay           fwpair: a token-bucket filter (tc tbf, 64-256 kbit/s,
//	                a queue of 100-500 ms) on the egress of the LAN, WAN or
//	                sync interface of a firewall for 3-10 s: packets wait
//	                in the queue, or are dropped when it is full (tbf is
//	                the only delaying qdisc without netem); treated like
//	                loss
//	cpu-stress      one busy loop per CPU for 2-8 s, every 5-20 s
//
// Every fault is undone when its time is up, and in t.Cleanup if the soak
// ends first (SIGCONT, links up, nftables tables and qdiscs removed, stress
// processes killed); the namespaces go with the topology. Only events a
// backup can cover are injected: one fault per system at a time, and the
// system has settled before the next, so the pair never loses both
// firewalls. c3 is never killed or crashed, so one carpd process lives
// through the whole soak for the memory check.
//
// # Invariants
//
// The daemons' own log lines ("carp: state changed", "carp: demotion
// changed") give each node's state per group as it changes, read as they
// are printed; a killed daemon is no one's master from the kill. The
// virtual addresses are read every -chaos.poll from each node over
// rtnetlink: an address counts as held by a node when it is configured on
// an interface that is up and has carrier (an address behind a pulled
// cable is not on the network). W is one advert interval of the slowest
// member, advbase + advskew/256 = 1.39 s; D is the longest master-down
// interval, 3 x advbase + advskew/256 = 3.39 s; every bound gets
// -chaos.slack on top.
//
//	one-master      a group has two or more masters for at most W. While an
//	                event that makes a split expected is active (partition,
//	                loss, delay, a frozen master: the nodes cannot hear each
//	                other, or one of them does not run) the bound starts when
//	                the event ends: after a partition heals, one master per
//	                group within one advert interval.
//	one-holder      a virtual address is held by two or more nodes for at
//	                most W, with the same allowance.
//	some-master     a group has no master for at most D + W (the last
//	                advert came up to W before the fault, a backup waits D).
//	                No allowance.
//	no-needless-failover  during an event that the master does not need
//	                help with (anything that touches only a backup, a
//	                sync-link partition) and until the system has
//	                settled, no group changes master.
//	settles         after each event, within 60 s: every daemon runs, the
//	                preferred node is the only master of every group, no
//	                node is demoted, and this holds for W; on the pair both
//	                sync peers are up and the backup's bulk sync is done.
//	                A system that does not settle ends the soak.
//	flows-survive   after the pair settled every flow echoes again within
//	                30 s, and no TCP flow was reset or lost or reordered a
//	                byte, no UDP flow saw a NAT rebinding or disorder, the
//	                server saw no reset: every fault injected on the pair
//	                is one a backup covers. The same at the end of the soak.
//	no-panic        no daemon prints a Go panic, a fatal runtime error or a
//	                race report, and none exits unless the soak killed it.
//	flat-memory     a daemon process that ran at least 5 min after a 30 s
//	                warm-up ends with VmRSS at most 1.5 x + 16 MiB, at most
//	                16 more threads, 32 more descriptors and 64 more
//	                goroutines than at the warm-up's end. What comes and
//	                goes legitimately is a handful of goroutines (a
//	                takeover commit, a control-socket connection, a sync
//	                peer's restart); a goroutine leaked per advert crosses
//	                64 in about a minute, one leaked per event within a
//	                long soak (it injects well over a hundred events per
//	                system in 30 min).
//
// Memory is sampled every 5 s: VmRSS, VmHWM, threads and descriptors from
// /proc, and the goroutine count from the status line the daemon logs on
// SIGUSR1 (carpd's goroutines=N, fwpair's status JSON), read from its
// output like the state changes. Only a daemon that has logged a state
// change (its signal handler is in place) and is not frozen is asked; a
// sample ends when it answers, each daemon on its own, so a slow one
// delays neither the others nor the checks above.
//
// The summary lists the events injected per kind, the checks done per
// invariant, every violation with its time, detail and the event in
// progress, the flows' figures, and per daemon process the VmRSS, VmHWM,
// threads, descriptors and goroutines at its first and last sample, its
// peak VmHWM and peak goroutine count, and how many status requests a
// running daemon left unanswered (within 20 s). Any violation fails the
// test.
package chaos

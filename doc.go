// Package gocarp is high availability for network appliances written in Go:
// CARP failover ([github.com/gocarp/gocarp/carp]), virtual addresses that
// follow the master ([github.com/gocarp/gocarp/vip]) and replication of the
// connection table in the spirit of pfsync
// ([github.com/gocarp/gocarp/pfsync]), so that established connections
// survive when the master dies.
// The design is in docs/design.md and the sync protocol in docs/protocol.md.
//
// This package has no code. It is the wiring guide: how a host program (a
// firewall, NAT gateway, load balancer or VPN head-end that keeps its own
// process, configuration and dataplane) puts the three packages together,
// and in which order. The order is the point: a failover loses connections
// when the new master answers for the addresses before its dataplane knows
// the flows (keepalived with conntrackd gets this wrong by default), or when
// a rebooted node grabs the master role with an empty table.
//
// # The two promises
//
//  1. Commit state, then take the addresses. On a transition to MASTER the
//     replicated connections are committed into the dataplane
//     (pfsync.Engine.PrepareTakeover) before the virtual addresses are
//     installed and announced (gratuitous ARP, unsolicited Neighbor
//     Advertisement). Traffic drawn by the announcement finds its state;
//     no TCP connection is reset.
//  2. Stay demoted until in sync. The sync engine holds the CARP group
//     demoted (pfsync.Config.Demoter is the carp.Group) from its start until
//     its first bulk sync from a peer is complete, as OpenBSD's pfsync
//     demotes carp by 32 while it initialises. A less demoted node always
//     wins the election, so a node that boots with an empty table neither
//     preempts the master nor wins a simultaneous election; it takes over
//     only when the master dies (a master-down timeout ignores demotion), or
//     once it is complete.
//
// # Wiring one node
//
// Every node runs the same program; only its node id and CARP advskew
// differ.
//
//  1. The dataplane's connection table, as a pfsync.Table: a Linux conntrack
//     adapter (pfsync/conntrack), or pfsync.MemTable or your own type for a Go
//     dataplane.
//  2. The CARP group: carp.NewGroup with the VHID, timing (AdvBase,
//     AdvSkew), password, virtual addresses, Preempt, and a Transport
//     (carp.NewRawTransport on the LAN interface). Its OnTransition feeds the
//     vip Follower (step 4), and its OnContested the Follower's
//     HandleContest (announce again after a split brain heals).
//  3. The sync engine: pfsync.New with the node id, a Transport (pfsync/udp
//     on a dedicated sync link), a Sealer (pfsync/seal with the cluster key
//     and a boot counter), the Table, a CommitMode, and Demoter: the group.
//  4. The address follower: vip.NewFollower with the addresses, an
//     AddrManager and an Announcer (vip.NewNetlinkManager and
//     vip.NewPacketAnnouncer, optionally on a vip.VirtualMAC), the group's
//     AdvertInterval, and BeforeInstall calling engine.PrepareTakeover.
//     The Follower guarantees the order BeforeInstall → install → announce
//     on every promotion, and withdraws the addresses on every demotion.
//  5. Start the engine first, then the group, so that the group's first
//     election already carries the engine's demotion "bulk sync pending"
//     (Engine.Start reports it to the Demoter before it returns). A group
//     with StartAsMaster waits as BACKUP while it is demoted, so a node that
//     reboots into a running cluster never claims the addresses with an
//     empty table. The engine demotes every node until it has had a bulk
//     sync from every peer it hears, the founder included: when nodes may
//     boot together (power restored), give the group a HoldDown of a few
//     hundred milliseconds, so that a node that completed its bulk first
//     does not take over from one still fetching as "a more demoted
//     master", only to hand back a moment later.
//  6. Report the dataplane's changes to the engine: Engine.Upsert for a new
//     or changed connection (Engine.NewID names a new one), Engine.Delete
//     for one that ended. The engine never echoes them back into the Table.
//  7. Shut down with group.Close first (a MASTER sends a bow-out advert, so
//     a backup takes over at once instead of after the master-down
//     interval), then the Follower (it withdraws the addresses), then the
//     engine.
//
// Every piece has an in-memory twin for tests and demos: carp/carptest (a
// LAN segment with loss, partitions and silent crashes), pfsync/pfsynctest
// (a lossy sync network) and vip/viptest (recording fakes of the address
// manager and announcer). The Example wires one node with them;
// examples/demo runs a whole LAN through election, bulk sync, a crash, the
// takeover and the old master's return:
//
//	go run ./examples/demo
//
// # Timing
//
// A master advertises every advbase + advskew/256 seconds. A backup takes
// over after the master-down interval without an advert: 3×advbase +
// advskew/256 seconds with the default FreeBSD/ucarp profile, 3×(advbase +
// advskew/256) with the OpenBSD one. With advbase 1 and advskew 100 that is
// 3.391 s, plus however long PrepareTakeover needs to commit the table
// (bounded by vip.Config.BeforeInstallTimeout).
package gocarp

// Package pfsync replicates connection state between the nodes of a
// high-availability cluster, like OpenBSD/FreeBSD pfsync and netfilter's
// conntrackd, for Go network appliances that pair it with CARP (package
// carp) so that a backup taking over already knows every flow.
//
// An Engine runs on every node. The embedder reports the flows its
// dataplane creates, changes and removes (Upsert, Delete, with records of
// package pfsync/record); the engine sends them to every peer and applies
// the peers' flows to the embedder's Table (MemTable is an in-memory one).
// Frames travel over a Transport (pfsync/udp for real links, pfsync/pfsynctest
// in memory) and are authenticated by a Sealer (pfsync/seal).
// The protocol on the wire is specified in docs/protocol.md.
//
// What the engine takes from pfsync:
//   - one queue slot per record: changes before a flush coalesce, the record
//     is encoded at flush time so the newest state leaves, and a delete of a
//     record no peer heard of sends nothing (pfsync's sync_state queues);
//   - frames flushed when full (Transport MTU minus Sealer overhead), after
//     Config.FlushDelay (100 ms; pfsync waits up to 1 s), or at once for
//     control traffic and for a change to a record a peer changed less
//     than 2 s before (both nodes see the flow: pfsync's rule);
//   - request by id for an update of an unknown record (UPD_REQ), one
//     request queued per record however many updates of it arrive;
//   - deferral: UpsertSync sends a change at once and returns when every
//     peer up has acknowledged it, so a dataplane can hold a new flow's
//     first packet until the peers know the flow (pfsync's defer, for
//     active-active and asymmetric routing);
//   - a bulk sync for a joining node, framed by start and end markers, and
//     CARP demotion (+32, OpenBSD) until the node is in sync — a bulk from
//     every peer up completed, or no peer was heard within Config.Discovery
//     (the founder) — through Config.Demoter and Demotion (see CARP
//     demotion below);
//   - lifetimes as remaining seconds, never timestamps: a record that waited
//     in the engine is committed, and sent on, with what remains of its
//     Expire (conntrackd's commit does the same), to within one second;
//   - per-direction merges that never move a TCP direction backwards
//     (record.Merge).
//
// What it takes from conntrackd's FT-FW mode, generalised to N nodes:
// per-sender sequence numbers, cumulative acks with NACK ranges, a resend
// queue that holds record references (a retransmission carries the
// record's current state under the original sequence number, never stale
// bytes), heartbeats (1 s) and peer-down detection (3 missed), hellos and
// random epochs that reveal a restarted peer. Every sequenced frame is a
// broadcast; each peer acknowledges it independently, and the resend queue
// drops a frame once every live peer did.
//
// What neither has: a bulk is verified range by range. The sender sends
// its records ordered by bucket (wire.Buckets of them, by record ID) and
// vouches for every finished range of buckets with a digest of the IDs it
// sent (a bulk mark); the receiver checks each mark once the frames before
// it arrived. When the transfer ends or stalls for Config.BulkTimeout, the
// receiver asks again for the ranges not settled, and only for those: a
// corrupted frame costs one range, an interrupted transfer resumes where it
// stopped (Stats.BulkRangesFailed, BulkBucketsRetried). Frames of the
// peer's stream lost for good during the transfer may have carried updates
// of any range: once it is complete, the two tables are compared by digest
// (see below). After Config.BulkRetries attempts in a row that
// settle nothing, the sync is reported in Stats.BulkGaveUp and a residual
// demotion — never taken for success. Periodic anti-entropy digests
// (Config.AntiEntropy) let every node find records that silently diverged
// from their creator's copy, and fetch only the buckets that differ. And
// when frames of a peer's stream are lost for good after the node once
// held the peer's whole table — the peer is back after a silence, or a gap
// outlived the peer's resend queue — the node asks for the digest of
// everything the peer holds and fetches the buckets that differ, not the
// whole table again (Stats.Resyncs, ResyncBuckets; a peer that does not
// answer within Config.BulkTimeout is resynchronised with a whole bulk,
// ResyncTimeouts).
//
// Nor does either check that a peer is live before believing it. A node
// that restarts has lost its Sealer's replay window, so a recording of a
// peer's frames would authenticate and could bring back records deleted
// since. Every new epoch of a peer must first echo the node's own random
// epoch in a Hello (a round trip; retried every Heartbeat); until then only
// its Hellos and its requests for our records or our whole-table digest
// count (Stats.Unconfirmed, PeerStats.Confirmed), and the bulk sync is
// asked for once it is confirmed.
//
// # CARP demotion
//
// The engine raises one demotion source, DemoteSourceBulk, and only for
// want of a table: Config.DemoteInit (32) from Start until the node is in
// sync, Config.DemoteDegraded if it got there only because a bulk sync
// failed every retry. A node that heard a live peer but got no table from
// any stays demoted while every peer is silent: the sync link may have
// failed in the middle of its bulk sync, and the master behind it must
// keep the group. Once in sync a node never demotes again: not for a peer
// that joins or restarts, not for the resynchronisation after frames were
// lost.
//
// Silent peers do not demote (OpenBSD's +1 "pfsync link" is not raised):
// a sync link that fails is silent for both ends, so both would demote,
// and whichever noticed first would be briefly the more demoted and lose
// the group to the other at once — a failover caused by nothing but the
// sync link, costing the flows opened since the link failed. A master that
// only the sync link lost keeps its role, whichever end notices first, and
// after the link heals. The reasoning is in docs/sync-demotion.md.
//
// # Peers at run time
//
// The engine learns its peers from what it receives: any sender that
// authenticates becomes a peer, echoes this node's epoch, and is asked for
// a bulk sync (it asks for ours likewise). Which nodes can reach it is the
// Transport's configuration. To change the cluster while it runs, change
// the Transport's peers first (udp.Unicast.SetPeers, udp.Multicast.SetPeers),
// then tell the engine: AddPeer greets a new node at once, so the two
// confirm each other and exchange their bulk syncs within a few round
// trips instead of at the next heartbeat; RemovePeer drops everything kept
// for a node (its stream, its acks and the frames held for it, the bulk
// syncs from and to it, its Stats.Peers entry, its part in being in sync
// and so in DemoteSourceBulk) and ignores its frames until it is added
// again.
//
// # Input from the network
//
// Every field of a received element that could drive a loop or an
// allocation is bounded by what the engine holds or allows: an ack's nack
// ranges are cut to the frames held for resending before they are walked;
// a digest comes in parts no smaller than a sender at the smallest MTU
// makes, no bucket is compared twice in an anti-entropy round (one per
// peer per Heartbeat) or a resync, and a peer's request for our
// whole-table digest is answered at most once per Heartbeat
// (Stats.DigestsRefused); at most 256 peers are remembered, 16 of them
// unconfirmed, and unconfirmed peers are forgotten once silent
// (Stats.PeersRefused), so senders invented in Insecure mode cost nothing
// lasting; a missing record is asked for once however many updates of it
// arrive, and the requests held for resending count against ResendLimit.
// An element that does not decode, or that its sender may not send (a
// Clear of another node's records), is counted in Stats.BadValue and
// logged at most once per 10 s and element kind.
//
// # Commit modes
//
// With CommitDirect (the default, pfsync's behaviour) remote changes reach
// the Table as they arrive. With CommitOnTakeover (conntrackd's external
// cache) they stay in the engine until PrepareTakeover, which the embedder
// calls when CARP makes this node master and before the addresses are
// announced; it honours its context's deadline. A Table that also
// implements BatchTable (pfsync/conntrack does) gets each received frame's
// changes in one call (CommitDirect) and the takeover commit a thousand at
// a time, instead of one Insert each.
//
// # Restarts
//
// Record IDs (NewID) are seeded with the start time in seconds, as pf's
// state ids are: a node must not restart within the second it started. A
// node whose dataplane survived a restart of the engine re-announces what
// it holds with Upsert before Start — its own records and the other nodes'
// — so that the new engine never takes a flow back to an older state;
// records of its previous life it no longer holds come back from the peers
// and are handed to the Table (pfsync's restore after a reboot). Until
// they are back, not holding one of them says nothing about it: a request
// for a record of an earlier life (a recording replayed into the restart
// window, or a third node asking before the bulk sync arrived) is ignored
// and counted (Stats.RequestsIgnored), never answered with a delete; only
// a record created in this life and no longer held is known to be gone.
// Likewise a Clear is obeyed only from the creator of the records it names.
//
// # Inside the engine
//
// One lock (Engine.mu) guards the engine; under it each responsibility is a
// type that owns its state, and Engine coordinates them:
//   - records (store.go): the record store — encodings in an arena,
//     indexed by ID, entry flags, tombstones, the local and external
//     counts;
//   - sender (sender.go, queue.go): the outgoing stream — the coalescing
//     queue, control elements, sequence numbers, the resend queue, flush
//     timing, the token bucket that paces bulk frames; output.go builds the
//     frames from it;
//   - bulkRecv and bulkOut (bulk.go): bulk sync as receiver (per peer:
//     session, ranges, marks, retries) and as sender (running transfers,
//     their snapshots and the records changed since);
//   - antiEntropy and digests (digest.go): when digests and tombstone scans
//     are due, and per peer what was compared of its digests;
//   - peer and peerSet (peer.go): the per-peer state machine — the stream
//     received, acks, gaps, and its timers (peer.tick, which tells the
//     engine what is due through peerEvents);
//   - syncState (insync.go): whether the node is in sync, and the demotion.
//
// Received elements are dispatched by one table keyed by wire kind
// (elementHandlers, elements.go); the documentation of package pfsync/wire
// lists the places a new element kind touches.
//
// # Statistics
//
// Engine.Stats returns counters named after pfsyncstats and conntrackd's
// (frames and bytes per peer, bad version/length/value, unknown kinds,
// stale merges, retransmissions, nacks, requests, bulk syncs, queue drops,
// authentication failures by kind) and gauges (queue lengths, peers up,
// table sizes, bulk progress, demotion).
package pfsync

// Package conntrack replicates the Linux connection-tracking table
// (netfilter conntrack) with the pfsync engine, in the way conntrackd does
// it for keepalived pairs, on top of github.com/ti-mo/conntrack.
//
// A Backend has two sides:
//
//   - The watcher (Start) turns the kernel's NEW, UPDATE and DESTROY events
//     into local inserts, updates and deletes reported to a Sink (the
//     engine). Each kernel flow keeps one record identity for its whole
//     life. One goroutine reads the events so their order is kept (up to
//     64 per system call, decoded straight from the receive buffer; what
//     the lean decoder does not know goes to ti-mo/conntrack's); a large
//     socket buffer absorbs bursts, and when events are lost anyway
//     (ENOBUFS) the watcher empties the socket (the kernel delivers no
//     further event until it is empty) and a full dump resyncs the records
//     by mark and sweep (conntrackd's NetlinkOverrunResync). A periodic resync re-reports
//     long-lived flows whose timeout packets refreshed without an event.
//     A Filter drops local traffic (own addresses, VIPs, the sync link),
//     chosen zones and protocols, or everything not yet ASSURED; loopback
//     and IPv6 link-local flows are never replicated.
//
//   - The table side (Insert, Update, Delete: the pfsync.Table interface;
//     Commit and CommitBatch, pfsync.BatchTable, for batches) writes the records of the peers into the
//     kernel: created CONFIRMED (plus SEEN_REPLY/ASSURED as replicated)
//     with the remaining lifetime as timeout, TCP entries with BE_LIBERAL
//     and SACK_PERM on both directions because ctnetlink cannot restore
//     sequence windows, NAT rebuilt from the reply tuple (CTA_NAT_SRC /
//     CTA_NAT_DST), EXPECTED and the flowtable OFFLOAD bits stripped, an
//     existing entry updated — keeping the kernel's status when the update
//     would clear SEEN_REPLY or ASSURED, which the kernel refuses, and
//     deleted and created again only when the update is refused otherwise
//     (on a node forwarding the flow, a packet between the delete and the
//     create would make a new entry) — RELATED flows after their master. Commit
//     pipelines its writes (a batch of creates, then one of updates, per
//     sendmsg; only the last request of a batch asks for an ack, and the
//     kernel's error messages are matched back by sequence number) and
//     converts the next batch while the kernel writes the current one, so
//     a takeover commit runs at kernel speed rather than at one netlink
//     round trip per flow. While large commits run (a takeover's, not a
//     direct-mode backup's few records per frame), the watcher's socket
//     leaves the kernel's group of NEW events: the kernel then builds no
//     event for the creates (about half of its work per create), and the
//     watcher reads no echo of them. Flows that traffic creates meanwhile
//     are reported by their first UPDATE event (a reply, the handshake)
//     or, if they have had no reply yet, by a dump of the unreplied flows
//     once the socket has joined the group again, 250 ms after the last
//     commit.
//
// A flow this node created is kept up to date the same way when a peer
// changed it — its record advanced by the peer, or a record of the same
// flow under the peer's identity (both saw it): the kernel entry gets the
// newer state and lifetime and BE_LIBERAL, tuples and NAT untouched, and
// the write's kernel event is not reported back, so two nodes cannot
// ping-pong. Traffic that only moves a flow's sequence windows causes no
// kernel event, though, so a peer that forwarded this node's flows for a
// while has usually reported nothing. So the watcher itself makes this
// node's own replicated TCP flows BE_LIBERAL as soon as they carry data
// (ESTABLISHED to LAST_ACK, found by its event or a resync; the flows found
// within 10 ms are written in one pipelined batch, and the reports of the
// events meanwhile wait for it): packets acknowledging data this node never saw are then not
// INVALID, also while a peer forwards one direction of a flow and this
// node the other — both nodes MASTER of different groups when one's
// adverts are lost, where a source-NATed reply that is INVALID would not be
// translated back, would reach this node's own stack at the NAT address
// and be answered with a reset. Config.StrictLocal turns that off; call
// Takeover anyway when the node becomes master again (after the engine's
// PrepareTakeover, before the addresses move): it makes liberal whatever
// own TCP flow still is not.
//
// With pfsync.CommitDirect the engine hands the peers' records to the
// kernel as they arrive (conntrackd's DisableExternalCache); with
// pfsync.CommitOnTakeover they stay in the engine (the external cache) and
// reach the kernel in Engine.PrepareTakeover, before the VIPs move. Either
// way they come through CommitBatch: a received frame's changes in one
// call, the takeover commit a thousand at a time (twice the rate of one
// Insert each). A node
// that goes from MASTER back to BACKUP in that mode should call Purge after
// a grace period (conntrackd's "-t"), so its stale kernel copies of flows
// the new master owns cannot clash with them later.
//
// A peer's record is checked before it reaches the kernel, because a peer
// (misconfigured, or one whose key leaked) must not be able to do more to
// this node's table than its own traffic could:
//
//   - The Filter applies to what this node receives as to what it sends:
//     a record of an ignored protocol or zone, of an ignored address
//     (original or reply source), or whose master tuple comes from an
//     ignored address or protocol, is not written (Stats.Refused), nor is
//     one naming a loopback, IPv6 link-local or unspecified address, which
//     this node does not send either: such traffic never leaves a node, and
//     a peer's NAT set-up on 127.0.0.1 would capture local connections.
//     AssuredOnly only thins out what this node sends.
//   - The lifetime written is at most what a packet of the flow would
//     refresh it to in this kernel: the node's own
//     net.netfilter.nf_conntrack_*_timeout* sysctls (read from the
//     namespace by New; the kernel's defaults where one cannot be read)
//     for the state written — per TCP state (ESTABLISHED 5 days by
//     default, FIN_WAIT 2 min, CLOSE 10 s, ...), UDP and GRE by whether a
//     reply was seen (30 s / 120 s and 30 s / 180 s by default), ICMP 30 s,
//     SCTP its longest state, other protocols the generic 600 s
//     (Stats.Capped). The state written follows from the record's
//     per-direction levels, not from what the peer claims it is. Keep the
//     timeouts equal on every node of a cluster (kernel defaults differ
//     between versions): a lifetime cut short here can run out before the
//     creator's next refresh, and a flow that ends in this kernel has its
//     record deleted everywhere.
//   - Status bits are reduced to SEEN_REPLY, ASSURED and FIXED_TIMEOUT
//     (plus CONFIRMED), labels must be 4-16 bytes, window scales 0-14, a
//     helper name at most 15 bytes, and the helper is never written (the
//     kernel's own helpers attach to new flows); the mark and the labels
//     are written as the creator had them, since rules and routing on
//     every node depend on them. A RELATED record waiting for its master
//     keeps only the extensions its write uses.
//
// A full kernel table (nf_conntrack_max) refuses every create with ENOMEM:
// such records fail with an error wrapping ErrTableFull, counted each in
// Stats.TableFull. The watcher reads the kernel's drop and early_drop
// counters at every resync (Stats.KernelDrops). These, lost events and
// refused records are logged at most once per ten seconds per kind, with
// the number of occurrences held back since the last line, so a full
// table during a bulk of a million flows costs a few log lines, not a
// million.
//
// Events caused by the injection itself are recognised and not reported
// back. Traffic that later changes an injected flow (this node took over)
// is reported under the peer's record identity, so the whole cluster
// follows the flow; when such a flow ends in this kernel its record is
// deleted, as pfsync deletes a state wherever it expires. The backend never allocates record ids: the Sink does
// (one allocator per node keeps them unique).
//
// The backend needs CAP_NET_ADMIN in the namespace it watches. It only
// exists on Linux; elsewhere New returns an error wrapping
// errors.ErrUnsupported.
package conntrack

package pfsync

import "time"

// Stats is a snapshot of the engine's counters and gauges (Engine.Stats).
// Counters only grow during the engine's life; gauges are current values.
// The names follow pfsync's pfsyncstats and conntrackd's statistics where
// they exist.
type Stats struct {
	// Traffic, all peers together. Per-peer figures are in Peers.
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	SendErrors          uint64 // Transport.Send failures (pfsync oerrors)

	// Input validation (pfsync badver, badlen, badact, badval).
	BadVersion  uint64 // frames of an unknown protocol version
	BadLength   uint64 // truncated frames or sections
	UnknownKind uint64 // sections of an unknown kind, skipped
	BadValue    uint64 // frames or records that failed validation
	NotForUs    uint64 // frames from ourselves or unknown-envelope plaintext
	// Unconfirmed counts frames dropped because their sender has not yet
	// echoed this node's epoch in a Hello (see PeerStats.Confirmed).
	Unconfirmed uint64
	// PeersRefused counts frames dropped because their sender was new and
	// the engine already remembered 256 peers, or 16 not yet confirmed
	// (unconfirmed peers are forgotten once silent for DeadAfter
	// heartbeats), or was removed with Engine.RemovePeer.
	PeersRefused uint64

	// Authentication, by the Sealer error sentinel.
	AuthFailures uint64 // all of the below
	BadAuth      uint64
	Replay       uint64
	StaleEpoch   uint64
	UnknownKey   uint64
	Truncated    uint64

	// Merging.
	Stale       uint64 // received copies older than ours in some direction (pfsync stale)
	Suppressed  uint64 // received copies a tombstone suppressed
	TableErrors uint64 // Table calls that returned an error
	Expired     uint64 // remote records not committed because their lifetime ran out in the engine

	// Reliability.
	Retransmits      uint64 // records queued again because a peer nacked their frame
	NacksSent        uint64
	NacksReceived    uint64
	RequestsSent     uint64 // records asked for by id (pfsync UPD_REQ)
	RequestsAnswered uint64
	// RequestsIgnored counts requests for a record this node neither holds
	// nor remembers deleting, and did not create in this life: another
	// node's, or its own from before a restart (which the peers' bulk syncs
	// bring back). Nothing is sent for them.
	RequestsIgnored uint64
	QueueDrops      uint64 // changes dropped because MaxPending was reached
	ResendDrops     uint64 // record references (and control elements) dropped because ResendLimit was reached
	PeerFlushes     uint64 // local changes sent at once: a peer had changed the record less than 2 s before
	GapsGivenUp     uint64 // times frames of a peer's stream were given up for good (then resynchronised)

	// Bulk sync, as receiver (Started/Completed/Failed) and sender (Sent).
	BulkStarted   uint64
	BulkCompleted uint64
	BulkFailed    uint64 // attempts that timed out or failed the digest check
	BulkGaveUp    uint64 // peers for which every retry failed
	BulkSent      uint64 // bulk transfers sent to peers
	// BulkRecordsSent counts the records sent in bulk transfers (first
	// transmissions; retransmissions are in Retransmits).
	BulkRecordsSent uint64
	// BulkRangesFailed counts the BulkMarks whose digest did not match
	// the records received in their buckets.
	BulkRangesFailed uint64
	// BulkBucketsRetried counts the buckets (of wire.Buckets) asked for
	// again because their range failed or never arrived: a retry costs
	// those, not the table.
	BulkBucketsRetried uint64

	// Anti-entropy.
	DigestsSent      uint64
	DigestMismatches uint64 // anti-entropy buckets (of 64) found different from the owner's
	// DigestsRefused counts digest parts not compared, each of which would
	// have cost a pass over the table: parts smaller than a sender at the
	// smallest MTU makes them, parts naming buckets already compared in
	// the same round (anti-entropy: one round per peer per Heartbeat) or
	// resync, and requests for the whole-table digest within a Heartbeat
	// of the last one answered for the same peer.
	DigestsRefused uint64

	// Resynchronisation after frames lost for good (a peer back after a
	// silence, a gap its resend queue could not fill): by digest, fetching
	// only the buckets that differ, when the peer's table was once held
	// whole; a whole-table bulk otherwise.
	Resyncs        uint64 // resynchronisations by digest started
	ResyncBuckets  uint64 // buckets (of wire.Buckets) they found different and fetched
	ResyncTimeouts uint64 // peers that sent no digest in time: a whole-table bulk instead

	// Gauges.
	Pending      int  // records queued for the next frame
	ResendQueue  int  // record references (and control elements) waiting for acks
	PeersUp      int  // peers heard within DeadAfter heartbeats
	Records      int  // live records held by the engine
	LocalRecords int  // of which created by this node
	External     int  // remote records not yet committed to the Table (CommitOnTakeover)
	Tombstones   int  // remembered deletes
	BulkExpected int  // records announced by the running bulk syncs
	BulkReceived int  // records received so far in them
	BulkDone     bool // the node is in sync: a bulk from every peer up, or founder (DemoteSourceBulk)
	Degraded     bool // in sync, but a required peer's bulk sync failed every retry
	Demotion     int  // current CARP demotion (Engine.Demotion)
	Peers        map[NodeID]PeerStats
}

// PeerStats is the per-peer part of Stats.
type PeerStats struct {
	Up bool
	// Confirmed: the peer has echoed this node's current epoch in a Hello,
	// so it is live, not a recording. Until then only its Hellos count.
	Confirmed           bool
	Epoch               uint64    // the peer's current epoch (changes when it restarts)
	LastHeard           time.Time // zero if never heard
	FramesIn, FramesOut uint64    // FramesOut counts broadcasts too
	BytesIn, BytesOut   uint64
	Acked               uint64 // highest sequence number the peer acknowledged
	Received            uint64 // highest in-order sequence number received from it
	Restarts            uint64 // epoch changes seen
}

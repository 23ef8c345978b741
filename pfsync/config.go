package pfsync

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Demoter receives the engine's CARP demotion. carp.Group satisfies it; the
// two packages do not import each other. SetDemotion(source, 0) clears a
// source. It is called from the engine's goroutines, serially, and must not
// block for long.
type Demoter interface {
	SetDemotion(source string, n int)
}

// Demotion sources the engine reports to its Demoter.
const (
	// DemoteSourceBulk is raised from Start until the node is in sync
	// (OpenBSD pfsync's +32 "pfsync start"): a full bulk sync, digest
	// checked, completed from every peer currently up — a peer that goes
	// down stops being required, unless no peer's bulk completed at all:
	// the node then waits for one — or, for a node that heard no peer at
	// all within Config.Discovery after Start, at the end of that window
	// (the founder of the cluster has nothing to fetch). It is lowered to
	// Config.DemoteDegraded instead of 0 if a required peer's bulk failed
	// every retry. Once in sync a node stays in sync: a booting peer does
	// not demote a running master.
	DemoteSourceBulk = "pfsync-bulk"
)

// CommitMode says when records received from peers reach the Table.
type CommitMode uint8

const (
	// CommitDirect applies every remote insert, update and delete to the
	// Table as it arrives, like pfsync (and conntrackd with
	// DisableExternalCache). PrepareTakeover then has nothing to do.
	CommitDirect CommitMode = iota
	// CommitOnTakeover keeps remote records in the engine (conntrackd's
	// external cache) and hands them to the Table only in PrepareTakeover,
	// so a backup's dataplane holds no foreign state until it becomes
	// master.
	CommitOnTakeover
)

// String returns "direct" or "on-takeover".
func (m CommitMode) String() string {
	switch m {
	case CommitDirect:
		return "direct"
	case CommitOnTakeover:
		return "on-takeover"
	}
	return fmt.Sprintf("commit-mode(%d)", uint8(m))
}

// Config configures an Engine. Node and Transport are required; Sealer is
// required unless Insecure is set. Every zero duration or count means the
// documented default.
type Config struct {
	// Node is this node's id: the sender of every frame and the creator of
	// the records it allocates with NewID. It must be unique in the cluster
	// and is kept across restarts.
	Node NodeID
	// Transport carries the frames.
	Transport Transport
	// Sealer authenticates and encrypts frames (pfsync/seal). New refuses a
	// nil Sealer unless Insecure is set.
	Sealer Sealer
	// Insecure allows running without a Sealer: each datagram is the bare
	// plaintext frame (its header names the sender), and anyone on the sync
	// link can inject state — pfsync's own exposure. New logs a warning.
	Insecure bool

	// Table receives the records of other nodes; nil means the engine only
	// keeps them itself (Records, PrepareTakeover then has nowhere to commit
	// and returns an error).
	Table Table
	// Commit selects when remote records reach Table; the zero value is
	// CommitDirect.
	Commit CommitMode
	// Demoter receives the demotion (see DemoteSourceBulk); nil means
	// none.
	Demoter Demoter
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger

	// FlushDelay is how long a queued change may wait for others to share
	// its frame; zero means 100 ms (pfsync waits up to 1 s). Range 1 ms-1 s.
	FlushDelay time.Duration
	// Heartbeat is the interval of the heartbeat (carrying acks) sent when
	// nothing else was sent (conntrackd's ALIVE); zero means 1 s.
	// Range 10 ms-1 min.
	Heartbeat time.Duration
	// DeadAfter is how many heartbeat intervals without a frame make a peer
	// down; zero means 3. Range 2-100.
	DeadAfter int
	// AckDelay is how long the receiver may delay an ack or nack; zero
	// means FlushDelay/2. Range 1 ms-Heartbeat.
	AckDelay time.Duration

	// BulkRate is the number of bulk-sync frames per second sent to a
	// joining peer (a token bucket; pfsync sends 50 per second, far too few
	// for big tables); zero means 2000. Range 1-10000000.
	BulkRate int
	// BulkBurst is the token bucket's depth in frames; zero means 32.
	// Range 1-100000.
	BulkBurst int
	// BulkRetries is how many attempts in a row of a bulk sync from one
	// peer may end (timeout, or ranges whose digest did not match) without
	// settling a single range before the sync is reported as failed; zero
	// means 12 (pfsync's limit). An attempt asks only for the ranges not
	// settled yet, and one that settles some starts the count again.
	// Range 1-1000.
	BulkRetries int
	// Discovery is how long a node that has heard no peer waits after Start
	// before it declares itself the founder of the cluster, in sync with
	// nothing to fetch (DemoteSourceBulk). Peers answer a starting node's
	// hello at once and send at least one frame per Heartbeat, so a few
	// heartbeat intervals tell a lone node from a joining one; OpenBSD
	// pfsync gives up after a timeout too. Zero means 3 × Heartbeat.
	// Range Heartbeat-10 min.
	Discovery time.Duration
	// BulkTimeout is how long a bulk request waits for the bulk to start,
	// and how long a running bulk may go without progress; zero means 2 s.
	// Range 10 ms-10 min.
	BulkTimeout time.Duration

	// AntiEntropy is the interval of the digest exchange that repairs
	// silent divergence of idle records; zero means 30 s, negative
	// disables it. Range 100 ms-24 h.
	AntiEntropy time.Duration
	// TombstoneTTL is how long a delete is remembered so that late copies
	// cannot resurrect the record; zero means 60 s. Range 1 s-24 h.
	TombstoneTTL time.Duration

	// MaxPending bounds the records queued for sending; beyond it changes
	// are dropped and counted (Stats.QueueDrops) and anti-entropy repairs
	// them later. Zero means 1048576. Range 1-1<<30.
	MaxPending int
	// ResendLimit bounds the record references (and control elements, such
	// as requests) waiting for acks; beyond it the oldest unacknowledged
	// frames are forgotten and counted, and the peers' digests repair them
	// (conntrackd's ResendQueueSize). Zero means 1048576. Range 1-1<<30.
	ResendLimit int

	// DemoteInit is the demotion held until the node is in sync (see
	// DemoteSourceBulk); zero means 32 (OpenBSD). Range 1-255.
	DemoteInit int
	// DemoteDegraded replaces DemoteInit when the bulk sync from a peer
	// failed every retry
	// (the engine does not pretend success); zero means 1. Range 1-255.
	DemoteDegraded int
}

// errConfig is wrapped by every validation error, which then names the
// field: "pfsync: Config.Node 0 out of range 1-4294967295".
var errConfig = errors.New("pfsync")

func durRange(name string, v *time.Duration, def, lo, hi time.Duration) error {
	if *v == 0 {
		*v = def
	}
	if *v < lo || *v > hi {
		return fmt.Errorf("%w: Config.%s %v out of range %v-%v", errConfig, name, *v, lo, hi)
	}
	return nil
}

func intRange(name string, v *int, def, lo, hi int) error {
	if *v == 0 {
		*v = def
	}
	if *v < lo || *v > hi {
		return fmt.Errorf("%w: Config.%s %d out of range %d-%d", errConfig, name, *v, lo, hi)
	}
	return nil
}

// withDefaults returns c with defaults filled in, or the first invalid
// field.
func (c Config) withDefaults() (Config, error) {
	if c.Node == 0 {
		return c, fmt.Errorf("%w: Config.Node 0 out of range 1-4294967295", errConfig)
	}
	if c.Transport == nil {
		return c, fmt.Errorf("%w: Config.Transport is nil, want a Transport", errConfig)
	}
	if c.Sealer == nil && !c.Insecure {
		return c, fmt.Errorf("%w: Config.Sealer is nil and Config.Insecure is false (refusing to sync state unauthenticated)", errConfig)
	}
	if c.Commit > CommitOnTakeover {
		return c, fmt.Errorf("%w: Config.Commit %d out of range 0-1", errConfig, uint8(c.Commit))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// FlushDelay and Heartbeat first: AckDelay's default and range use them.
	if err := firstError(
		durRange("FlushDelay", &c.FlushDelay, 100*time.Millisecond, time.Millisecond, time.Second),
		durRange("Heartbeat", &c.Heartbeat, time.Second, 10*time.Millisecond, time.Minute),
		intRange("DeadAfter", &c.DeadAfter, 3, 2, 100),
	); err != nil {
		return c, err
	}
	errs := []error{
		durRange("Discovery", &c.Discovery, 3*c.Heartbeat, c.Heartbeat, 10*time.Minute),
		durRange("AckDelay", &c.AckDelay, max(c.FlushDelay/2, time.Millisecond), time.Millisecond, c.Heartbeat),
		intRange("BulkRate", &c.BulkRate, 2000, 1, 10_000_000),
		intRange("BulkBurst", &c.BulkBurst, 32, 1, 100_000),
		intRange("BulkRetries", &c.BulkRetries, 12, 1, 1000),
		durRange("BulkTimeout", &c.BulkTimeout, 2*time.Second, 10*time.Millisecond, 10*time.Minute),
		durRange("TombstoneTTL", &c.TombstoneTTL, time.Minute, time.Second, 24*time.Hour),
		intRange("MaxPending", &c.MaxPending, 1<<20, 1, 1<<30),
		intRange("ResendLimit", &c.ResendLimit, 1<<20, 1, 1<<30),
		intRange("DemoteInit", &c.DemoteInit, 32, 1, 255),
		intRange("DemoteDegraded", &c.DemoteDegraded, 1, 1, 255),
	}
	if c.AntiEntropy >= 0 {
		errs = append(errs, durRange("AntiEntropy", &c.AntiEntropy, 30*time.Second, 100*time.Millisecond, 24*time.Hour))
	}
	return c, firstError(errs...)
}

// firstError returns the first non-nil error: the first invalid field.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

package conntrack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
)

// ErrTableFull is wrapped by the error of a peer's record that the kernel
// refused because its conntrack table is full (nf_conntrack_max): nothing
// is wrong with the record, and it can be written once flows expire. The
// backend counts these in Stats.TableFull and logs them at most once every
// ten seconds.
var ErrTableFull = errors.New("conntrack: kernel table full")

// Sink receives the local changes of the kernel table: the pfsync engine
// (*pfsync.Engine satisfies it), given to Backend.Start. It is called from
// the backend's watcher
// goroutine, serially and in kernel event order, never while the backend
// holds its own lock, so a Sink may call back into the Backend's Table
// methods.
type Sink interface {
	// NewID allocates the identity of a flow this node saw first. The
	// backend never allocates ids itself: one allocator per node (the
	// engine's) is what keeps ids unique (record.IDAllocator).
	NewID() record.ID
	// Upsert reports a new or changed flow. For flows this node created the
	// record's Version grows with every change; for flows injected from a
	// peer's record the backend reports the peer's identity and the version
	// it holds (traffic after a takeover advances the peer's record).
	Upsert(rec record.Record) error
	// Delete reports that a flow this node created has left the kernel
	// table.
	Delete(id record.ID) error
}

// Filter selects the kernel flows that are replicated, like conntrackd's
// "Filter From Userspace". The zero Filter replicates every flow except
// loopback and IPv6 link-local traffic, which never leaves the node.
//
// It applies in both directions: a peer's record that this node's Filter
// would not have sent (an ignored address, zone or protocol, a master
// tuple from an ignored address) is not written into the kernel either,
// and is counted in Stats.Refused. A peer configured differently, or one
// that lies, cannot install flows this node was told to leave alone.
// AssuredOnly is the exception: it only thins out what this node sends.
type Filter struct {
	// AssuredOnly replicates a flow only once it is ASSURED (TCP handshake
	// done, UDP seen in both directions more than once), which drops the
	// event storm of short-lived and half-open flows; conntrackd users get
	// the same with "--ctevents assured,destroy". It does not apply to
	// peers' records: a takeover needs the half-open flows a peer chose to
	// send.
	AssuredOnly bool
	// Ignore lists addresses whose flows are never replicated: the node's
	// own addresses, the virtual addresses and the sync link. As in
	// conntrackd's "Address Ignore", a flow is ignored when its original
	// source or its reply source is inside one of the prefixes — traffic
	// from or to the node itself — while forwarded traffic that is
	// source-NATed to a VIP (reply destination) is still replicated.
	Ignore []netip.Prefix
	// IgnoreZones lists conntrack zones that are never replicated.
	IgnoreZones []uint16
	// Protocols, when not empty, lists the only IP protocols replicated
	// (conntrackd's "Protocol Accept", e.g. TCP, UDP, SCTP).
	Protocols []uint8
}

// Config configures a Backend. The zero Config watches and writes the
// caller's namespace with the defaults below.
type Config struct {
	// NetNS is a file descriptor of the network namespace whose conntrack
	// table the backend uses; zero means the caller's namespace. The
	// caller keeps it open until Close (Start and Purge open sockets in
	// it).
	NetNS int
	// Filter selects the local flows that are replicated.
	Filter Filter
	// ReadBuffer is the receive buffer of the event socket in bytes; zero
	// means 8 MiB. Event bursts beyond it overrun the socket (ENOBUFS) and
	// cost a full resync, so busy firewalls want it large (conntrackd's
	// NetlinkBufferSize; its example uses 2-8 MiB). The backend uses
	// SO_RCVBUFFORCE when it may, so net.core.rmem_max does not cap it.
	// Range 64 KiB-1 GiB.
	ReadBuffer int
	// Resync is the interval of the periodic full-table resync. Besides
	// repairing anything a lost event missed, it keeps long-lived idle
	// flows alive on the peers: packets refresh a kernel timeout without
	// an event, so the resync re-reports a flow whose peers' copies would
	// expire within two intervals while its own timeout was refreshed.
	// Keep it below half the shortest timeout of flows that must survive
	// quiet periods (UDP streams: 120 s, so at most 60 s). Zero means 30 s;
	// negative disables it. Range 1 s-24 h.
	Resync time.Duration
	// StrictLocal leaves this node's own TCP flows with the kernel's
	// sequence window tracking until Takeover. By default the watcher sets
	// BE_LIBERAL (and SACK_PERM) on each replicated TCP flow of this node
	// once it carries data (ESTABLISHED to LAST_ACK), as every peer's copy
	// already has: whenever a peer forwards one direction of the flow
	// while this node forwards the other — both nodes MASTER of different
	// groups after lost adverts, a group handed over alone, active/active —
	// this node sees acknowledgements of data that never passed through it.
	// With strict tracking those packets are INVALID; the reply to a
	// source-NATed flow is then not translated back, reaches this node's
	// own stack at the NAT address and is answered with a reset, and the
	// flow dies. Set it only where a peer can never forward while this
	// node is master. Each flow costs a netlink request (those found
	// within 10 ms share one write), counted in Stats.Liberalized.
	StrictLocal bool
	// Logger receives the backend's logs; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.NetNS < 0 {
		return c, fmt.Errorf("conntrack: Config.NetNS %d out of range 0-2147483647", c.NetNS)
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = 8 << 20
	}
	if c.ReadBuffer < 64<<10 || c.ReadBuffer > 1<<30 {
		return c, fmt.Errorf("conntrack: Config.ReadBuffer %d out of range %d-%d (0 means 8 MiB)", c.ReadBuffer, 64<<10, 1<<30)
	}
	if c.Resync == 0 {
		c.Resync = 30 * time.Second
	}
	if c.Resync > 0 && (c.Resync < time.Second || c.Resync > 24*time.Hour) {
		return c, fmt.Errorf("conntrack: Config.Resync %v out of range 1s-24h (0 means 30s, negative disables)", c.Resync)
	}
	for i, p := range c.Filter.Ignore {
		if !p.IsValid() {
			return c, fmt.Errorf("conntrack: Config.Filter.Ignore[%d] %v is not a valid prefix", i, p)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Stats are the backend's counters. They only grow, except Tracked.
type Stats struct {
	Events   uint64 // kernel events received (new, update, destroy)
	Filtered uint64 // events and dumped flows not replicated because of the Filter
	Echoes   uint64 // events of injected flows that only repeated what was injected
	Upserts  uint64 // inserts and updates reported to the Sink
	Deletes  uint64 // deletes reported to the Sink
	Resyncs  uint64 // full-table resyncs (initial, periodic, after overruns, on request)
	Overruns uint64 // event socket overruns (ENOBUFS): lost events, repaired by a resync
	Errors   uint64 // other receive, dump, conversion and Sink errors

	// KernelDrops counts what the kernel's full table cost, read at every
	// resync: packets of new flows it dropped for want of an entry and
	// unassured flows it evicted to make room (its drop and early_drop
	// counters, since Start).
	KernelDrops uint64

	Injected      uint64 // remote records created in the kernel
	TableFull     uint64 // remote records the kernel refused because its table was full (ENOMEM; also in InjectErrors)
	Refused       uint64 // remote records not written because the Filter ignores them (or loopback, IPv6 link-local)
	Capped        uint64 // remote records whose lifetime was cut to the kernel's timeout for their state
	InjectUpdates uint64 // remote records that updated an existing kernel entry
	Recreated     uint64 // updates the kernel refused even without status, done as delete and create
	InjectErrors  uint64 // remote records that could not be written
	Unchanged     uint64 // remote records the kernel held in that state already (not written again)
	Conflicts     uint64 // remote records whose tuple is a flow this node created under another identity (written as updates of the local entry)
	Liberalized   uint64 // this node's TCP flows set BE_LIBERAL by the watcher or Takeover
	Parked        uint64 // RELATED records that had to wait for their master

	Tracked int // flows the backend currently knows (local and injected)
}

// CommitResult reports a Commit.
type CommitResult struct {
	Masters  int           // records without a master connection, written first
	Related  int           // RELATED records (with a master tuple or EXPECTED), written second
	Created  int           // entries created
	Updated  int           // existing entries updated (EEXIST)
	Current  int           // records the kernel held in that state already (an earlier Insert or Commit wrote them)
	Refused  int           // records not written because this node's Filter ignores them
	Failed   int           // records not written (the error joins their errors)
	Skipped  int           // records not attempted because ctx ended
	Duration time.Duration // wall time of the commit
}

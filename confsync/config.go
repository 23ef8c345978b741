package confsync

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/gocarp/gocarp/pfsync"
)

// Defaults for the zero values of Config.
const (
	DefaultInterval    = time.Second
	DefaultRetransmit  = 100 * time.Millisecond
	DefaultWindowBytes = 2 << 20
	DefaultMaxSize     = 256 << 20
	DefaultDemoteBy    = 50
)

// DemoteSource is the source under which Config.Demoter is demoted.
const DemoteSource = "confsync"

const (
	maxWindowChunks    = 2048
	maxRequestedAtOnce = maxWindowChunks // chunks a publisher sends for one REQUEST
	maxWindowBytes     = 16 << 20        // bytes a publisher sends for one REQUEST, and the largest window
	minInterval        = 10 * time.Millisecond
	minChunk           = 64
)

// ApplyFunc installs version of document name. It must be atomic from the
// host's point of view: either the new version is in force when it returns
// nil, or it returns an error and the previous version stays in force. It
// is called from a goroutine of the Node, one call at a time, and must not
// call Close; it may call Status. The host may keep data: the Node does
// not touch it afterwards.
type ApplyFunc func(name string, version uint64, data []byte) error

// Config configures a Node. Node, Transport, Sealer and, when Subscribe is
// not empty, Apply are required.
type Config struct {
	// Node is this node's id: the sender id of its sealer.
	Node pfsync.NodeID
	// Transport carries the messages; the Node owns it from Start and
	// closes it in Close. Its MTU bounds every message.
	Transport pfsync.Transport
	// Sealer seals and opens every message. Build it with package
	// pfsync/seal over Key(psk), the sync key derived for this protocol,
	// and the node's boot value.
	Sealer pfsync.Sealer
	// Publish names the documents this node may publish.
	Publish []string
	// Subscribe maps each document this node receives to the node that
	// publishes it. A name may not be both published and subscribed.
	Subscribe map[string]pfsync.NodeID
	// Apply installs a received document; required when Subscribe is not
	// empty.
	Apply ApplyFunc
	// StateFile is where a subscriber persists what it applied (a small
	// JSON file, replaced atomically), so a restart asks only for newer
	// versions. Empty keeps it in memory only: a restart re-applies the
	// publisher's current versions.
	StateFile string
	// Interval is how often a publisher offers its documents and a
	// subscriber reports what it has. Zero means DefaultInterval.
	Interval time.Duration
	// Retransmit is how long a subscriber waits for a requested chunk
	// before asking again; it doubles while nothing arrives, up to
	// Interval. Zero means DefaultRetransmit.
	Retransmit time.Duration
	// WindowBytes bounds the bytes a subscriber has requested and not yet
	// received, per document: it should fit the socket receive buffer.
	// Zero means DefaultWindowBytes.
	WindowBytes int
	// MaxSize is the largest document a subscriber accepts. Zero means
	// DefaultMaxSize.
	MaxSize int64
	// Demoter, if set, is held demoted by DemoteBy (source DemoteSource)
	// while a subscribed document failed to apply or is older than the
	// version its publisher offers.
	Demoter pfsync.Demoter
	// DemoteBy is the demotion applied; zero means DefaultDemoteBy.
	DemoteBy int
	// Logger receives what went wrong (nil discards).
	Logger *slog.Logger
}

// validate checks c, fills defaults into a copy and returns it.
func (c Config) validate() (Config, error) {
	if c.Node == 0 {
		return c, fmt.Errorf("confsync: Config.Node 0 out of range 1-%d", uint32(math.MaxUint32))
	}
	if c.Transport == nil {
		return c, fmt.Errorf("confsync: Config.Transport nil; want a pfsync.Transport")
	}
	if c.Sealer == nil {
		return c, fmt.Errorf("confsync: Config.Sealer nil; want a sealer (package pfsync/seal)")
	}
	if len(c.Subscribe) > 0 && c.Apply == nil {
		return c, fmt.Errorf("confsync: Config.Apply nil with %d subscribed documents", len(c.Subscribe))
	}
	seen := make(map[string]bool)
	for _, n := range c.Publish {
		if err := checkName(n); err != nil {
			return c, fmt.Errorf("confsync: Config.Publish %q: %w", n, err)
		}
		if seen[n] {
			return c, fmt.Errorf("confsync: Config.Publish %q listed twice", n)
		}
		seen[n] = true
	}
	for n, from := range c.Subscribe {
		if err := checkName(n); err != nil {
			return c, fmt.Errorf("confsync: Config.Subscribe %q: %w", n, err)
		}
		if seen[n] {
			return c, fmt.Errorf("confsync: Config.Subscribe %q is also in Config.Publish: a subscriber never publishes what it subscribes to", n)
		}
		if from == 0 || from == c.Node {
			return c, fmt.Errorf("confsync: Config.Subscribe[%q] node %d out of range 1-%d, not this node", n, from, uint32(math.MaxUint32))
		}
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < minInterval {
		return c, fmt.Errorf("confsync: Config.Interval %v out of range (0 or at least %v)", c.Interval, minInterval)
	}
	if c.Retransmit == 0 {
		c.Retransmit = DefaultRetransmit
	}
	if c.Retransmit < time.Millisecond || c.Retransmit > c.Interval {
		return c, fmt.Errorf("confsync: Config.Retransmit %v out of range (0 or 1ms-Config.Interval %v)", c.Retransmit, c.Interval)
	}
	if c.WindowBytes == 0 {
		c.WindowBytes = DefaultWindowBytes
	}
	if c.WindowBytes < 1024 || c.WindowBytes > maxWindowBytes {
		return c, fmt.Errorf("confsync: Config.WindowBytes %d out of range 1024-%d", c.WindowBytes, maxWindowBytes)
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.MaxSize < 1 || c.MaxSize > maxDocSize {
		return c, fmt.Errorf("confsync: Config.MaxSize %d out of range 1-%d", c.MaxSize, int64(maxDocSize))
	}
	if c.DemoteBy == 0 {
		c.DemoteBy = DefaultDemoteBy
	}
	if c.DemoteBy < 1 || c.DemoteBy > 255 {
		return c, fmt.Errorf("confsync: Config.DemoteBy %d out of range 1-255", c.DemoteBy)
	}
	if room := c.Transport.MTU() - c.Sealer.Overhead() - dataFixedLen - maxNameLen; room < minChunk {
		return c, fmt.Errorf("confsync: Config.Transport MTU %d leaves %d bytes per chunk, want at least %d", c.Transport.MTU(), room, minChunk)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func checkName(n string) error {
	if len(n) == 0 || len(n) > maxNameLen {
		return fmt.Errorf("name length %d out of range 1-%d", len(n), maxNameLen)
	}
	return nil
}

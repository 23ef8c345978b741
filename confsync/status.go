package confsync

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/gocarp/gocarp/pfsync"
)

// Role is a node's part in one document.
type Role int

// Roles.
const (
	Publisher Role = iota + 1
	Subscriber
)

func (r Role) String() string {
	switch r {
	case Publisher:
		return "publish"
	case Subscriber:
		return "subscribe"
	}
	return "unknown"
}

// DocumentStatus is what a node knows of one document.
type DocumentStatus struct {
	Name string
	Role Role
	// Version is, for a publisher, the version it publishes (0: not yet),
	// and for a subscriber the version in force: the last one applied.
	Version uint64
	// Publisher is, for a subscriber, the node the document comes from.
	Publisher pfsync.NodeID
	// Offered is, for a subscriber, the newest version its publisher
	// offered in this run (0: not heard yet).
	Offered uint64
	// Receiving is, for a subscriber, the version being transferred (0:
	// none), and Received how many of its bytes arrived.
	Receiving, Received uint64
	// Failed is, for a subscriber, the newest version whose apply failed
	// (0: none) and Err why; Err also reports a state file that could not
	// be written. A newer version is tried when offered.
	Failed uint64
	Err    string
	// Peers is, for a publisher, what each subscriber last reported.
	Peers []PeerStatus
}

// PeerStatus is what a subscriber reported of one document.
type PeerStatus struct {
	Node    pfsync.NodeID
	Applied uint64 // version in force on the peer
	Failed  uint64 // newest version the peer failed to apply
	Err     string
	Heard   time.Time // last report from the peer
}

// Status returns every document's state, sorted by name.
func (n *Node) Status() []DocumentStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []DocumentStatus
	for _, name := range n.cfg.Publish {
		d := DocumentStatus{Name: name, Role: Publisher}
		if p := n.published[name]; p != nil {
			d.Version = p.version
		}
		for id, pv := range n.peers {
			if h, ok := pv.docs[name]; ok {
				d.Peers = append(d.Peers, PeerStatus{Node: id, Applied: h.applied, Failed: h.failed, Err: h.err, Heard: pv.heard})
			}
		}
		slices.SortFunc(d.Peers, func(a, b PeerStatus) int { return int(int64(a.Node) - int64(b.Node)) })
		out = append(out, d)
	}
	for _, s := range n.subs {
		d := DocumentStatus{Name: s.name, Role: Subscriber, Version: s.applied.Version, Publisher: s.from,
			Offered: s.offered, Failed: s.failed, Err: s.err}
		if t := s.xfer; t != nil {
			d.Receiving = t.version
			d.Received = min(uint64(t.have)*uint64(t.chunk), t.size)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DocumentStatus) int { return cmpString(a.Name, b.Name) })
	return out
}

// Stats are a Node's counters, all monotonic.
type Stats struct {
	Received       uint64 // messages authenticated and decoded
	Tampered       uint64 // rejected: failed authentication or decoding, or a document whose digest did not match
	Replayed       uint64 // rejected: replayed or superseded frames, and data not answering this run's requests (recordings)
	Older          uint64 // offers of a version older than the one in force, ignored
	Applied        uint64 // documents applied
	ApplyErrors    uint64 // applies that failed
	ChunksSent     uint64
	ChunksReceived uint64 // new chunks stored (duplicates not counted)
	BytesSent      uint64 // document bytes sent in chunks
	Retransmits    uint64 // requests repeated after Config.Retransmit without progress
	SendErrors     uint64
}

type counters struct {
	received, tampered, replayed, older, applied, applyErrors atomic.Uint64
	chunksSent, chunksReceived, bytesSent, retransmits        atomic.Uint64
	sendErrors                                                atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	c := &n.stats
	return Stats{
		Received: c.received.Load(), Tampered: c.tampered.Load(), Replayed: c.replayed.Load(),
		Older: c.older.Load(), Applied: c.applied.Load(), ApplyErrors: c.applyErrors.Load(),
		ChunksSent: c.chunksSent.Load(), ChunksReceived: c.chunksReceived.Load(),
		BytesSent: c.bytesSent.Load(), Retransmits: c.retransmits.Load(), SendErrors: c.sendErrors.Load(),
	}
}

package pfsync

import (
	"net/netip"
)

// NodeID identifies a node of the sync cluster. It is the creator id of every
// record the node creates and the sender id of every frame it sends. Zero is
// never a valid node id.
type NodeID uint32

// Broadcast as the destination of Transport.Send means every peer.
const Broadcast NodeID = 0

// Datagram is one received frame.
type Datagram struct {
	From    NodeID         // sender as the transport knows it; 0 if the transport cannot tell (the sealed envelope carries the authenticated id)
	Src     netip.AddrPort // transport-level source, for logs; zero for in-memory transports
	Payload []byte         // the frame; owned by the receiver
}

// Transport carries sync frames between the nodes of a cluster.
//
// Implementations: pfsync/pfsynctest (in-memory network with loss,
// duplication, reordering, delay, partitions and an MTU) and pfsync/udp
// (UDP unicast to a static peer list, UDP multicast on one interface).
//
// Contract:
//   - MTU is the largest frame Send accepts, in bytes. It does not change
//     after construction.
//   - Send transmits one frame, best effort, to one peer or to every peer
//     (to == Broadcast). It never blocks on the network for long; a frame
//     larger than MTU returns an error. The caller may reuse frame after Send
//     returns. Delivery may fail, duplicate or reorder silently: the engine
//     provides reliability.
//   - Receive blocks until a frame arrives. After Close, a blocked or later
//     Receive returns an error wrapping net.ErrClosed.
//   - Close releases resources, unblocks Receive and is idempotent.
//
// Send and Receive may be called concurrently.
type Transport interface {
	MTU() int
	Send(to NodeID, frame []byte) error
	Receive() (Datagram, error)
	Close() error
}

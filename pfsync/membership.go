package pfsync

import (
	"fmt"
	"time"
)

// The engine learns its peers from the frames it receives: any sender that
// authenticates (or, Insecure, any sender the Transport delivers) becomes a
// peer, which must echo this node's epoch before its stream counts and then
// gets asked for a bulk sync. Which nodes can reach the engine is the
// Transport's business (udp.Unicast's peer list, udp.Multicast's sources).
// A peer set changed at run time therefore takes two steps, transport
// first: see RemovePeer and AddPeer.

// RemovePeer forgets peer id at run time: what the engine keeps for it is
// dropped at once — its stream (sequence window, pending acks and nacks),
// its acknowledgement of ours (frames held only for it are released; an
// UpsertSync no longer waits for it), the bulk sync from it and the one to
// it, the digest comparisons, its entry in Stats.Peers, and its part in
// being in sync: a node that was waiting for the bulk sync of id alone is
// in sync once id is gone, and its demotion (DemoteSourceBulk) follows at
// once. Records id created stay: they are flows this node may carry.
//
// Frames from id are dropped from then on, and counted in
// Stats.PeersRefused, until AddPeer(id): a removed node that is still
// running, or frames of it already on their way, cannot bring it back.
// Remove id from the Transport's peers first (udp.Unicast.SetPeers), so
// that nothing is sent to it any more. The Sealer's replay state for id
// is kept on purpose: should id come back, a recording of its old frames
// is still refused.
//
// RemovePeer reports whether id was a known peer. Removing this node's own
// id or Broadcast is an error.
func (e *Engine) RemovePeer(id NodeID) (bool, error) {
	if err := e.checkPeerID("RemovePeer", id); err != nil {
		return false, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false, ErrClosed
	}
	if e.removed == nil {
		e.removed = make(map[NodeID]struct{})
	}
	e.removed[id] = struct{}{}
	_, known := e.peers[id]
	if known {
		delete(e.peers, id)
		e.log.Info("pfsync: peer removed", "peer", uint32(id))
		e.ackProgress() // an UpsertSync waiting for id's ack no longer does
		if e.started {
			now := time.Now()
			e.trimRing()
			e.syncCheck(now)
			e.wakeBy(now) // drop the bulk transfer to id, reschedule the timers
		}
	}
	e.mu.Unlock()
	if known {
		e.updateDemotion()
	}
	return known, nil
}

// AddPeer admits peer id at run time, after RemovePeer or for a node added
// to the cluster, and greets it at once: it is sent a Hello, so the two
// nodes confirm each other's run and ask each other for a bulk sync within
// a round trip instead of at the next heartbeat. Add id to the Transport's
// peers first (udp.Unicast.SetPeers), so that the Hello reaches it and its
// answer is delivered. A node already known is left as it is.
//
// A node never heard of before need not be added: its first frame makes
// it a peer. Adding this node's own id or Broadcast is an error.
func (e *Engine) AddPeer(id NodeID) error {
	if err := e.checkPeerID("AddPeer", id); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	delete(e.removed, id)
	if _, known := e.peers[id]; known || !e.started {
		// Start greets every peer.
		return nil
	}
	e.sendHello(id, false, time.Now())
	return nil
}

// checkPeerID refuses ids that cannot name a peer.
func (e *Engine) checkPeerID(method string, id NodeID) error {
	switch id {
	case Broadcast:
		return fmt.Errorf("pfsync: %s node id 0 out of range 1-4294967295", method)
	case e.cfg.Node:
		return fmt.Errorf("pfsync: %s node id %d is this node's own (Config.Node)", method, id)
	}
	return nil
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// planSyncPeers plans a change of sync.peers (reloadMu held): the
// transport's peer list is replaced, then the engine forgets the nodes
// that went (their streams and bulk syncs; the flows they created stay)
// and greets the new ones, which get a bulk sync. A peer whose address
// changed keeps its state.
func (d *daemon) planSyncPeers(next []SyncPeer) (apply func() error, changes []string, err error) {
	peers := map[pfsync.NodeID]netip.AddrPort{}
	for i, p := range next {
		ap, err := parseAddrPort(p.Address) // validated with the file
		if err != nil {
			return nil, nil, fmt.Errorf("sync.peers[%d].address %q: %w", i, p.Address, err)
		}
		peers[pfsync.NodeID(p.Node)] = ap
	}
	var gone, added []pfsync.NodeID
	for _, p := range d.syncPeers {
		if _, ok := peers[pfsync.NodeID(p.Node)]; !ok {
			gone = append(gone, pfsync.NodeID(p.Node))
		}
	}
	for _, p := range next {
		if !slices.ContainsFunc(d.syncPeers, func(o SyncPeer) bool { return o.Node == p.Node }) {
			added = append(added, pfsync.NodeID(p.Node))
		}
	}
	apply = func() error {
		if err := d.tr.SetPeers(peers); err != nil {
			return fmt.Errorf("sync.peers: %w", err)
		}
		if err := d.docs.setPeers(peers); err != nil { // the configuration sync's transport
			return fmt.Errorf("sync.peers: %w", err)
		}
		var errs []error
		for _, id := range gone {
			if _, err := d.engine.RemovePeer(id); err != nil {
				errs = append(errs, fmt.Errorf("sync.peers: removing node %d: %w", id, err))
			}
		}
		for _, id := range added {
			if err := d.engine.AddPeer(id); err != nil {
				errs = append(errs, fmt.Errorf("sync.peers: adding node %d: %w", id, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		d.syncPeers = slices.Clone(next)
		return nil
	}
	return apply, describePeers(d.syncPeers, next), nil
}

// syncKeyRollover is each step of a live key rotation: long enough for an
// operator (or a configuration manager) to reload the other node.
const syncKeyRollover = 30 * time.Second

// keyRotation is a live rotation of the sync key in progress.
type keyRotation struct {
	mu     sync.Mutex
	timers []*time.Timer
	until  time.Time // the end of the last step; zero when none runs
}

// planSyncKey plans a change of the key in sync.key_file (reloadMu held):
// nil apply when the key is the one in use (the file, or its path, may
// have changed with the same key in it).
//
// A new key is rolled over in three steps, so that two nodes reloaded
// less than syncKeyRollover apart never stop understanding each other
// (each step reaches the peer while it still accepts what this node
// sends, and this node accepts what the peer sends):
//
//  1. at once: the new key is accepted under the key id not in use; the old
//     one still seals;
//  2. after syncKeyRollover: the new key seals;
//  3. after twice syncKeyRollover: the old key is dropped, and the new one
//     is accepted under both ids, as a node that starts with it accepts
//     it (daemon.go, sendKeyID), so a node restarted afterwards is
//     understood whichever id it seals under.
func (d *daemon) planSyncKey(path string) (apply func() error, changes []string, err error) {
	key, err := seal.LoadKeyFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sync.key_file %q: %w", path, err)
	}
	if bytes.Equal(key, d.syncKey) {
		return nil, nil, nil
	}
	d.keyRot.mu.Lock()
	until := d.keyRot.until
	d.keyRot.mu.Unlock()
	if !until.IsZero() {
		return nil, nil, fmt.Errorf("sync.key_file %q holds a new key while the rotation to the previous one runs until %s: reload after it",
			path, until.UTC().Format(time.TimeOnly))
	}
	_, send := d.sealer.KeyIDs()
	next := uint8(otherKeyID)
	if send == otherKeyID {
		next = sendKeyID
	}
	old := d.syncKey
	apply = func() error {
		if err := d.rotateSealers([]seal.Key{{ID: send, Secret: old}, {ID: next, Secret: key}}, send); err != nil {
			return fmt.Errorf("sync.key_file: %w", err)
		}
		d.syncKey = key
		d.startKeyRotation(old, key, send, next)
		return nil
	}
	return apply, []string{fmt.Sprintf("sync.key_file %q: new key (id %d), sealing with it in %v, the old key (id %d) dropped in %v",
		path, next, syncKeyRollover, send, 2*syncKeyRollover)}, nil
}

// startKeyRotation schedules steps 2 and 3 of a rotation from old (id
// from) to key (id to).
func (d *daemon) startKeyRotation(old, key []byte, from, to uint8) {
	r := &d.keyRot
	r.mu.Lock()
	defer r.mu.Unlock()
	r.until = time.Now().Add(2 * syncKeyRollover)
	step := func(keys []seal.Key, send uint8, last bool) func() {
		return func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.until.IsZero() { // stopped
				return
			}
			if err := d.rotateSealers(keys, send); err != nil {
				d.log.Error("fwpair: sync key rotation", "err", err)
			} else {
				d.log.Info("fwpair: sync key rotation", "send_key_id", send, "key_ids", len(keys))
			}
			if last {
				r.until, r.timers = time.Time{}, nil
			}
		}
	}
	r.timers = []*time.Timer{
		time.AfterFunc(syncKeyRollover, step([]seal.Key{{ID: from, Secret: old}, {ID: to, Secret: key}}, to, false)),
		time.AfterFunc(2*syncKeyRollover, step([]seal.Key{{ID: sendKeyID, Secret: key}, {ID: otherKeyID, Secret: key}}, to, true)),
	}
}

// stopKeyRotation stops a rotation's pending steps (shutdown).
func (d *daemon) stopKeyRotation() {
	r := &d.keyRot
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.timers {
		t.Stop()
	}
	r.timers, r.until = nil, time.Time{}
}

// rotateSealers is one step of a key rotation on the state sync's sealer
// and the configuration sync's (documents.go), which derives its keys from
// the same ones.
func (d *daemon) rotateSealers(keys []seal.Key, send uint8) error {
	if err := d.sealer.Rotate(keys, send); err != nil {
		return err
	}
	return d.docs.rotateKeys(keys, send)
}

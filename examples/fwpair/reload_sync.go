package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/gocarp/gocarp/pfsync/seal"
)

// planSyncPeers plans a change of sync.peers (reloadMu held).
//
// The sync engine of this build takes its peers at start only, so the
// change is refused, naming the key.
func (d *daemon) planSyncPeers(next []SyncPeer) (apply func() error, changes []string, err error) {
	return nil, nil, fmt.Errorf("sync.peers cannot change while fwpair runs (%s): restart fwpair to change them",
		strings.Join(describePeers(d.syncPeers, next), ", "))
}

// planSyncKey plans a change of the key in sync.key_file (reloadMu held):
// nil apply when the key is the one in use (the file, or its path, may
// have changed with the same key in it).
//
// The sealer of this build takes its keys at start only, so a new key is
// refused, naming the key.
func (d *daemon) planSyncKey(path string) (apply func() error, changes []string, err error) {
	key, err := seal.LoadKeyFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sync.key_file %q: %w", path, err)
	}
	if bytes.Equal(key, d.syncKey) {
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("sync.key_file %q holds a new key, which cannot be put in use while fwpair runs: restart fwpair (on both nodes) to change it", path)
}

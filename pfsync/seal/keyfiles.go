package seal

import (
	"fmt"
	"slices"
)

// KeyFile names a key file and the key id its key goes by on the wire.
type KeyFile struct {
	ID   uint8
	Path string
}

// LoadKeyFiles reads every file with LoadKeyFile and returns their keys in
// the order given, ready for Config.Keys or Rotate. Two files with the
// same id, or two ids with the same key, are refused: a key under two ids
// would make a rotation between them a no-op that looks like one. Errors
// name the file's position: "seal: key files[1] (id 2): ...".
//
// A rotation from key id 1 to key id 2 without losing a frame takes three
// steps, each applied to every node (a reload: LoadKeyFiles, then Rotate),
// in any order within the step; a step starts once every node has done the
// previous one:
//
//  1. files {1, 2}, send id 1: every node accepts both keys;
//  2. files {1, 2}, send id 2: a node that switched already is understood
//     by those that did not;
//  3. files {2}, send id 2: the old key is refused from then on.
func LoadKeyFiles(files []KeyFile) ([]Key, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("seal: key files empty; want at least one")
	}
	keys := make([]Key, 0, len(files))
	for i, f := range files {
		secret, err := LoadKeyFile(f.Path)
		if err != nil {
			return nil, fmt.Errorf("seal: key files[%d] (id %d): %w", i, f.ID, err)
		}
		for j, k := range keys {
			switch {
			case k.ID == f.ID:
				return nil, fmt.Errorf("seal: key files[%d] (id %d): duplicate key id, also key files[%d] %s", i, f.ID, j, files[j].Path)
			case slices.Equal(k.Secret, secret):
				return nil, fmt.Errorf("seal: key files[%d] (id %d): same key as key files[%d] (id %d)", i, f.ID, j, k.ID)
			}
		}
		keys = append(keys, Key{ID: f.ID, Secret: secret})
	}
	return keys, nil
}

// KeyIDs returns the ids of the keys frames are accepted under, in
// increasing order, and the id of the key frames are sealed under: what a
// status report shows during a rotation.
func (s *Sealer) KeyIDs() (accepted []uint8, send uint8) {
	s.mu.Lock()
	for id := range s.prks {
		accepted = append(accepted, id)
	}
	s.mu.Unlock()
	slices.Sort(accepted)
	return accepted, s.send.Load().id
}

// DeriveKeys returns keys with each secret replaced by derive(secret),
// under the same ids: the keys of a protocol that seals under a key
// derived from the cluster's (confsync.Key), so that both rotate from the
// same key files in step. Errors name the key: "seal: keys[1] (id 2): ...".
func DeriveKeys(keys []Key, derive func(psk []byte) ([]byte, error)) ([]Key, error) {
	out := make([]Key, 0, len(keys))
	for i, k := range keys {
		secret, err := derive(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("seal: keys[%d] (id %d): %w", i, k.ID, err)
		}
		out = append(out, Key{ID: k.ID, Secret: secret})
	}
	return out, nil
}

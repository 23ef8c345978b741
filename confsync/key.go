package confsync

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// keyLabel separates the configuration sync's key from the state sync's.
const keyLabel = "gocarp confsync v1"

// Key derives, from the cluster's pre-shared key, the key the
// configuration sync seals under (pass it as a seal.Key's Secret, with the
// same key id). Both protocols thus need one key file, but a state sync
// frame replayed onto the configuration sync's port fails authentication
// instead of opening a run there, and the reverse.
func Key(psk []byte) ([]byte, error) {
	if len(psk) == 0 {
		return nil, fmt.Errorf("confsync: empty pre-shared key")
	}
	k, err := hkdf.Key(sha256.New, psk, nil, keyLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("confsync: deriving key: %w", err)
	}
	return k, nil
}

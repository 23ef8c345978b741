package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gocarp/gocarp/internal/atomicfile"
)

// Versions of the documents this node publishes or applies from its own
// files. confsync needs them to grow: a subscriber never applies a version
// at or below the one in force. fwpair persists, per document, the last
// version and the SHA-256 of its content in config_sync.state_dir, and
// next gives:
//
//   - the same version when the content is the one of that version (a
//     publisher restarting with an unchanged ruleset publishes what every
//     subscriber has; nothing is sent again);
//   - otherwise the larger of the last version + 1 and the current Unix
//     time in seconds. The clock part keeps versions growing when the
//     state directory was lost, and when the publisher role moves to the
//     other node, whose counter is behind.
//
// So after a restart of the publisher, its ruleset file as it is then wins:
// a changed file gets a version above every one published before, and the
// subscribers apply it.

// versionsFile is the file in config_sync.state_dir.
const versionsFile = "fwpair-versions.json"

type versionRecord struct {
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
}

// versionStore is the persisted last version of each document.
type versionStore struct {
	path string
	recs map[string]versionRecord
	now  func() time.Time
}

// loadVersions reads the store in dir; a missing file is an empty store.
func loadVersions(dir string) (*versionStore, error) {
	s := &versionStore{path: filepath.Join(dir, versionsFile), recs: map[string]versionRecord{}, now: time.Now}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("document versions: %w", err)
	}
	if err := json.Unmarshal(b, &s.recs); err != nil {
		return nil, fmt.Errorf("document versions %s: %w", s.path, err)
	}
	return s, nil
}

// get returns the last version of name and its digest (0 if none).
func (s *versionStore) get(name string) (uint64, string) {
	r := s.recs[name]
	return r.Version, r.SHA256
}

// next returns the version of content digest for name, persisting it
// before it is returned (see above).
func (s *versionStore) next(name string, digest [32]byte) (uint64, error) {
	d := hex.EncodeToString(digest[:])
	r := s.recs[name]
	if r.Version != 0 && r.SHA256 == d {
		return r.Version, nil
	}
	v := r.Version + 1
	if t := s.now().Unix(); t > 0 && uint64(t) > v {
		v = uint64(t)
	}
	old := r
	s.recs[name] = versionRecord{Version: v, SHA256: d}
	b, err := json.MarshalIndent(s.recs, "", "  ")
	if err == nil {
		err = atomicfile.Write(s.path, append(b, '\n'))
	}
	if err != nil {
		if old.Version == 0 {
			delete(s.recs, name)
		} else {
			s.recs[name] = old
		}
		return 0, fmt.Errorf("document versions: %w", err)
	}
	return v, nil
}

package confsync

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/gocarp/gocarp/internal/atomicfile"
)

// stateFormat is the version of the state file.
const stateFormat = 1

// maxStateFile bounds what is read of a state file.
const maxStateFile = 1 << 20

// stateFile is the subscriber's persisted record of what it applied.
type stateFile struct {
	Format    int                      `json:"format"`
	Documents map[string]appliedRecord `json:"documents"`
}

type appliedRecord struct {
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
}

// parseState decodes a state file.
func parseState(b []byte) (map[string]appliedRecord, error) {
	var s stateFile
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("confsync: state file: %w", err)
	}
	if s.Format != stateFormat {
		return nil, fmt.Errorf("confsync: state file format %d, want %d", s.Format, stateFormat)
	}
	for n, r := range s.Documents {
		if err := checkName(n); err != nil {
			return nil, fmt.Errorf("confsync: state file document %q: %w", n, err)
		}
		if d, err := hex.DecodeString(r.SHA256); err != nil || len(d) != digestLen {
			return nil, fmt.Errorf("confsync: state file document %q: sha256 %q is not 64 hex digits", n, r.SHA256)
		}
	}
	if s.Documents == nil {
		s.Documents = make(map[string]appliedRecord)
	}
	return s.Documents, nil
}

// loadState reads path; a missing file is an empty state.
func loadState(path string) (map[string]appliedRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return make(map[string]appliedRecord), nil
	}
	if err != nil {
		return nil, fmt.Errorf("confsync: state file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("confsync: state file %s: %w", path, err)
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("confsync: state file %s longer than %d bytes", path, maxStateFile)
	}
	st, err := parseState(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s; fix or remove it knowingly)", err, path)
	}
	return st, nil
}

// saveState replaces path with docs: temporary file, fsync, rename, fsync
// of the directory, so a crash leaves the old or the new record.
func saveState(path string, docs map[string]appliedRecord) error {
	b, err := json.MarshalIndent(stateFile{Format: stateFormat, Documents: docs}, "", "  ")
	if err != nil {
		return fmt.Errorf("confsync: state file: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("confsync: state file %s: %w", path, err)
	}
	return nil
}

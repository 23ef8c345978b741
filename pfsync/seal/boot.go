package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// BootCounter reads the boot counter stored at path, increments it, stores
// the new value durably and returns it. A missing file counts as 0, so the
// first start returns 1. The update is atomic: the new value is written to a
// temporary file in the same directory, synced, renamed over path, and the
// directory is synced, so a crash leaves either the old or the new value.
//
// Call it once per start and pass the result as Config.Boot. Receivers
// refuse frames from boots older than the newest they have authenticated,
// which is what makes a recording of an earlier run useless; a counter that
// cannot be read is therefore an error, never silently reset.
func BootCounter(path string) (uint32, error) {
	var n uint64
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("seal: boot counter: %w", err)
	default:
		n, err = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("seal: boot counter %s holds %q, not a decimal counter; refusing to reset it (fix or remove the file knowingly): %w", path, b, err)
		}
	}
	if n >= math.MaxUint32 {
		return 0, fmt.Errorf("seal: boot counter %s exhausted at %d", path, n)
	}
	n++
	if err := writeAtomic(path, []byte(strconv.FormatUint(n, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("seal: boot counter: %w", err)
	}
	return uint32(n), nil
}

// writeAtomic replaces path with data: temporary file, fsync, rename, fsync
// of the directory.
func writeAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr = d.Sync()
	cerr = d.Close()
	return errors.Join(serr, cerr)
}

// Package atomicfile replaces small state files so that a crash leaves
// either the old or the new content, never a torn one: the boot counter
// of pfsync/seal and confsync's record of applied documents.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write replaces path with data: a temporary file in the same directory,
// fsync, rename over path, fsync of the directory. On error the temporary
// file is removed and path is left as it was.
func Write(path string, data []byte) error {
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

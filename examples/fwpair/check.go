package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gocarp/gocarp/pfsync/seal"
	"golang.org/x/sys/unix"
)

// checkFiles is what -check verifies beyond the configuration's syntax:
// the files a start reads and writes, so that a missing key or an
// unwritable state directory shows before the daemon is started, not when
// it is. Nothing is written.
func checkFiles(cfg *Config) error {
	if _, err := seal.LoadKeyFile(cfg.Sync.KeyFile); err != nil {
		return fmt.Errorf("fwpair: sync.key_file %s: %w", cfg.Sync.KeyFile, err)
	}
	dir := filepath.Dir(cfg.Sync.BootFile)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("fwpair: sync.boot_file %s: directory: %w", cfg.Sync.BootFile, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("fwpair: sync.boot_file %s: %s is not a directory", cfg.Sync.BootFile, dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("fwpair: sync.boot_file %s: directory %s not writable: %w", cfg.Sync.BootFile, dir, err)
	}
	b, err := os.ReadFile(cfg.Sync.BootFile)
	switch {
	case os.IsNotExist(err): // the first start creates it
	case err != nil:
		return fmt.Errorf("fwpair: sync.boot_file: %w", err)
	default:
		if _, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32); err != nil {
			return fmt.Errorf("fwpair: sync.boot_file %s holds %q, not a decimal boot counter", cfg.Sync.BootFile, b)
		}
	}
	if _, err := readMaintenance(cfg.maintenancePath()); err != nil {
		return err
	}
	for i, tc := range cfg.Track {
		if tc.Type == "script" {
			if _, err := os.Stat("/bin/sh"); err != nil {
				return fmt.Errorf("fwpair: track[%d].script: runs with /bin/sh: %w", i, err)
			}
		}
	}
	return nil
}

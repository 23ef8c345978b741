package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
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
	return checkDocuments(cfg)
}

// checkDocuments is -check's part for the firewall ruleset and the files:
// the ruleset passes nft -c (as fwpair will apply it, replacing its
// tables), a published file is readable, a subscribed file's directory
// exists, every apply command is found, config_sync.state_dir is a
// writable directory.
func checkDocuments(cfg *Config) error {
	dcs := cfg.docConfigs()
	if len(dcs) == 0 {
		return nil
	}
	if err := checkWritableDir("config_sync.state_dir", cfg.ConfigSync.StateDir); err != nil {
		return err
	}
	for _, d := range dcs {
		key := "firewall.ruleset"
		if !d.isRules {
			key = "files[" + d.name + "].path"
		}
		if d.path == "" {
			continue // a subscribed ruleset without a local file
		}
		switch {
		case d.isRules:
			data, err := os.ReadFile(d.path)
			if err != nil {
				return fmt.Errorf("fwpair: %s: %w", key, err)
			}
			nft, err := exec.LookPath("nft")
			if err != nil {
				return fmt.Errorf("fwpair: %s: needs the nft binary: %w", key, err)
			}
			if err := checkRuleset(execNft(nft), data); err != nil {
				return fmt.Errorf("fwpair: %s %s: %w", key, d.path, err)
			}
		case d.role == syncPublish:
			if _, err := os.ReadFile(d.path); err != nil {
				return fmt.Errorf("fwpair: %s: %w", key, err)
			}
		default:
			if err := checkWritableDir(key, filepath.Dir(d.path)); err != nil {
				return err
			}
		}
		if d.file != nil && len(d.file.Apply) > 0 {
			if _, err := exec.LookPath(d.file.Apply[0]); err != nil {
				return fmt.Errorf("fwpair: files[%s].apply: %w", d.name, err)
			}
		}
	}
	return nil
}

// checkWritableDir checks that dir is a directory fwpair can write in.
func checkWritableDir(key, dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("fwpair: %s: %w", key, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("fwpair: %s: %s is not a directory", key, dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("fwpair: %s: directory %s not writable: %w", key, dir, err)
	}
	return nil
}

package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestControlSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwpair.sock")
	want := &Status{Node: 7, Goroutines: 12, Groups: []GroupStatus{{Name: "lan", VHID: 1, State: "MASTER"}, {Name: "wan", VHID: 2, State: "BACKUP"}},
		Sync: SyncStatus{PeersUp: 1, BulkDone: true, Records: 3}}
	s, err := listenControl(path, func() *Status { return want }, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := QueryStatus(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lan"}, got.Masters()); diff != "" {
		t.Errorf("Masters (-want +got):\n%s", diff)
	}

	// -status prints the same as indented JSON.
	var out, errb bytes.Buffer
	if rc := run([]string{"-status", "-socket", path}, &out, &errb); rc != 0 || !strings.Contains(out.String(), `"node": 7`) ||
		!strings.Contains(out.String(), `"goroutines": 12`) {
		t.Errorf("-status: exit %d, out %s, err %s", rc, out.String(), errb.String())
	}

	// A second daemon on the same socket is refused.
	if _, err := listenControl(path, func() *Status { return want }, nil); err == nil || !strings.Contains(err.Error(), "another fwpair is running") {
		t.Errorf("second listener: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := QueryStatus(path, time.Second); err == nil {
		t.Error("query after Close succeeded")
	}
}

func TestControlSocketStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fwpair.sock")
	// A socket file nobody listens on: what a SIGKILLed daemon leaves.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s, err := listenControl(path, func() *Status { return &Status{Node: 1} }, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.Close()

	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenControl(file, nil, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
}

// TestQueryStatusBounded: a peer on the control socket that sends without
// end (not an fwpair) costs QueryStatus a bounded read, visible in its
// allocations, and an error.
func TestQueryStatusBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwpair.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := bytes.Repeat([]byte(" "), 64<<10)
		for range 1024 { // 64 MiB, or until the client hangs up
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = QueryStatus(path, time.Minute)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("QueryStatus = %v, want an error for a status larger than 1 MiB", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("QueryStatus allocated %d bytes, want a bounded read (< 8 MiB)", alloc)
	}
	<-served
}

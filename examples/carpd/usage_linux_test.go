package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Started without CAP_NET_RAW (as nobody), carpd says which capability it
// lacks.
func TestStartWithoutCapNetRaw(t *testing.T) {
	var stderr bytes.Buffer
	args := []string{"-i", "lo", "-v", "1", "-p", "x", "-a", "10.0.0.1", "-n"}
	if os.Geteuid() != 0 {
		if code := run(args, &bytes.Buffer{}, &stderr); code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, stderr.String())
		}
	} else {
		if err := os.Chmod(filepath.Dir(carpdBin), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(carpdBin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			t.Fatal("carpd started as nobody")
		}
	}
	if !strings.Contains(stderr.String(), "carpd needs CAP_NET_RAW") {
		t.Errorf("stderr %q, want it to name CAP_NET_RAW", stderr.String())
	}
}

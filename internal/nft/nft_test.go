package nft

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunReportsStderr: a failing nft's message reaches the error, and its
// input is the script.
func TestRunReportsStderr(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "nft")
	// A stand-in for nft: copies its input to a file, complains, fails.
	script := "#!/bin/sh\ncat > " + filepath.Join(dir, "in") + "\necho 'Error: syntax error' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), fake, "table inet x\n")
	if err == nil || !strings.Contains(err.Error(), "nft: exit status 1: Error: syntax error") {
		t.Fatalf("Run: %v; want the exit status and nft's message", err)
	}
	in, rerr := os.ReadFile(filepath.Join(dir, "in"))
	if rerr != nil || string(in) != "table inet x\n" {
		t.Errorf("nft's input %q (%v); want the script", in, rerr)
	}
}

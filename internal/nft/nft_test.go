package nft

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestCheckRunsNftC: Check passes -c before -f -, and names itself in the
// error.
func TestCheckRunsNftC(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "nft")
	script := "#!/bin/sh\ntest \"$1 $2 $3\" = \"-c -f -\" || exit 3\ncat >/dev/null\necho 'Error: no such table' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Check(context.Background(), fake, "table inet x\n")
	if err == nil || !strings.Contains(err.Error(), "nft -c: exit status 1: Error: no such table") {
		t.Fatalf("Check: %v; want -c passed and nft's message", err)
	}
}

// TestRunKilledAtContextEnd: a hung nft is killed when ctx ends, and the
// error says so.
func TestRunKilledAtContextEnd(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "nft")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := Run(ctx, fake, "table inet x\n"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung nft: %v; want the context's error", err)
	}
}

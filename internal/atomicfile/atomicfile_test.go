package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gocarp/gocarp/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, want := range []string{"one\n", "two, longer\n", ""} {
		if err := atomicfile.Write(p, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Fatalf("after Write(%q): %q, %v", want, got, err)
		}
	}
	if es, err := os.ReadDir(dir); err != nil || len(es) != 1 {
		t.Errorf("directory holds %v, %v; want the file alone (no temporary left)", es, err)
	}
}

// A failed Write leaves the old content and no temporary file.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	if err := atomicfile.Write(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	// A directory where the file should be: the rename fails.
	q := filepath.Join(dir, "sub")
	if err := os.Mkdir(q, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(q, []byte("new")); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("old file now %q", got)
	}
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary left)", len(es))
	}
}

package main

import (
	"crypto/sha256"
	"testing"
	"time"
)

// A version stays while the content does, grows with a change, survives a
// restart, and is at least the clock's seconds (a lost state directory, a
// publisher role moved to the other node).
func TestVersionStore(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1000, 0)
	load := func() *versionStore {
		t.Helper()
		s, err := loadVersions(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return clock }
		return s
	}
	next := func(s *versionStore, content string) uint64 {
		t.Helper()
		v, err := s.next("firewall", sha256.Sum256([]byte(content)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := load()
	if v := next(s, "a"); v != 1000 {
		t.Errorf("first version %d, want the clock's 1000", v)
	}
	if v := next(s, "a"); v != 1000 {
		t.Errorf("unchanged content: version %d, want 1000", v)
	}
	if v := next(s, "b"); v != 1001 {
		t.Errorf("changed within the second: version %d, want 1001", v)
	}
	s = load() // a restart
	if v := next(s, "b"); v != 1001 {
		t.Errorf("after a restart, unchanged: version %d, want 1001 (nothing resent)", v)
	}
	clock = time.Unix(500, 0) // the clock stepped back
	if v := next(s, "c"); v != 1002 {
		t.Errorf("clock behind: version %d, want 1002", v)
	}
	clock = time.Unix(5000, 0)
	s = load()
	if v := next(s, "a"); v != 5000 {
		t.Errorf("after a restart, changed: version %d, want 5000", v)
	}
}

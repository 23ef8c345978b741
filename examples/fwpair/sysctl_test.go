package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLinkdownOff(t *testing.T) {
	dir := t.TempDir()
	set := func(k, v string) {
		p := filepath.Join(dir, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := linkdownOff(dir); len(got) != 0 {
		t.Errorf("nothing readable: %q, want none reported", got)
	}
	set("net/ipv4/conf/all/ignore_routes_with_linkdown", "0")
	set("net/ipv6/conf/all/ignore_routes_with_linkdown", "1")
	if got, want := linkdownOff(dir), []string{"net.ipv4.conf.all.ignore_routes_with_linkdown"}; !slices.Equal(got, want) {
		t.Errorf("ipv4 off: %q, want %q", got, want)
	}
	set("net/ipv4/conf/all/ignore_routes_with_linkdown", "1")
	if got := linkdownOff(dir); len(got) != 0 {
		t.Errorf("both on: %q, want none", got)
	}
}

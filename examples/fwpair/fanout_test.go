package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFanout checks that the engine's demotions reach every group,
// including groups attached after the demotion was raised (the engine
// starts before the groups exist).
func TestFanout(t *testing.T) {
	var f fanout
	early, late := &fakeGroup{}, &fakeGroup{}
	f.attach(early)
	f.SetDemotion("pfsync-bulk", 32)
	f.SetDemotion("admin", 1)
	f.attach(late)
	want := map[string]int{"pfsync-bulk": 32, "admin": 1}
	for name, g := range map[string]*fakeGroup{"early": early, "late": late} {
		if diff := cmp.Diff(want, g.get()); diff != "" {
			t.Errorf("%s group (-want +got):\n%s", name, diff)
		}
	}
	f.SetDemotion("pfsync-bulk", 0)
	want = map[string]int{"admin": 1}
	for name, g := range map[string]*fakeGroup{"early": early, "late": late} {
		if diff := cmp.Diff(want, g.get()); diff != "" {
			t.Errorf("%s group after clearing (-want +got):\n%s", name, diff)
		}
	}
}

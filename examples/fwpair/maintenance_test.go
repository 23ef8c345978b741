package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestMaintenanceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maintenance")
	if m, err := readMaintenance(path); err != nil || m.On {
		t.Errorf("no file: %+v, %v; want off", m, err)
	}
	since := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	if err := writeMaintenance(path, Maintenance{On: true, Since: since}); err != nil {
		t.Fatal(err)
	}
	if m, err := readMaintenance(path); err != nil || !m.On || !m.Since.Equal(since) {
		t.Errorf("after on: %+v, %v; want on since %v", m, err, since)
	}
	// A file written by hand means on.
	if err := writeFile(path, "yes\n"); err != nil {
		t.Fatal(err)
	}
	if m, err := readMaintenance(path); err != nil || !m.On {
		t.Errorf("hand-written file: %+v, %v; want on", m, err)
	}
	if err := writeMaintenance(path, Maintenance{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("off left the file: %v", err)
	}
	if err := writeMaintenance(path, Maintenance{}); err != nil {
		t.Errorf("off twice: %v", err)
	}
}

// With no daemon running, -maintenance records the mode for the next
// start, in the boot file's directory.
func TestRunMaintenanceNotRunning(t *testing.T) {
	dir := t.TempDir()
	conf := exampleWithSocket(t, filepath.Join(dir, "fwpair.sock"))
	var out, errb bytes.Buffer
	if rc := run([]string{"-config", conf, "-maintenance", "on"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "maintenance on (fwpair not running") {
		t.Fatalf("-maintenance on: exit %d, out %q, err %q", rc, out.String(), errb.String())
	}
	if m, err := readMaintenance(filepath.Join(dir, "maintenance")); err != nil || !m.On {
		t.Errorf("recorded %+v, %v; want on", m, err)
	}
	out.Reset()
	if rc := run([]string{"-config", conf, "-maintenance", "off"}, &out, &errb); rc != 0 {
		t.Fatalf("-maintenance off: exit %d, err %q", rc, errb.String())
	}
	if m, _ := readMaintenance(filepath.Join(dir, "maintenance")); m.On {
		t.Error("still on after off")
	}
	if rc := run([]string{"-config", conf, "-maintenance", "maybe"}, &out, &errb); rc != 2 || !strings.Contains(errb.String(), `-maintenance "maybe" not one of on, off`) {
		t.Errorf("-maintenance maybe: exit %d, err %q", rc, errb.String())
	}
}

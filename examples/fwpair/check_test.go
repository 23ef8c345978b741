package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleWithFiles writes fwpair.example.json into dir with its key and
// boot file replaced, and its documents moved into dir: no ruleset (nft
// -c needs privileges; TestRunCheckRuleset checks it), the
// file published from dir and applied with true, the state directory dir.
// It returns the new file's path.
func exampleWithFiles(t *testing.T, dir, key, boot string) string {
	t.Helper()
	b, err := os.ReadFile("fwpair.example.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "/etc/fwpair/sync.key", key, 1)
	s = strings.Replace(s, "/var/lib/fwpair/boot", boot, 1)
	dhcp := filepath.Join(dir, "dhcp.conf")
	if err := os.WriteFile(dhcp, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]string{
		{`"ruleset": "/etc/fwpair/ruleset.nft",
    "sync": "publish"`, `"sync": "off"`},
		{"/etc/kea/kea-dhcp4.conf", dhcp},
		{`"/usr/bin/systemctl", "reload", "kea-dhcp4-server"`, `"true"`},
		{`"state_dir": "/var/lib/fwpair"`, `"state_dir": "` + dir + `"`},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("fwpair.example.json lacks %s", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "fwpair.json")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// -check fails, naming the key, on what would stop a start: a missing key
// file, a boot file directory that does not exist, a corrupt boot file.
func TestRunCheckFiles(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	var out, errb bytes.Buffer
	if rc := run([]string{"-genkey", key}, &out, &errb); rc != 0 {
		t.Fatalf("-genkey: exit %d: %s", rc, errb.String())
	}
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.WriteFile(corrupt, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, boot, want string
	}{
		{"missing key", filepath.Join(dir, "absent.key"), filepath.Join(dir, "boot"), "sync.key_file " + filepath.Join(dir, "absent.key")},
		{"missing boot dir", key, filepath.Join(dir, "absent", "boot"), "sync.boot_file " + filepath.Join(dir, "absent", "boot") + ": directory"},
		{"corrupt boot file", key, corrupt, "not a decimal boot counter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := t.TempDir()
			conf := exampleWithFiles(t, sub, tc.key, tc.boot)
			var out, errb bytes.Buffer
			if rc := run([]string{"-config", conf, "-check"}, &out, &errb); rc != 2 {
				t.Errorf("exit %d, want 2", rc)
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr %q, want %q", errb.String(), tc.want)
			}
		})
	}
}

// -h says what fwpair is and where its documentation is, on stdout, and
// exits 0 as carpd does.
func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out, errb bytes.Buffer
		if rc := run([]string{arg}, &out, &errb); rc != 0 {
			t.Errorf("%s: exit %d, want 0", arg, rc)
		}
		for _, want := range []string{"Linux HA firewall pair", "go doc ./examples/fwpair", "-log-format"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out.String())
			}
		}
		if errb.Len() > 0 {
			t.Errorf("%s: stderr %q", arg, errb.String())
		}
	}
}

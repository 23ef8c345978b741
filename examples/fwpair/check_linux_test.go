package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// -check runs the ruleset through nft -c as fwpair will apply it: a good
// one passes; one nft refuses, or one with "flush ruleset", fails naming
// the key (and nft's line in the file). nft -c needs CAP_NET_ADMIN.
func TestRunCheckRuleset(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nft -c needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	var out, errb bytes.Buffer
	if rc := run([]string{"-genkey", key}, &out, &errb); rc != 0 {
		t.Fatalf("-genkey: exit %d: %s", rc, errb.String())
	}
	conf := exampleWithFiles(t, dir, key, filepath.Join(dir, "boot"))
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "ruleset.nft")
	s := strings.Replace(string(b), `"sync": "off"`, `"ruleset": "`+rules+`", "sync": "publish"`, 1)
	if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, rules, want string }{
		{"good", "table inet checktest {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n", ""},
		{"syntax error", "table inet checktest {\n\tchain forward {\n\t\ttcp dport 22 frobnicate\n\t}\n}\n", "firewall.ruleset " + rules + ": nft -c: exit status 1: line 3:"},
		{"flush ruleset", "flush ruleset\ntable inet checktest { }\n", `"flush ruleset" would remove every table`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(rules, []byte(tc.rules), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			rc := run([]string{"-config", conf, "-check"}, &out, &errb)
			if tc.want == "" {
				if rc != 0 {
					t.Errorf("exit %d: %s", rc, errb.String())
				}
				return
			}
			if rc != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", rc, errb.String(), tc.want)
			}
		})
	}
}

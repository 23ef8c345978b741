package sdnotify

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// parseUnit reads a systemd unit file into section -> key -> values.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.TrimSpace(k) != k || k == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// The daemons' unit files: notify type with a watchdog, only the two
// network capabilities, a read-only system but for the state directory.
func TestUnitFiles(t *testing.T) {
	for _, path := range []string{"../../examples/carpd/carpd@.service", "../../examples/fwpair/fwpair.service"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			u := parseUnit(t, path)
			svc := u["Service"]
			want := map[string]string{
				"Type":                  "notify",
				"AmbientCapabilities":   "CAP_NET_ADMIN CAP_NET_RAW",
				"CapabilityBoundingSet": "CAP_NET_ADMIN CAP_NET_RAW",
				"NoNewPrivileges":       "yes",
				"ProtectSystem":         "strict",
			}
			for k, v := range want {
				if got := svc[k]; !slices.Equal(got, []string{v}) {
					t.Errorf("[Service] %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"WatchdogSec", "StateDirectory", "ExecStart"} {
				if len(svc[k]) != 1 || svc[k][0] == "" {
					t.Errorf("[Service] %s = %q, want one value", k, svc[k])
				}
			}
			if len(u["Unit"]["Description"]) == 0 || len(u["Install"]["WantedBy"]) == 0 {
				t.Errorf("missing [Unit] Description or [Install] WantedBy")
			}
			if strings.HasPrefix(filepath.Base(path), "carpd@") {
				if got := svc["EnvironmentFile"]; !slices.Equal(got, []string{"/etc/carpd/%i.conf"}) {
					t.Errorf("EnvironmentFile = %q, want /etc/carpd/%%i.conf", got)
				}
			}
		})
	}
}

// systemd-analyze verify, where installed, on copies whose binaries are
// /bin/true (verify wants ExecStart to exist).
func TestUnitFilesVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	var units []string
	for src, name := range map[string]string{
		"../../examples/carpd/carpd@.service":  "carpd@wan.service",
		"../../examples/fwpair/fwpair.service": "fwpair.service",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`/usr/local/sbin/\w+`).ReplaceAll(b, []byte("/bin/true"))
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, path)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

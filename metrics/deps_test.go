package metrics_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDoesNotImportPrometheus keeps client_golang out of every package
// of the module but this one, the example daemons and their metrics
// endpoint (internal/httpmetrics): an embedder of carp, vip or pfsync who
// does not want Prometheus must not get it.
func TestCoreDoesNotImportPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	out, err := exec.Command(gocmd, "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "github.com/gocarp/gocarp/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for line := range strings.Lines(string(out)) {
		pkg, deps, _ := strings.Cut(strings.TrimSpace(line), " ")
		rel := strings.TrimPrefix(pkg, "github.com/gocarp/gocarp")
		if strings.HasPrefix(rel, "/metrics") || strings.HasPrefix(rel, "/examples/") || rel == "/internal/httpmetrics" {
			continue
		}
		checked++
		for dep := range strings.FieldsSeq(deps) {
			if strings.HasPrefix(dep, "github.com/prometheus/") {
				t.Errorf("%s imports %s", pkg, dep)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked %d packages; the listing looks wrong:\n%s", checked, out)
	}
}

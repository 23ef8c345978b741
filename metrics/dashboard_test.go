package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardExprs returns every PromQL expression of the dashboard: panel
// targets, annotation queries and template variable queries, keyed by
// where they are.
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Annotations struct {
			List []struct{ Name, Expr string }
		}
		Templating struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			exprs[p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			exprs["annotation "+a.Name] = a.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		exprs["variable "+v.Name] = q.Query
	}
	return exprs
}

// TestDashboardUsesExportedMetrics fails if an expression of the Grafana
// dashboard names a metric the collectors do not export (a renamed
// metric, a typo), or names none.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	names := describedNames(t)
	exported := func(n string) bool {
		if slices.Contains(names, n) {
			return true
		}
		// A histogram's series.
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suf); ok && strings.HasSuffix(base, "_seconds") && slices.Contains(names, base) {
				return true
			}
		}
		return false
	}
	// Metric names are identifiers outside strings: drop label matchers'
	// values ("...") first.
	quoted := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	exprs := dashboardExprs(t, "dashboard/gocarp-pair.json")
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	used := map[string]bool{}
	for where, e := range exprs {
		n := 0
		for _, id := range ident.FindAllString(quoted.ReplaceAllString(e, `""`), -1) {
			if !strings.HasPrefix(id, "gocarp") {
				continue // functions, keywords, label names
			}
			n++
			used[id] = true
			if !exported(id) {
				t.Errorf("%s: %s is not exported by package metrics\n\t%s", where, id, e)
			}
		}
		if n == 0 {
			t.Errorf("%s: no gocarp metric in %s", where, e)
		}
	}
	t.Logf("%d expressions use %d metric names", len(exprs), len(used))
}

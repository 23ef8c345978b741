package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRulesetTables(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		want        []nftTable
		err         string
	}{
		{"one table", "table inet fw {\n chain c { }\n}\n", []nftTable{{"inet", "fw"}}, ""},
		{"default family, add and create, each once",
			"table filter {\n}\nadd table ip6 nat\ncreate table netdev ingress\ntable filter {\n}\n",
			[]nftTable{{"ip", "filter"}, {"ip6", "nat"}, {"netdev", "ingress"}}, ""},
		{"commented out", "# table inet old {\n# flush ruleset\ntable inet fw { } # table ip x\n", []nftTable{{"inet", "fw"}}, ""},
		{"a # inside quotes is no comment", "table inet fw { comment \"a # b\"; }\n", []nftTable{{"inet", "fw"}}, ""},
		{"delete table is not a declaration", "delete table inet old\ntable inet fw { }\n", []nftTable{{"inet", "fw"}}, ""},
		{"flush ruleset", "flush ruleset\ntable inet fw { }\n", nil, `"flush ruleset" would remove every table`},
		{"include", "include \"/etc/nft.d/*.nft\"\ntable inet fw { }\n", nil, `"include" not allowed`},
		{"the gate's table", "table inet fwpair_gate { }\n", nil, "fwpair's forwarding gate"},
		{"no table", "define x = 1\n", nil, "declares no table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rulesetTables([]byte(tc.rules))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(nftTable{})); diff != "" {
				t.Errorf("tables (-want +got):\n%s", diff)
			}
		})
	}
}

// The transaction deletes the tables of the new ruleset and of the one in
// force, on one line before the ruleset, so that applying a file twice
// replaces it and a table dropped from the file goes.
func TestRulesetScript(t *testing.T) {
	prev := "table inet fw { }\ntable ip old { }\n"
	rules := "table inet fw {\n chain c { }\n}"
	got, err := rulesetScript([]byte(rules), []byte(prev))
	if err != nil {
		t.Fatal(err)
	}
	want := "table inet fw; delete table inet fw; table ip old; delete table ip old; \n" + rules + "\n"
	if got != want {
		t.Errorf("script\n%q\nwant\n%q", got, want)
	}
}

// applyRuleset checks first and applies only what the check accepted; nft's
// line numbers are the file's.
func TestApplyRuleset(t *testing.T) {
	var calls []string
	ok := func(ctx context.Context, check bool, script string) error {
		calls = append(calls, map[bool]string{true: "check", false: "apply"}[check])
		return nil
	}
	if err := applyRuleset(ok, []byte("table inet fw { }\n"), nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"check", "apply"}, calls); diff != "" {
		t.Errorf("nft runs (-want +got):\n%s", diff)
	}

	calls = nil
	refuse := func(ctx context.Context, check bool, script string) error {
		calls = append(calls, map[bool]string{true: "check", false: "apply"}[check])
		return errors.New("nft -c: exit status 1: /dev/stdin:3:5-9: Error: syntax error")
	}
	err := applyRuleset(refuse, []byte("table inet fw {\n chain c {\n  bogus\n }\n}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 2:5-9: Error") {
		t.Errorf("error %v, want it at line 2 of the file", err)
	}
	if diff := cmp.Diff([]string{"check"}, calls); diff != "" {
		t.Errorf("nft runs after a refused check (-want +got):\n%s", diff)
	}
	if err := applyRuleset(ok, []byte("flush ruleset\ntable inet fw { }\n"), nil); err == nil {
		t.Error("flush ruleset applied")
	}
}

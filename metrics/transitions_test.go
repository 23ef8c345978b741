package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// TestKnownTransitionsCoverEveryReason reads the Reason constants carp
// declares and checks that each is pre-exported at 0 for some state, so a
// reason added to carp cannot be missing from the first increase() a
// dashboard computes.
func TestKnownTransitionsCoverEveryReason(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "carp", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var declared []string
	for _, f := range files {
		if filepath.Ext(f) != ".go" || len(f) > 8 && f[len(f)-8:] == "_test.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok {
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					declared = append(declared, s)
				}
			}
		}
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d Reason constants in carp: %q", len(declared), declared)
	}
	known := map[string]bool{}
	for _, k := range knownTransitions {
		known[k.Reason] = true
	}
	for _, r := range declared {
		if !known[r] {
			t.Errorf("carp.Reason %q is not in knownTransitions", r)
		}
	}
}

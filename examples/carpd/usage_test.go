package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every flag's description starts in the same column, continuation lines
// included, and no line is wider than helpWidth.
func TestUsageColumns(t *testing.T) {
	var out bytes.Buffer
	writeFlagHelp(&out, allFlags())
	col := -1
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if len(line) > helpWidth {
			t.Errorf("line wider than %d: %q", helpWidth, line)
		}
		// The description starts after the first run of two or more
		// spaces past the names (or after the indentation).
		rest := strings.TrimLeft(line, " ")
		start := len(line) - len(rest)
		if start <= 6 && strings.HasPrefix(rest, "-") { // a flag's first line: names, then the description
			i := strings.Index(rest, "  ")
			if i < 0 {
				t.Fatalf("no description: %q", line)
			}
			start += i + len(rest[i:]) - len(strings.TrimLeft(rest[i:], " "))
		}
		if col == -1 {
			col = start
		}
		if start != col {
			t.Errorf("description at column %d, want %d: %q", start, col, line)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aa bb cc dddddddddd e", 5)
	want := []string{"aa bb", "cc", "dddddddddd", "e"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}

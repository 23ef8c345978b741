package logcheck

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHandler(t *testing.T) {
	h := New()
	log := h.Logger()
	log.Info("fine", "a", 1, "b", 2)
	log.With("vhid", 1).Info("carp: state changed", "vhid", 1)
	log.With("node", 1).With("node", 2).Debug("twice by With")
	log.WithGroup("g").Info("grouped", "a", 1, slog.Group("h", "a", 2)) // g.a, g.h.a: distinct
	log.Info("group attr", slog.Group("x", "k", 1), "x.k", 2)
	want := []string{
		`"carp: state changed" repeats vhid (keys vhid vhid)`,
		`"twice by With" repeats node (keys node node)`,
		`"group attr" repeats x.k (keys x.k x.k)`,
	}
	if diff := cmp.Diff(want, h.Duplicates()); diff != "" {
		t.Errorf("Duplicates (-want +got):\n%s", diff)
	}
	if got := h.Records(); got != 5 {
		t.Errorf("Records() = %d, want 5", got)
	}
}

func TestTextKeys(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, nil)).With("node", 1)
	log.Info("fwpair: started", "node", 1, "note", `a b=c "d"`, "x", "")
	line := strings.TrimSpace(b.String())
	if diff := cmp.Diff([]string{"time", "level", "msg", "node", "node", "note", "x"}, TextKeys(line)); diff != "" {
		t.Errorf("TextKeys(%q) (-want +got):\n%s", line, diff)
	}
	if diff := cmp.Diff([]string{"node"}, DuplicateKeys(line)); diff != "" {
		t.Errorf("DuplicateKeys (-want +got):\n%s", diff)
	}
	for _, s := range []string{"", "not a log line", "panic: boom", `k="unterminated`} {
		if d := DuplicateKeys(s); d != nil {
			t.Errorf("DuplicateKeys(%q) = %q, want nil", s, d)
		}
	}
}

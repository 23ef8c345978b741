package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLogFormat(t *testing.T) {
	var out bytes.Buffer
	newFormatLogger(&out, slog.LevelInfo, "json").Info("fwpair: started", "node", 1)
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("json: not a JSON line: %v: %s", err, out.Bytes())
	}
	if rec["msg"] != "fwpair: started" || rec["node"] != 1.0 {
		t.Errorf("json: record %v", rec)
	}
	out.Reset()
	newFormatLogger(&out, slog.LevelInfo, "text").Info("fwpair: started", "node", 1)
	if !strings.Contains(out.String(), `msg="fwpair: started" node=1`) {
		t.Errorf("text: line %q", out.String())
	}
}

func TestLogFormatFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-log-format", "xml", "-check"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	if want := `fwpair: -log-format "xml" out of range (text, json)`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

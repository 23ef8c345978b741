package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
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

// TestLogFormatConfig: log_format in the file applies when the flag is
// absent; the flag wins when given; a bad value names the key.
func TestLogFormatConfig(t *testing.T) {
	for _, tt := range []struct {
		args []string
		file string
		want string
	}{
		{nil, "", "text"},
		{nil, "json", "json"},
		{[]string{"-log-format", "text"}, "json", "text"},
		{[]string{"-log-format", "json"}, "", "json"},
	} {
		fl := flag.NewFlagSet("fwpair", flag.ContinueOnError)
		fl.SetOutput(io.Discard)
		v := fl.String("log-format", "text", "")
		if err := fl.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if got := effectiveLogFormat(fl, *v, tt.file); got != tt.want {
			t.Errorf("flags %q, log_format %q: %q, want %q", tt.args, tt.file, got, tt.want)
		}
	}
	_, err := ParseConfig(strings.NewReader(edit(t, func(m map[string]any) { m["log_format"] = "xml" })))
	if want := `log_format "xml" not one of text, json`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("log_format xml: %v, want %q", err, want)
	}
}

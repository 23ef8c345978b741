package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogFormatJSON(t *testing.T) {
	o, err := parseArgs([]string{"-i", "eth0", "-v", "1", "-p", "x", "-a", "10.0.0.1", "--log-format", "json"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log, closeLog, err := newBaseLogger(o, &out, slog.LevelInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	log.With("vhid", 1).Info("carpd: started", "iface", "eth0")
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("not a JSON line: %v: %s", err, out.Bytes())
	}
	if rec["msg"] != "carpd: started" || rec["vhid"] != 1.0 || rec["iface"] != "eth0" {
		t.Errorf("record %v", rec)
	}
}

func TestLogFlagErrors(t *testing.T) {
	base := []string{"-i", "eth0", "-v", "1", "-p", "x", "-a", "10.0.0.1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, "xml out of range (text, json)"},
		{[]string{"-B"}, "run it under a service manager"},
		{[]string{"-f", "local9"}, "local9 out of range (auth, authpriv,"},
	} {
		_, err := parseArgs(append(base, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	o, err := parseArgs(append(base, "-f", "none"))
	if err != nil || o.Facility != "" {
		t.Errorf("-f none: facility %q, error %v; want stderr", o.Facility, err)
	}
}

// -f sends each line to syslog with the facility and the level's
// severity, without slog's own time stamp.
func TestLogSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o, err := parseArgs([]string{"-i", "eth0", "-v", "1", "-p", "x", "-a", "10.0.0.1", "-f", "local3"})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(p syslog.Priority, tag string) (*syslog.Writer, error) {
		return syslog.Dial("unixgram", path, p, tag)
	}
	var stderr bytes.Buffer
	log, closeLog, err := newBaseLogger(o, &stderr, slog.LevelInfo, dial)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	log = log.With("vhid", 1)
	log.Info("carpd: started")
	log.Warn("carpd: link down", "iface", "eth0")
	log.Error("carpd: cannot start")
	buf := make([]byte, 2048)
	for _, want := range []string{
		"<158>", // local3 (19) * 8 + info (6)
		"<156>", // warning (4)
		"<155>", // err (3)
	} {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "carpd[") || !strings.Contains(msg, "vhid=1") || strings.Contains(msg, "time=") {
			t.Errorf("syslog message %q, want priority %s, tag carpd, vhid=1 and no time=", msg, want)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("with -f, stderr got %q", stderr.String())
	}
}

func TestLogSyslogUnreachable(t *testing.T) {
	o := &options{Facility: "daemon"}
	dial := func(p syslog.Priority, tag string) (*syslog.Writer, error) {
		return syslog.Dial("unixgram", filepath.Join(t.TempDir(), "absent"), p, tag)
	}
	_, _, err := newBaseLogger(o, &bytes.Buffer{}, slog.LevelInfo, dial)
	if err == nil || !strings.Contains(err.Error(), "--facility daemon: cannot reach syslog") {
		t.Fatalf("error %v, want one saying syslog is unreachable", err)
	}
}

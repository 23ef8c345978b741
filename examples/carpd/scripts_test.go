package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/carp"
)

func TestScriptForTransition(t *testing.T) {
	tr := func(from, to carp.State, reason carp.Reason) carp.Transition {
		return carp.Transition{VHID: 1, From: from, To: to, Reason: reason}
	}
	tests := []struct {
		name     string
		t        carp.Transition
		shutdown bool
		want     string
	}{
		{"init complete", tr(carp.Init, carp.Backup, carp.ReasonInit), false, ""},
		{"master timed out", tr(carp.Backup, carp.Master, carp.ReasonMasterTimedOut), false, "up"},
		{"bow-out received", tr(carp.Backup, carp.Master, carp.ReasonBowOut), false, "up"},
		{"preempted", tr(carp.Master, carp.Backup, carp.ReasonMoreFrequent), false, "down"},
		{"step-down (SIGUSR2)", tr(carp.Master, carp.Backup, carp.ReasonUser), false, "down"},
		{"link lost as master", tr(carp.Master, carp.Init, carp.ReasonLinkDown), false, "down"},
		{"link lost as backup", tr(carp.Backup, carp.Init, carp.ReasonLinkDown), false, ""},
		{"link back", tr(carp.Init, carp.Backup, carp.ReasonLinkUp), false, ""},
		{"closed as master", tr(carp.Master, carp.Init, carp.ReasonClosed), false, ""},
		{"closed as master with --shutdown", tr(carp.Master, carp.Init, carp.ReasonClosed), true, "down"},
		{"closed as backup with --shutdown (ucarp: not when BACKUP)", tr(carp.Backup, carp.Init, carp.ReasonClosed), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripts{up: "/up", down: "/down", shutdown: tt.shutdown}
			kind, path := s.forTransition(tt.t)
			if diff := cmp.Diff(tt.want, kind); diff != "" {
				t.Errorf("forTransition(%+v) (-want +got):\n%s", tt.t, diff)
			}
			if kind != "" && path != "/"+kind {
				t.Errorf("forTransition(%+v) path = %q, want /%s", tt.t, path, kind)
			}
		})
	}
}

// recordingScript writes a shell script that appends one line per call to
// a file: its name, its arguments and the CARPD_ variables; it also prints
// to stdout and stderr.
func recordingScript(t *testing.T, dir, name, extra string) (script, record string) {
	t.Helper()
	record = filepath.Join(dir, "calls")
	script = filepath.Join(dir, name)
	body := "#!/bin/sh\n" + extra +
		`echo "` + name + ` args=$# 1=$1 2=$2 3=$3 state=$CARPD_STATE from=$CARPD_FROM reason=$CARPD_REASON vhid=$CARPD_VHID addrs=$CARPD_ADDRS" >> ` + record + "\n" +
		"echo to-stdout\necho to-stderr >&2\nprintf no-newline\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, record
}

// syncBuffer is a log destination safe for the script's copy goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestScriptsRunLikeUcarp: the scripts get ucarp's arguments (interface,
// first address, xparam), run one at a time in transition order, and their
// output reaches the log.
func TestScriptsRunLikeUcarp(t *testing.T) {
	dir := t.TempDir()
	// The upscript is slow: the downscript queued behind it must not start
	// before it ends, or "down" could run before "up" finished.
	up, record := recordingScript(t, dir, "up", "sleep 0.2\n")
	down, _ := recordingScript(t, dir, "down", "")
	var logs syncBuffer
	s := &scripts{vhid: 9, up: up, down: down, iface: "eth0", addrs: []string{"10.0.0.254", "fd00::254"},
		xparam: "x1", log: slog.New(slog.NewTextHandler(&logs, nil))}

	s.startup()
	for _, tr := range []carp.Transition{
		{VHID: 9, From: carp.Init, To: carp.Backup, Reason: carp.ReasonInit},
		{VHID: 9, From: carp.Backup, To: carp.Master, Reason: carp.ReasonMasterTimedOut},
		{VHID: 9, From: carp.Master, To: carp.Backup, Reason: carp.ReasonUser},
	} {
		s.handle(tr)
	}

	want := []string{
		"down args=3 1=eth0 2=10.0.0.254 3=x1 state=BACKUP from=INIT reason=start-up vhid=9 addrs=10.0.0.254 fd00::254",
		"up args=3 1=eth0 2=10.0.0.254 3=x1 state=MASTER from=BACKUP reason=master timed out vhid=9 addrs=10.0.0.254 fd00::254",
		"down args=3 1=eth0 2=10.0.0.254 3=x1 state=BACKUP from=MASTER reason=user requested vhid=9 addrs=10.0.0.254 fd00::254",
	}
	if diff := cmp.Diff(want, readLines(t, record)); diff != "" {
		t.Errorf("script calls (-want +got):\n%s", diff)
	}
	for _, line := range []string{"line=to-stdout", "line=to-stderr", "line=no-newline", `msg="carpd: script done" script=up`} {
		if n := strings.Count(logs.String(), line); n < 1 {
			t.Errorf("log has no %q:\n%s", line, logs.String())
		}
	}
}

// TestScriptsWithoutXParam: no third argument without --xparam, as ucarp.
func TestScriptsWithoutXParam(t *testing.T) {
	dir := t.TempDir()
	up, record := recordingScript(t, dir, "up", "")
	s := &scripts{up: up, iface: "eth1", addrs: []string{"10.1.1.1"}, log: slog.New(slog.DiscardHandler)}
	s.handle(carp.Transition{VHID: 1, From: carp.Backup, To: carp.Master, Reason: carp.ReasonBowOut})
	want := []string{"up args=2 1=eth1 2=10.1.1.1 3= state=MASTER from=BACKUP reason=bow-out received vhid=1 addrs=10.1.1.1"}
	if diff := cmp.Diff(want, readLines(t, record)); diff != "" {
		t.Errorf("script calls (-want +got):\n%s", diff)
	}
}

func TestScriptFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		timeout time.Duration
		want    string
	}{
		{"exit status", write("fail", "#!/bin/sh\nexit 3\n"), 0, "exit status 3"},
		{"timeout kills it", write("hang", "#!/bin/sh\nexec sleep 60\n"), 50 * time.Millisecond, "killed with its process group after 50ms (--script-timeout)"},
		{"missing", filepath.Join(dir, "absent"), 0, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripts{iface: "eth0", addrs: []string{"10.0.0.1"}, timeout: tt.timeout, log: slog.New(slog.DiscardHandler)}
			err := s.run("up", tt.path, carp.Transition{To: carp.Master})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%s) = %v, want an error containing %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestCheckScript(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "exe")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{"", ""},
		{exe, ""},
		{plain, "--upscript " + plain + ": not an executable file"},
		{dir, "--upscript " + dir + ": not an executable file"},
		{filepath.Join(dir, "nope"), "--upscript " + filepath.Join(dir, "nope") + ": stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
	}
	for _, tt := range tests {
		err := checkScript("upscript", tt.path)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("checkScript(%q) (-want +got):\n%s", tt.path, diff)
		}
	}
}

package track

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestScript(t *testing.T) {
	ctx := context.Background()
	if err := ShellScript("exit 0").Check(ctx); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	err := ShellScript("echo nginx is down >&2; exit 3").Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "exit status 3: nginx is down") {
		t.Errorf("exit 3: %v, want the status and the output", err)
	}
	if err := (&Script{}).Check(ctx); err == nil || err.Error() != "track: Script.Command empty" {
		t.Errorf("empty command: %v", err)
	}
	if err := (&Script{Command: []string{"/nonexistent/check"}}).Check(ctx); err == nil {
		t.Error("missing program: no error")
	}
}

// TestScriptKillsGroup: cancelling a script's check kills the children it
// started too, not only the shell.
func TestScriptKillsGroup(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pid")
	if err := mkfifo(fifo); err != nil {
		t.Skip("mkfifo:", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- ShellScript("sleep 1000 & echo $! > " + fifo + "; wait").Check(ctx)
	}()
	b, err := os.ReadFile(fifo) // blocks until the script wrote the child's pid
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	exited, err := watchExit(pid)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled check = %v, want context.Canceled", err)
	}
	if err := exited(10 * time.Second); err != nil {
		t.Errorf("the script's child %d: %v", pid, err)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	c := &TCP{Address: addr}
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("listening: %v", err)
	}
	ln.Close()
	if err := c.Check(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "track: tcp "+addr) {
		t.Errorf("closed: %v, want a refusal", err)
	}
}

func TestHTTP(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	tests := []struct {
		serve, want int
		ok          bool
	}{
		{200, 0, true},
		{204, 0, true},
		{500, 0, false},
		{302, 0, false},
		{503, 503, true},
		{200, 503, false},
	}
	for _, tt := range tests {
		status.Store(int32(tt.serve))
		err := (&HTTP{URL: srv.URL, Status: tt.want}).Check(context.Background())
		if (err == nil) != tt.ok {
			t.Errorf("serve %d want %d: %v", tt.serve, tt.want, err)
		}
	}
	if err := (&HTTP{URL: "::"}).Check(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "track: HTTP.URL") {
		t.Errorf("bad URL: %v", err)
	}
}

func TestProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	dir := t.TempDir()
	self := filepath.Join(dir, "self.pid")
	if err := os.WriteFile(self, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A pid that existed and is gone: a child that was waited for.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(dir, "dead.pid")
	if err := os.WriteFile(dead, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pid")
	if err := os.WriteFile(garbage, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    Process
		ok   bool
	}{
		{"own pid file", Process{PIDFile: self}, true},
		{"dead pid", Process{PIDFile: dead}, false},
		{"no pid file", Process{PIDFile: filepath.Join(dir, "none")}, false},
		{"garbage pid file", Process{PIDFile: garbage}, false},
		{"own name", Process{Name: strings.TrimSpace(string(comm))}, true},
		{"own long name", Process{Name: filepath.Base(exe) + "-with-a-long-tail"}, len(filepath.Base(exe)) >= commLen},
		{"no such name", Process{Name: "no-such-proc-x"}, false},
		{"neither", Process{}, false},
		{"both", Process{PIDFile: self, Name: "x"}, false},
	}
	for _, tt := range tests {
		err := tt.p.Check(context.Background())
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestInterface(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Skip(err)
	}
	for _, ifi := range ifs {
		err := (&Interface{Name: ifi.Name}).Check(context.Background())
		up := ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0
		if (err == nil) != up {
			t.Errorf("%s flags %v: %v", ifi.Name, ifi.Flags, err)
		}
	}
	if err := (&Interface{Name: "nosuchif0"}).Check(context.Background()); err == nil {
		t.Error("missing interface: no error")
	}
}

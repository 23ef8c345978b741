package main

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The control socket answers a request line with the handler's answer, and
// a client that sends nothing (connect and read, as before requests
// existed) with the status.
func TestControlRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "fwpair.sock") // the directory is created
	var (
		mu  sync.Mutex // each connection is served on a goroutine of its own
		got []string
	)
	s, err := listenControlRequests(path, func(req string) any {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		switch req {
		case reqStatus:
			return &Status{Node: 3}
		case reqReload:
			return &Reply{OK: true, Changes: []string{"groups[0].addresses: +10.1.0.253 (group lan)"}}
		}
		return &Reply{Error: "fwpair: refused"}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	r, err := Request(path, reqReload, 5*time.Second)
	if err != nil || len(r.Changes) != 1 {
		t.Errorf("reload: %+v, %v", r, err)
	}
	if _, err := Request(path, reqMaintenanceOn, 5*time.Second); err == nil || err.Error() != "fwpair: refused" {
		t.Errorf("refused request: error %v, want the reply's", err)
	}
	st, err := QueryStatus(path, 5*time.Second)
	if err != nil || st.Node != 3 {
		t.Errorf("status: %+v, %v", st, err)
	}

	// A client that writes nothing gets the status once the server stops
	// waiting for a request.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(b), `"node":3`) {
		t.Errorf("silent client read %q, %v; want the status", b, err)
	}
	mu.Lock()
	seen := strings.Join(got, ",")
	mu.Unlock()
	if want := strings.Join([]string{reqReload, reqMaintenanceOn, reqStatus, reqStatus}, ","); seen != want {
		t.Errorf("requests %q, want %q", seen, want)
	}

	// -reload prints the changes.
	conf := exampleWithSocket(t, path)
	var out, errb bytes.Buffer
	if rc := run([]string{"-config", conf, "-reload"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "+10.1.0.253") {
		t.Errorf("-reload: exit %d, out %q, err %q", rc, out.String(), errb.String())
	}
}

// An unknown request is answered with an error naming the requests.
func TestControlUnknownRequest(t *testing.T) {
	d := &daemon{}
	r, ok := d.handleRequest("restart").(*Reply)
	if !ok || r.OK || !strings.Contains(r.Error, `unknown request "restart"`) {
		t.Errorf("answer %+v", r)
	}
}

// exampleWithSocket writes fwpair.example.json with its control socket
// replaced by sock (and its boot file under sock's directory).
func exampleWithSocket(t *testing.T, sock string) string {
	t.Helper()
	s := strings.Replace(exampleJSON(t), "/run/fwpair/fwpair.sock", sock, 1)
	s = strings.Replace(s, "/var/lib/fwpair/boot", filepath.Join(filepath.Dir(sock), "boot"), 1)
	path := filepath.Join(t.TempDir(), "fwpair.json")
	if err := writeFile(path, s); err != nil {
		t.Fatal(err)
	}
	return path
}

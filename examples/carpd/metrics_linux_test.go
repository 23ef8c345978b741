package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape fetches path from addr inside node name's network namespace: the
// socket is created on a thread in that namespace (netns.NS.Do), so the
// request is made by hand rather than by an http.Client, whose dials run
// on goroutines of their own.
func (tb *testbed) scrape(name, addr, path string) (int, string) {
	tb.t.Helper()
	var code int
	var body string
	err := tb.nodes[name].ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
		return err
	})
	if err != nil {
		tb.t.Fatalf("GET %s%s on %s: %v", addr, path, name, err)
	}
	return code, body
}

// TestMetricsServed runs carpd --metrics in a namespace: /healthz is 200
// while the group runs, /metrics shows the group's state gauge moving to
// MASTER, and nothing answers on another address.
func TestMetricsServed(t *testing.T) {
	tb := newTestbed(t, "a")
	const addr = "127.0.0.1:9311"
	p := tb.carpd("a", false, "--metrics", addr)
	tb.waitEvent(0, "a up")

	if code, body := tb.scrape("a", addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q, want 200", code, body)
	}
	code, body := tb.scrape("a", addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`gocarp_carp_state{state="master",vhid="` + testVHID + `"} 1`,
		`gocarp_carp_state{state="backup",vhid="` + testVHID + `"} 0`,
		`gocarp_carp_transitions_total{reason="master timed out",state="master",vhid="` + testVHID + `"} 1`,
		"gocarp_carp_adverts_sent_total",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	// Only the address given: not the node's LAN address.
	lan := net.JoinHostPort(tb.nodes["a"].ip.String(), "9311")
	if err := tb.nodes["a"].ns.Do(func() error {
		c, err := net.DialTimeout("tcp", lan, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil {
		t.Errorf("metrics answered on %s too", lan)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Errorf("carpd exited with %v", err)
	}
}

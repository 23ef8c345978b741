package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/fwbench"
	"github.com/gocarp/gocarp/internal/lab/netns"
	"golang.org/x/sys/unix"
)

const labMetrics = "127.0.0.1:9310"

// get fetches path from metrics.listen inside firewall ns: the connection
// is made from a thread moved into that network namespace.
func get(t *testing.T, ns *netns.NS, path string) (int, string) {
	t.Helper()
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		// Never unlocked: the thread, moved to another namespace, ends
		// with the goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- dialed{nil, err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- dialed{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp", labMetrics, 5*time.Second)
		ch <- dialed{c, err}
	}()
	d := <-ch
	if d.err != nil {
		t.Fatalf("%s: %v", ns.Short, d.err)
	}
	defer d.c.Close()
	if err := d.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(d.c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, labMetrics); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(d.c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", ns.Short, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape is one /metrics page: the value of each series, keyed by its
// name and labels as printed ("gocarp_carp_state{state=\"master\",vhid=\"1\"}").
type scrape map[string]float64

func scrapeFW(t *testing.T, p *pair, i int) scrape {
	t.Helper()
	code, body := get(t, p.FW[i], "/metrics")
	if code != http.StatusOK {
		t.Fatalf("fw%d /metrics: %d", i, code)
	}
	s := scrape{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(line)
		sp := strings.LastIndexByte(line, ' ') // label values may hold spaces
		if sp < 0 {
			continue
		}
		k, v := line[:sp], line[sp+1:]
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("fw%d: %q: %v", i, line, err)
		}
		s[k] = f
	}
	return s
}

// sum adds the series of name whose labels contain every one of labels
// (`state="master"`).
func (s scrape) sum(name string, labels ...string) float64 {
	var n float64
next:
	for k, v := range s {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(k, l) {
				continue next
			}
		}
		n += v
	}
	return n
}

// TestFailoverMetrics scrapes both firewalls' metrics.listen before and
// after a failover (fw1's LAN cable pulled): the state gauges swap, the
// transition counters rise by one, the takeover commits are recorded, and
// /healthz answers 200 on both throughout.
func TestFailoverMetrics(t *testing.T) {
	p := newPair(t, "gmx", [3]fwbench.FwpairOptions{1: {StartAsMaster: true, Metrics: labMetrics}, 2: {Metrics: labMetrics}})
	p.start(1)
	p.wait(1, "fw1 MASTER", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	p.start(2)
	p.wait(2, "fw2 BACKUP and in sync", 20*time.Second, func(s *Status) bool { return allIn(s, "BACKUP") && s.Sync.BulkDone })

	state := func(s scrape, vhid int, st string) float64 {
		return s[fmt.Sprintf(`gocarp_carp_state{state=%q,vhid="%d"}`, st, vhid)]
	}
	masterChanges := func(s scrape, vhid int) float64 {
		return s.sum("gocarp_carp_transitions_total", `state="master"`, fmt.Sprintf(`vhid="%d"`, vhid))
	}
	const commits = "gocarp_pfsync_takeover_commit_duration_seconds_count"
	before := [3]scrape{1: scrapeFW(t, p, 1), 2: scrapeFW(t, p, 2)}
	for vhid := 1; vhid <= 2; vhid++ {
		if state(before[1], vhid, "master") != 1 || state(before[2], vhid, "backup") != 1 {
			t.Errorf("before: vhid %d: fw1 master=%v, fw2 backup=%v; want 1, 1", vhid,
				state(before[1], vhid, "master"), state(before[2], vhid, "backup"))
		}
	}
	if before[2].sum("gocarp_pfsync_peer_up", `peer="1"`) != 1 {
		t.Errorf("before: fw2 does not report peer 1 up")
	}
	for i := 1; i <= 2; i++ {
		if code, _ := get(t, p.FW[i], "/healthz"); code != http.StatusOK {
			t.Errorf("fw%d /healthz: %d, want 200", i, code)
		}
	}

	p.PullCable(1, true)
	p.wait(2, "fw2 MASTER", 20*time.Second, func(s *Status) bool { return allIn(s, "MASTER") })
	p.wait(2, "fw2's commits", 20*time.Second, func(s *Status) bool { return len(s.Sync.Commits) >= 2 })
	after := [3]scrape{1: scrapeFW(t, p, 1), 2: scrapeFW(t, p, 2)}
	for vhid := 1; vhid <= 2; vhid++ {
		if state(after[1], vhid, "master") != 0 || state(after[2], vhid, "master") != 1 {
			t.Errorf("after: vhid %d: fw1 master=%v, fw2 master=%v; want 0, 1", vhid,
				state(after[1], vhid, "master"), state(after[2], vhid, "master"))
		}
		if d := masterChanges(after[2], vhid) - masterChanges(before[2], vhid); d != 1 {
			t.Errorf("vhid %d: fw2's transitions to master rose by %v, want 1", vhid, d)
		}
	}
	if d := after[1].sum("gocarp_carp_transitions_total", `reason="link down"`, `vhid="1"`) -
		before[1].sum("gocarp_carp_transitions_total", `reason="link down"`, `vhid="1"`); d != 1 {
		t.Errorf("fw1: LAN transitions for link down rose by %v, want 1", d)
	}
	if d := after[2][commits] - before[2][commits]; d != 2 {
		t.Errorf("fw2: %s rose by %v, want 2 (one per group)", commits, d)
	}
	for i := 1; i <= 2; i++ {
		if code, _ := get(t, p.FW[i], "/healthz"); code != http.StatusOK {
			t.Errorf("fw%d /healthz after the failover: %d, want 200", i, code)
		}
	}
	t.Logf("fw2: takeover commits %v, %.0f records, %.6f s in all", after[2][commits],
		after[2]["gocarp_pfsync_takeover_committed_records_total"], after[2]["gocarp_pfsync_takeover_commit_duration_seconds_sum"])
}

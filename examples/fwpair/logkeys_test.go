package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/internal/lab/logcheck"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
)

// lockedBuffer is a bytes.Buffer safe for the handler's concurrent
// writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.b.String()), "\n")
}

// TestLogKeysOnce wires a daemon's parts the way newDaemon does, with
// fwpair's logger (newLogger) and each group's (groupLog): the sync
// engine, two groups in a FollowGroup and their address followers. It
// runs a start, a link loss and a shutdown at Debug level and fails if a
// line carries a key twice (the engine adds node, the groups and
// followers vhid, and fwpair must add neither).
func TestLogKeysOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		log := newLogger(&out, slog.LevelDebug)
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		follow, err := carp.NewFollowGroup(&carp.FollowConfig{Hold: time.Second, MaxHold: time.Minute, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		d := &daemon{cfg: &Config{Node: 1}, log: log, follow: follow, started: time.Now(),
			takeoverSem: make(chan struct{}, 1)}
		var engines []*pfsync.Engine
		for _, node := range []pfsync.NodeID{1, 2} {
			cfg := pfsync.Config{Node: node, Transport: network.Attach(node), Insecure: true}
			if node == 1 {
				cfg.Logger, cfg.Demoter = log, follow
			}
			e, err := pfsync.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			engines = append(engines, e)
		}
		d.engine = engines[0]
		defer engines[1].Close()
		d.prepare = d.engine.PrepareTakeover
		d.liberalize = func(context.Context) (int, error) { return 0, nil }

		for i, gc := range []GroupConfig{{Name: "lan", VHID: 1}, {Name: "wan", VHID: 2}} {
			seg := carptest.NewSegment(uint64(i))
			port := seg.Join(carp.IPv4)
			addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
			glog := d.groupLog(gc)
			g, err := carp.NewGroup(carp.Config{VHID: gc.VHID, Addrs: []netip.Addr{addr}, StartAsMaster: true,
				IfIndex: port.IfIndex(), Transport: port, Logger: glog, OnTransition: d.onTransition})
			if err != nil {
				t.Fatal(err)
			}
			fol, err := vip.NewFollower(vip.Config{VHID: gc.VHID, Addrs: vip.Host(addr), Manager: viptest.NewAddrManager(nil),
				Announcer: viptest.NewAnnouncer(nil), BeforeInstall: d.commit, Logger: glog})
			if err != nil {
				t.Fatal(err)
			}
			if err := fol.Start(); err != nil {
				t.Fatal(err)
			}
			if err := follow.Add(g); err != nil {
				t.Fatal(err)
			}
			d.groups = append(d.groups, &groupRun{cfg: gc, group: g, fol: fol})
		}
		for _, gr := range d.groups {
			if err := gr.group.Start(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second)
		d.groups[0].group.SetLinkState(false)
		time.Sleep(5 * time.Second)
		d.groups[0].group.SetLinkState(true)
		time.Sleep(5 * time.Second)
		d.close()
		synctest.Wait()

		lines := out.lines()
		if len(lines) < 10 {
			t.Fatalf("only %d lines logged; the scenario did not run:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		for _, want := range []string{"node=1", "vhid=1", "group=lan"} {
			if !strings.Contains(strings.Join(lines, "\n"), want) {
				t.Errorf("no line carries %s: the attribute must still be there once", want)
			}
		}
		for _, l := range lines {
			if d := logcheck.DuplicateKeys(l); d != nil {
				t.Errorf("%s repeated: %s", strings.Join(d, ", "), l)
			}
		}
	})
}

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync/record"
	ct "github.com/ti-mo/conntrack"
)

// conntrackArgs are the conntrack(8) arguments naming a TCP flow.
func conntrackArgs(src, dst string, sport, dport int) []string {
	return []string{"-p", "tcp", "-s", src, "-d", dst, "--sport", fmt.Sprint(sport), "--dport", fmt.Sprint(dport)}
}

func ctInsert(n *netns.NS, src string, sport int, extra ...string) {
	args := append([]string{"-I"}, conntrackArgs(src, "10.0.2.3", sport, 80)...)
	args = append(args, "--state", "ESTABLISHED", "-t", "300", "-u", "SEEN_REPLY,ASSURED")
	n.Run("conntrack", append(args, extra...)...)
}

// TestWatcherEvents drives the watcher with conntrack(8): insert, update and
// delete of one flow become Upsert v1, Upsert v2 and Delete of one record.
func TestWatcherEvents(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	netns.RequireBinary(t, "conntrack")
	b, sink := startWatching(t, Config{NetNS: fd})

	ctInsert(n, "10.0.1.2", 1000)
	a := sink.nextAction(t)
	if a.del || a.rec.Version != 1 || a.rec.Peers[0].Level != record.TCPEstablished || a.rec.Flags&statusAssured == 0 {
		t.Fatalf("insert reported as %+v", a)
	}
	id := a.rec.ID

	n.Run("conntrack", append(append([]string{"-U"}, conntrackArgs("10.0.1.2", "10.0.2.3", 1000, 80)...), "-m", "7")...)
	a = sink.nextAction(t)
	if mark, _ := a.rec.Extension(record.ExtMark); a.del || a.rec.ID != id || a.rec.Version != 2 || string(mark) != "\x00\x00\x00\x07" {
		t.Fatalf("mark update reported as %+v", a)
	}
	// The update event carried no protocol info: the state is kept.
	if a.rec.Peers[0].Level != record.TCPEstablished {
		t.Errorf("state lost on a mark update: %+v", a.rec.Peers)
	}

	n.Run("conntrack", append([]string{"-D"}, conntrackArgs("10.0.1.2", "10.0.2.3", 1000, 80)...)...)
	a = sink.nextAction(t)
	if !a.del || a.id != id {
		t.Fatalf("delete reported as %+v", a)
	}
	if s := b.Stats(); s.Events != 3 || s.Upserts != 2 || s.Deletes != 1 || s.Tracked != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := b.Start(sink); err == nil {
		t.Error("second Start succeeded")
	}
}

// TestWatcherEcho: the events of an injected flow are not reported back;
// traffic that later changes it (a takeover) is, under the peer's identity.
func TestWatcherEcho(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	netns.RequireBinary(t, "conntrack")
	b, sink := startWatching(t, Config{NetNS: fd})
	peer := convCases()[0].rec // creator 7, established, source NAT
	peer.Ext = nil
	peer.Key.Zone = 0
	if err := b.Insert(&peer); err != nil {
		t.Fatal(err)
	}
	// Events arrive in order: once the sentinel is reported, the
	// injection's own NEW event has been seen.
	ctInsert(n, "10.0.1.99", 9999)
	if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap("10.0.1.99:9999") {
		t.Fatalf("first report is %+v, want the sentinel (the injection was echoed)", a)
	}
	if s := b.Stats(); s.Echoes == 0 {
		t.Errorf("no echo counted: %+v", s)
	}
	// An update the kernel refuses (clearing ASSURED) is sent again
	// without the status: its echo carries the kernel's ASSURED, and is
	// not reported.
	older := peer
	older.Version++
	older.Flags &^= statusAssured
	if err := b.Update(&older); err != nil {
		t.Fatal(err)
	}
	ctInsert(n, "10.0.1.98", 9998)
	if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap("10.0.1.98:9998") {
		t.Fatalf("next report is %+v, want the sentinel (the update keeping the status was reported)", a)
	}
	if s := b.Stats(); s.Recreated != 0 || s.InjectUpdates != 1 {
		t.Fatalf("stats %+v, want 1 update and nothing re-created", s)
	}
	peer = older

	// The flow closes on this node after a takeover.
	n.Run("conntrack", append(append([]string{"-U"}, conntrackArgs("192.168.1.10", "93.184.216.34", 40000, 443)...), "--state", "FIN_WAIT")...)
	a := sink.nextAction(t)
	if a.del || a.rec.ID != peer.ID || a.rec.Version != peer.Version || a.rec.Peers[0].Level != record.TCPClosing {
		t.Fatalf("takeover traffic reported as %v v%d %+v, want %v v%d closing", a.rec.ID, a.rec.Version, a.rec.Peers, peer.ID, peer.Version)
	}
	// ... and ends: the peer's record is deleted.
	n.Run("conntrack", append([]string{"-D"}, conntrackArgs("192.168.1.10", "93.184.216.34", 40000, 443)...)...)
	if a := sink.nextAction(t); !a.del || a.id != peer.ID {
		t.Fatalf("end of the taken-over flow reported as %+v", a)
	}
}

// TestWatcherTraffic: a real TCP connection from another namespace is
// reported once ASSURED (AssuredOnly), with one identity for its life.
func TestWatcherTraffic(t *testing.T) {
	tp := netns.New(t, "gck")
	c := tp.Node("c")
	s, fd := testNS(t, tp, "s")
	link(t, c, "10.9.0.1/24", s, "10.9.0.2/24")
	// A namespace tracks connections only once a rule needs conntrack.
	netns.RequireBinary(t, "nft")
	s.Run("nft", "add table inet gck; add chain inet gck c { type filter hook input priority 0; }; add rule inet gck c ct state established accept")

	_, sink := startWatching(t, Config{NetNS: fd, Filter: Filter{AssuredOnly: true}})
	var ln net.Listener
	if err := s.Do(func() (err error) { ln, err = net.Listen("tcp", "10.9.0.2:8080"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, conn)
			conn.Close()
		}
		accepted <- err
	}()
	var conn net.Conn
	if err := c.Do(func() (err error) { conn, err = net.Dial("tcp", "10.9.0.2:8080"); return }); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	a := sink.nextAction(t)
	if a.del || a.rec.Key.Orig.Dst != ap("10.9.0.2:8080") || a.rec.Peers != [2]record.Peer{{Level: record.TCPEstablished}, {Level: record.TCPEstablished}} && a.rec.Peers[0].Level != record.TCPEstablished {
		t.Fatalf("connection reported as %+v", a.rec)
	}
	if ct.Status(a.rec.Flags)&ct.StatusAssured == 0 || a.rec.Version != 1 {
		t.Errorf("first report not ASSURED v1: %v v%d", ct.Status(a.rec.Flags), a.rec.Version)
	}
	id := a.rec.ID
	conn.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	// Closing moves it to a closing state under the same identity.
	for {
		a = sink.nextAction(t)
		if a.del || a.rec.ID != id {
			t.Fatalf("close reported as %+v, want updates of %v", a, id)
		}
		if a.rec.Peers[0].Level >= record.TCPClosing || a.rec.Peers[1].Level >= record.TCPClosing {
			break
		}
	}
}

// link connects a and b with a veth pair "v0" carrying the addresses.
// (Topology.Link waits for the first end's carrier before bringing up the
// second, which never comes.)
func link(t *testing.T, a *netns.NS, aAddr string, b *netns.NS, bAddr string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", "v0", "netns", a.Name, "type", "veth", "peer", "name", "v0", "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	for _, x := range []struct {
		n    *netns.NS
		addr string
	}{{a, aAddr}, {b, bAddr}} {
		x.n.AddAddr("v0", netip.MustParsePrefix(x.addr))
		x.n.SetLink("v0", true)
	}
	a.WaitReady("v0")
	b.WaitReady("v0")
}

// TestWatcherOverrun stalls the Sink while thousands of flows appear, so the
// event socket overruns (ENOBUFS); the watcher resyncs from a dump and ends
// with exactly the kernel's flows — also after half of them vanished during
// a second overrun (mark and sweep).
func TestWatcherOverrun(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	sink := newFakeSink(0)
	w := newBackend(t, Config{NetNS: fd, ReadBuffer: 64 << 10})
	if err := w.Start(sink); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.Resync(ctx); err != nil { // the loop runs
		t.Fatal(err)
	}
	inj := newBackend(t, Config{NetNS: fd}) // writes flows like traffic would

	const n = 4000
	recs := make([]record.Record, n)
	for i := range recs {
		r := convCases()[1].rec // udp
		r.ID.Num = uint64(i + 1)
		r.Expire = 600
		r.Key.Orig.Src = netip.AddrPortFrom(r.Key.Orig.Src.Addr(), uint16(10000+i))
		r.Key.Reply.Dst = r.Key.Orig.Src
		recs[i] = r
	}
	var overruns uint64
	flood := func(f func(*record.Record) error, which func(int) bool) {
		gate := make(chan struct{})
		sink.mu.Lock()
		sink.gate = gate
		sink.mu.Unlock()
		for i := range recs {
			if which(i) {
				if err := f(&recs[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		sink.mu.Lock()
		sink.gate = nil
		sink.mu.Unlock()
		close(gate)
		// The reader meets ENOBUFS once the processor makes room in its
		// queue; every Resync does (it drops the queued, superseded
		// events). The last one leaves the Sink mirroring the kernel; what
		// is left in the socket is older and changes nothing.
		for i := 0; ; i++ {
			if err := w.Resync(ctx); err != nil {
				t.Fatal(err)
			}
			if w.Stats().Overruns > overruns {
				break
			}
			if i == 1000 {
				t.Fatalf("no overrun after stalling the watcher (%+v): the test did not test the overrun path", w.Stats())
			}
		}
		overruns = w.Stats().Overruns
		if err := w.Resync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	flood(inj.Insert, func(int) bool { return true })
	if got := sink.len(); got != n {
		t.Fatalf("sink holds %d records after the flood, want %d; stats %+v", got, n, w.Stats())
	}
	flood(func(r *record.Record) error { return inj.Delete(r.ID) }, func(i int) bool { return i%2 == 0 })
	if got := sink.len(); got != n/2 {
		t.Fatalf("sink holds %d records after deleting half, want %d", got, n/2)
	}
	s := w.Stats()
	if s.Tracked != n/2 || s.Overruns < 2 {
		t.Errorf("stats %+v: want %d tracked after 2 overruns", s, n/2)
	}
	// An explicit resync finds nothing to change.
	upserts, deletes := s.Upserts, s.Deletes
	if err := w.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if s = w.Stats(); s.Upserts != upserts || s.Deletes != deletes {
		t.Errorf("a resync of a synced table changed %d/%d records", s.Upserts-upserts, s.Deletes-deletes)
	}
	// Every resync reads the kernel's drop counters (Resync's reply
	// orders this read after it).
	if !w.dropsSeen || s.KernelDrops != 0 {
		t.Errorf("kernel statistics read %v, KernelDrops %d; want read, 0 (the table was never full)", w.dropsSeen, s.KernelDrops)
	}
	t.Logf("stats %+v", s)
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"negative netns", Config{NetNS: -1}},
		{"tiny read buffer", Config{ReadBuffer: 1000}},
		{"resync too short", Config{Resync: time.Millisecond}},
		{"invalid prefix", Config{Filter: Filter{Ignore: []netip.Prefix{{}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := New(tc.cfg); err == nil {
				b.Close()
				t.Fatalf("New(%+v) succeeded", tc.cfg)
			}
		})
	}
}

// TestPurge deletes the replicated flows (local and injected) of a node
// that became backup, keeps the ignored ones, and reports nothing.
func TestPurge(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	netns.RequireBinary(t, "conntrack")
	b, sink := startWatching(t, Config{NetNS: fd, Filter: Filter{Ignore: []netip.Prefix{netip.MustParsePrefix("10.0.7.0/24")}}})
	ctInsert(n, "10.0.1.2", 1000) // local, replicated
	if a := sink.nextAction(t); a.del {
		t.Fatalf("insert reported as %+v", a)
	}
	ctInsert(n, "10.0.7.1", 1000) // local, ignored
	peer := convCases()[1].rec    // injected
	if err := b.Insert(&peer); err != nil {
		t.Fatal(err)
	}
	got, err := b.Purge(context.Background())
	if err != nil || got != 2 {
		t.Fatalf("Purge = %d, %v; want 2", got, err)
	}
	flows := dumpNS(t, fd)
	if len(flows) != 1 || flows[0].TupleOrig.IP.SourceAddress != netip.MustParseAddr("10.0.7.1") {
		t.Fatalf("after the purge the kernel holds %d flows, want only the ignored one", len(flows))
	}
	ctInsert(n, "10.0.1.99", 9999) // sentinel: events are handled in order
	if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap("10.0.1.99:9999") {
		t.Fatalf("next report is %+v, want the sentinel (the purge was reported)", a)
	}
}

// TestLifecycle: Close is idempotent, waits for the watcher, and later
// calls fail instead of hanging.
func TestLifecycle(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b, err := New(Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Resync(context.Background()); err == nil {
		t.Error("Resync before Start succeeded")
	}
	if err := b.Start(nil); err == nil {
		t.Error("Start with a nil Sink succeeded")
	}
	if err := b.Start(newFakeSink(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Resync(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Resync after Close: %v, want net.ErrClosed", err)
	}
	// No goroutine of the backend survives Close. Close returns after
	// their wg.Done, which they call on their way out: one may still be
	// returning, so give it the processor until it is gone (the deadline
	// only turns a leak into a failure).
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, fn := range []string{"(*Backend).read", "(*Backend).process"} {
			if strings.Contains(stacks, fn) {
				left = append(left, fn)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v still running 10 s after Close", left)
		}
		runtime.Gosched()
	}
}

// liberal reports whether both directions of the TCP flow from src carry
// BE_LIBERAL in the kernel, with the flow's state and timeout.
func liberal(t *testing.T, fd int, src string) (lib bool, state uint8, timeout uint32) {
	t.Helper()
	f, ok := findFlow(dumpNS(t, fd), ap(src))
	if !ok || f.ProtoInfo.TCP == nil {
		t.Fatalf("TCP flow from %s not in the kernel", src)
	}
	tcp := f.ProtoInfo.TCP
	return uint8(tcp.OriginalFlags>>8)&tcpFlagBeLiberal != 0 && uint8(tcp.ReplyFlags>>8)&tcpFlagBeLiberal != 0, tcp.State, f.Timeout
}

// TestOwnFlowFromPeer: this node's own flows, forwarded by a peer
// meanwhile, are brought up to date in the kernel — the newer state and
// timeout and BE_LIBERAL on both directions, so the peer-advanced sequence
// numbers pass the window check — by a peer's update of the record, by a
// peer's record of the same flow under another identity (a conflict), and
// by Takeover for flows no update reached. None of these writes is
// reported back as a local change.
func TestOwnFlowFromPeer(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	netns.RequireBinary(t, "conntrack")
	// StrictLocal: the watcher leaves the strict flows own makes alone,
	// so only the writes under test make them liberal.
	b, sink := startWatching(t, Config{NetNS: fd, StrictLocal: true})
	sentinel := 20000
	// quiet checks that nothing was reported since the last action: the
	// next report must be a new sentinel flow's (events arrive in order).
	quiet := func(what string) {
		t.Helper()
		sentinel++
		ctInsert(n, "10.0.9.9", sentinel)
		if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap(fmt.Sprintf("10.0.9.9:%d", sentinel)) {
			t.Fatalf("%s: reported %+v, want nothing before the sentinel", what, a)
		}
	}
	c, err := ct.Dial(netlinkConfig(fd))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	own := func(src string, sport int) record.Record {
		t.Helper()
		ctInsert(n, src, sport)
		a := sink.nextAction(t)
		// Entries created through ctnetlink start liberal; real traffic's
		// track windows. Clear the flag (its event changes nothing
		// replicated).
		strict := ct.Flow{TupleOrig: tupleToFlow(a.rec.Key.Orig, 6), ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
			State: tcpEstablished, OriginalFlags: uint16(tcpFlagBeLiberal), ReplyFlags: uint16(tcpFlagBeLiberal)}}}
		if err := c.Update(strict); err != nil {
			t.Fatal(err)
		}
		if lib, _, _ := liberal(t, fd, fmt.Sprintf("%s:%d", src, sport)); a.del || lib {
			t.Fatalf("local flow reported as %+v, liberal %v", a, lib)
		}
		return a.rec
	}

	// A peer's update of this node's record.
	r := own("10.0.1.2", 1000)
	r.Version += 3
	r.Peers[record.Orig].Level = record.TCPClosing
	r.Timeout, r.Expire = tcpFinWait, 4000
	if err := b.Update(&r); err != nil {
		t.Fatal(err)
	}
	// The lifetime is the peer's, cut to this kernel's FIN_WAIT timeout
	// (120 s): what a FIN would have refreshed it to.
	if lib, state, timeout := liberal(t, fd, "10.0.1.2:1000"); !lib || state != tcpFinWait || timeout > 120 || timeout < 100 {
		t.Errorf("own flow after a peer's update: liberal %v state %d timeout %d, want true, FIN_WAIT, 100-120", lib, state, timeout)
	}
	quiet("peer's update of an own record")

	// A peer's record of the same flow under another identity.
	r = own("10.0.1.3", 1001)
	other := r
	other.ID, other.Version, other.Expire = record.ID{Creator: 7, Num: 99}, 1, 5000
	if err := b.Insert(&other); err != nil {
		t.Fatal(err)
	}
	if lib, state, timeout := liberal(t, fd, "10.0.1.3:1001"); !lib || state != tcpEstablished || timeout <= 300 {
		t.Errorf("own flow after a conflicting record: liberal %v state %d timeout %d, want true, ESTABLISHED, > 300", lib, state, timeout)
	}
	quiet("conflicting record")
	if s := b.Stats(); s.Conflicts != 1 || s.InjectUpdates != 2 || s.Injected != 0 {
		t.Errorf("stats %+v, want 1 conflict and 2 updates", s)
	}

	// Takeover: only the flows no update reached are written — the new
	// one and the two sentinels, not the two the peer's records wrote.
	own("10.0.1.4", 1002)
	got, err := b.Takeover(context.Background())
	if err != nil || got != 3 {
		t.Errorf("Takeover = %d, %v; want 3 (the flows the peers updated are liberal already)", got, err)
	}
	if lib, state, _ := liberal(t, fd, "10.0.1.4:1002"); !lib || state != tcpEstablished {
		t.Errorf("own flow after Takeover: liberal %v state %d, want true, ESTABLISHED", lib, state)
	}
	quiet("Takeover")
	if got, err := b.Takeover(context.Background()); err != nil || got != 1 {
		t.Errorf("second Takeover = %d, %v; want 1 (the last sentinel)", got, err)
	}
	if s := b.Stats(); s.Liberalized != 4 {
		t.Errorf("stats %+v, want 4 liberalized", s)
	}
}

// TestOwnFlowLiberal: the watcher sets BE_LIBERAL on this node's own TCP
// flows once they carry data, found by an event or by a resync's dump, so
// that the flow survives a peer forwarding one of its directions while
// this node forwards the other (both MASTER of different groups): with
// strict tracking the replies acknowledge data this node never saw and are
// INVALID. The writes are not reported as changes. With StrictLocal the
// flows keep strict tracking.
func TestOwnFlowLiberal(t *testing.T) {
	netns.RequireBinary(t, "conntrack")
	for _, strictLocal := range []bool{false, true} {
		t.Run(fmt.Sprintf("StrictLocal=%v", strictLocal), func(t *testing.T) {
			tp := netns.New(t, "gcl")
			n, fd := testNS(t, tp, "a")
			c, err := ct.Dial(netlinkConfig(fd))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Entries created through ctnetlink start liberal; real
			// traffic's track windows: clear the flag.
			strict := func(src string, sport int) {
				t.Helper()
				f := ct.Flow{TupleOrig: tupleToFlow(record.Tuple{Src: ap(fmt.Sprintf("%s:%d", src, sport)), Dst: ap("10.0.2.3:80")}, 6),
					ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
						State: tcpEstablished, OriginalFlags: uint16(tcpFlagBeLiberal), ReplyFlags: uint16(tcpFlagBeLiberal)}}}
				if err := c.Update(f); err != nil {
					t.Fatal(err)
				}
			}
			// A strict flow in the table before the watcher starts: its
			// first resync finds it.
			ctInsert(n, "10.0.1.1", 999)
			strict("10.0.1.1", 999)
			b, sink := startWatching(t, Config{NetNS: fd, StrictLocal: strictLocal})
			if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap("10.0.1.1:999") {
				t.Fatalf("dumped flow reported as %+v", a)
			}
			if lib, _, _ := liberal(t, fd, "10.0.1.1:999"); lib == strictLocal {
				t.Errorf("flow found by the resync: liberal %v, want %v", lib, !strictLocal)
			}

			// A flow that turns strict while watched (as a forwarded
			// flow is from its first packet).
			ctInsert(n, "10.0.1.2", 1000)
			if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap("10.0.1.2:1000") {
				t.Fatalf("new flow reported as %+v", a)
			}
			strict("10.0.1.2", 1000)
			// Events are handled in order, and the write before the
			// report of the next one: once the sentinel is reported, the
			// strict flow's event has been handled. Nothing else may be
			// reported (the flag is not replicated).
			ctInsert(n, "10.0.9.9", 20000)
			if a := sink.nextAction(t); a.del || a.rec.Key.Orig.Src != ap("10.0.9.9:20000") {
				t.Fatalf("reported %+v, want the sentinel", a)
			}
			if lib, state, _ := liberal(t, fd, "10.0.1.2:1000"); lib == strictLocal || state != tcpEstablished {
				t.Errorf("flow made strict while watched: liberal %v state %d, want %v, ESTABLISHED", lib, state, !strictLocal)
			}
			want := uint64(2)
			if strictLocal {
				want = 0
			}
			if s := b.Stats(); s.Liberalized != want || s.Errors != 0 {
				t.Errorf("stats %+v, want %d liberalized and no error", s, want)
			}
			// Takeover finds only what the watcher did not make liberal:
			// with StrictLocal, every flow (the sentinel too: nothing
			// looked at its flags).
			wantTakeover := 0
			if strictLocal {
				wantTakeover = 3
			}
			if got, err := b.Takeover(context.Background()); err != nil || got != wantTakeover {
				t.Errorf("Takeover = %d, %v; want %d", got, err, wantTakeover)
			}
		})
	}
}

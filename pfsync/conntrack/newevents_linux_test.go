package conntrack

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
	ct "github.com/ti-mo/conntrack"
)

// TestNoEchoAgreesWithEcho: for a create written while the watcher is out
// of the NEW group, tracker.noEcho leaves the tracker reporting what it
// would have reported after handling the create's echo — for the events
// that follow, a peer's flow (created, or re-created after an update that
// kept the kernel's status failed) and this node's own flow created again
// by a peer's change.
func TestNoEchoAgreesWithEcho(t *testing.T) {
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	replied := ct.StatusConfirmed | ct.StatusSeenReply
	// A step is an event after the write: the create's echo changed.
	type step struct {
		name   string
		change func(*ct.Flow)
	}
	unchanged := step{"unchanged", func(f *ct.Flow) { f.Timeout-- }}
	state := func(name string, s uint8) step {
		return step{name, func(f *ct.Flow) {
			tcp := *f.ProtoInfo.TCP
			tcp.State = s
			f.ProtoInfo.TCP = &tcp
		}}
	}
	cases := []struct {
		name string
		// setup registers the write in tr and returns its registration
		// and the create's echo (the kernel's flow).
		setup func(t *testing.T, tr *tracker) (registration, ct.Flow)
		after []step
	}{{
		name: "peer's flow created",
		setup: func(t *testing.T, tr *tracker) (registration, ct.Flow) {
			return registerPeer(t, tr, tcpFlow("10.0.1.2:1000", tcpEstablished, est, 300))
		},
		after: []step{unchanged, state("FIN_WAIT", tcpFinWait)},
	}, {
		name: "peer's flow re-created after a status-keeping update failed",
		setup: func(t *testing.T, tr *tracker) (registration, ct.Flow) {
			reg, echo := registerPeer(t, tr, tcpFlow("10.0.1.3:1000", tcpEstablished, replied, 300))
			tr.keepingStatus(reg)
			tr.recreating(reg)
			if a, ok := tr.destroyed(&echo); ok {
				t.Fatalf("DESTROY of the re-creation reported: %+v", a)
			}
			return reg, echo
		},
		// Not "unchanged" first: an event like the echo would do the
		// echo's work.
		after: []step{{"ASSURED by traffic", func(f *ct.Flow) { f.Status |= ct.StatusAssured }}, unchanged},
	}, {
		name: "own flow created again by a peer's change",
		setup: func(t *testing.T, tr *tracker) (registration, ct.Flow) {
			var ids counter
			f := tcpFlow("10.0.1.4:1000", tcpEstablished, est, 432000)
			a, _, _ := tr.observe(&f, testNow, ids.next)
			own := a.rec
			own.Version = 9 // the peer's copy, closing
			own.Peers[record.Orig].Level = record.TCPClosing
			own.Timeout = tcpFinWait
			fl, err := recordToFlow(&own)
			if err != nil {
				t.Fatal(err)
			}
			canon, err := canonical(&fl, own.ID, own.Version)
			if err != nil {
				t.Fatal(err)
			}
			reg, ok := tr.register(keyOf(&own.Key), canon, testNow)
			if !ok || !reg.own {
				t.Fatalf("register: own %v ok %v", reg.own, ok)
			}
			return reg, kernelFlow(&fl, own.Flags)
		},
		after: []step{unchanged, state("TIME_WAIT", tcpTimeWait)},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// What each tracker reports for the events after the write.
			reports := func(tr *tracker, echo ct.Flow) []string {
				var out []string
				var ids counter
				f := echo
				for _, s := range tc.after {
					s.change(&f)
					a, ok, err := tr.observe(&f, testNow, ids.next)
					if err != nil {
						t.Fatal(err)
					}
					r := s.name + ": not reported"
					if ok {
						r = s.name + ": " + a.rec.ID.String() + " v" + itoa(a.rec.Version) + " levels " + itoa(uint64(a.rec.Peers[0].Level)) + "/" + itoa(uint64(a.rec.Peers[1].Level)) + " flags " + itoa(uint64(a.rec.Flags))
					}
					out = append(out, r)
				}
				return out
			}
			full := newTracker(&Filter{}, 0)
			reg, echo := tc.setup(t, full)
			full.written(reg)
			if a, ok, err := full.observe(&echo, testNow, nil); ok || err != nil {
				t.Fatalf("echo reported: %+v %v", a, err)
			}
			want := reports(full, echo)

			fast := newTracker(&Filter{}, 0)
			reg, echo = tc.setup(t, fast)
			fast.written(reg)
			fast.noEcho(reg)
			if diff := cmp.Diff(want, reports(fast, echo)); diff != "" {
				t.Errorf("reports after noEcho differ from those after the echo (-echo +noEcho):\n%s", diff)
			}
		})
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// registerPeer registers a peer's record of the flow k (creator 7) as the
// Table does before a create, and returns the registration and the
// create's echo.
func registerPeer(t *testing.T, tr *tracker, k ct.Flow) (registration, ct.Flow) {
	t.Helper()
	rec, err := flowToRecord(&k, record.ID{Creator: 7, Num: 1}, 5, testNow)
	if err != nil {
		t.Fatal(err)
	}
	f, err := recordToFlow(&rec)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := canonical(&f, rec.ID, rec.Version)
	if err != nil {
		t.Fatal(err)
	}
	reg, ok := tr.register(keyOf(&rec.Key), canon, testNow)
	if !ok {
		t.Fatal("register: conflict")
	}
	return reg, kernelFlow(&f, rec.Flags)
}

// kernelFlow returns what the kernel reports of the TCP flow f created
// from a record with the status bits flags: the injected status and TCP
// flags.
func kernelFlow(f *ct.Flow, flags uint32) ct.Flow {
	k := *f
	k.Status = ct.Status(InjectStatus(flags))
	tcp := *f.ProtoInfo.TCP
	o, r := injectFlags(&tcp)
	tcp.OriginalFlags, tcp.ReplyFlags = o&0xff00, r&0xff00
	k.ProtoInfo.TCP = &tcp
	return k
}

// TestCommitNewFlows: while commits run the watcher is out of the NEW
// event group, so the kernel sends it no echo of their creates, and flows
// that traffic creates meanwhile still reach the Sink: a TCP connection
// through its UPDATE events (the reply, the handshake), a UDP flow that
// has had no reply — whose only event, NEW, the kernel never built —
// through the dump after the commits (catchUpNew). Back in the group,
// the watcher hears of the next new flow by its NEW event.
func TestCommitNewFlows(t *testing.T) {
	tp := netns.New(t, "gck")
	c := tp.Node("c")
	s, fd := testNS(t, tp, "s")
	link(t, c, "10.9.0.1/24", s, "10.9.0.2/24")
	// A namespace tracks connections only once a rule needs conntrack.
	netns.RequireBinary(t, "nft")
	s.Run("nft", "add table inet gck; add chain inet gck c { type filter hook input priority 0; }; add rule inet gck c ct state established accept")

	b := newBackend(t, Config{NetNS: fd, Resync: -1}) // no periodic resync to find what the catch-up missed
	caught := catchUpSignal(b)
	sink := newFakeSink(64)
	if err := b.Start(sink); err != nil {
		t.Fatal(err)
	}
	if err := b.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var udp net.PacketConn
	if err := s.Do(func() (err error) { udp, err = net.ListenPacket("udp", "10.9.0.2:5353"); return }); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	// send sends one datagram from c's port sport and waits until the
	// server has it (the kernel has confirmed the flow); no reply.
	send := func(sport int) {
		t.Helper()
		var conn net.Conn
		if err := c.Do(func() (err error) {
			conn, err = (&net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(10, 9, 0, 1), Port: sport}}).Dial("udp", "10.9.0.2:5353")
			return
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := udp.ReadFrom(make([]byte, 16)); err != nil {
			t.Fatal(err)
		}
	}
	udpReported := func(sport uint16) bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, r := range sink.recs {
			if r.Key.Proto == record.ProtoUDP && r.Key.Orig.Src.Port() == sport {
				return true
			}
		}
		return false
	}

	// A large commit is running (the outer pause; a takeover commit is
	// many CommitBatch calls), and another one writes peers' records.
	if !b.pauseNew(pauseNewMin) {
		t.Fatal("pauseNew with the watcher running counted no commit")
	}
	recs := benchRecords(50)
	if res, err := b.Commit(context.Background(), recs); err != nil || res.Created != len(recs) {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	// Traffic meanwhile: a TCP connection, reported through its UPDATE
	// events while the commit still runs.
	var ln net.Listener
	if err := s.Do(func() (err error) { ln, err = net.Listen("tcp", "10.9.0.2:8080"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if conn, err := ln.Accept(); err == nil {
			conn.Close()
		}
	}()
	var conn net.Conn
	if err := c.Do(func() (err error) { conn, err = net.Dial("tcp", "10.9.0.2:8080"); return }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if a := sink.nextAction(t); a.del || a.rec.Key.Proto != record.ProtoTCP || a.rec.Key.Orig.Dst != ap("10.9.0.2:8080") {
		t.Fatalf("first report during the commit is %+v, want the TCP connection", a)
	}
	// ... and a UDP flow without a reply: no event at all.
	send(4001)
	b.resumeNew()
	<-caught
	if !udpReported(4001) {
		t.Errorf("the UDP flow created during the commit was not reported after it: %d records reported", sink.len())
	}
	if st := b.Stats(); st.Echoes != 0 || st.Injected != uint64(len(recs)) {
		t.Errorf("stats %+v, want %d flows injected and no echo of them received", st, len(recs))
	}
	sink.mu.Lock()
	for _, r := range sink.recs {
		if r.ID.Creator != 1 {
			t.Errorf("a peer's committed record was reported: %v", r.ID)
		}
	}
	sink.mu.Unlock()

	// Back in the NEW group: the next new flow is reported by its event.
	send(4002)
	for !udpReported(4002) {
		sink.nextAction(t)
	}
}

// TestSmallCommitKeepsEvents: a commit of a few records (a direct-mode
// backup's received frame) leaves the watcher in the NEW group, and so
// does a large one into a table the tracker knows to be far larger: the
// dump after a pause would cost more than the events it saves.
func TestSmallCommitKeepsEvents(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b, _ := startWatching(t, Config{NetNS: fd})
	left := func() bool {
		b.injMu.Lock()
		defer b.injMu.Unlock()
		return b.pause.left
	}
	recs := benchRecords(2 * pauseNewMin)
	if res, err := b.Commit(context.Background(), recs[:pauseNewMin-1]); err != nil || res.Created != pauseNewMin-1 {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	if left() {
		t.Errorf("a commit of %d records left the NEW group", pauseNewMin-1)
	}
	// The tracker holds more than pauseNewRatio times the next commit.
	b.t.mu.Lock()
	for i := range (pauseNewRatio + 1) * pauseNewMin {
		k := flowKey{proto: record.ProtoUDP, orig: record.Tuple{Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)}), 1)}}
		b.t.byKey[k] = &entry{key: k}
	}
	b.t.mu.Unlock()
	if res, err := b.Commit(context.Background(), recs[pauseNewMin-1:]); err != nil || res.Created != pauseNewMin+1 {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	if left() {
		t.Error("a commit far smaller than the table left the NEW group")
	}
}

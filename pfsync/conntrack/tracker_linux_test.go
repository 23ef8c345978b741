package conntrack

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
	ct "github.com/ti-mo/conntrack"
)

func TestFilter(t *testing.T) {
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	fwd := ct.Flow{ // forwarded, source-NATed to the VIP 203.0.113.1
		TupleOrig:  ctTuple(6, "192.168.1.10:40000", "93.184.216.34:443"),
		TupleReply: ctTuple(6, "93.184.216.34:443", "203.0.113.1:61000"),
		Status:     est,
	}
	toVIP := ct.Flow{ // to the firewall itself: reply source is the VIP
		TupleOrig:  ctTuple(6, "198.51.100.7:33000", "203.0.113.1:22"),
		TupleReply: ctTuple(6, "203.0.113.1:22", "198.51.100.7:33000"),
		Status:     est,
	}
	fromSelf := ct.Flow{ // the sync link's own traffic
		TupleOrig:  ctTuple(17, "10.255.0.1:3780", "10.255.0.2:3780"),
		TupleReply: ctTuple(17, "10.255.0.2:3780", "10.255.0.1:3780"),
		Status:     est,
	}
	dnat := ct.Flow{ // port forward on the VIP to an inside server
		TupleOrig:  ctTuple(6, "198.51.100.7:33000", "203.0.113.1:80"),
		TupleReply: ctTuple(6, "10.0.2.10:8080", "198.51.100.7:33000"),
		Status:     est,
	}
	unassured := fwd
	unassured.Status = ct.StatusConfirmed
	zoned := fwd
	zoned.Zone = 9
	udp := fromSelf
	udp.TupleOrig.IP.SourceAddress = netip.MustParseAddr("192.168.1.10")
	udp.TupleReply.IP.DestinationAddress = netip.MustParseAddr("192.168.1.10")

	local := Filter{Ignore: []netip.Prefix{
		netip.MustParsePrefix("203.0.113.1/32"), // VIP
		netip.MustParsePrefix("10.255.0.0/30"),  // sync link
	}}
	for _, tc := range []struct {
		name   string
		filter Filter
		flow   ct.Flow
		want   bool
	}{
		{"zero filter passes everything", Filter{}, unassured, true},
		{"forwarded flow NATed to the VIP passes", local, fwd, true},
		{"traffic to the VIP is ignored", local, toVIP, false},
		{"sync link traffic is ignored", local, fromSelf, false},
		{"DNAT through the VIP passes", local, dnat, true},
		{"assured only: assured passes", Filter{AssuredOnly: true}, fwd, true},
		{"assured only: unassured dropped", Filter{AssuredOnly: true}, unassured, false},
		{"ignored zone", Filter{IgnoreZones: []uint16{9}}, zoned, false},
		{"other zone passes", Filter{IgnoreZones: []uint16{9}}, fwd, true},
		{"protocol accepted", Filter{Protocols: []uint8{6, 132}}, fwd, true},
		{"protocol not accepted", Filter{Protocols: []uint8{6, 132}}, udp, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.filter.pass(&tc.flow); got != tc.want {
				t.Errorf("pass = %v, want %v", got, tc.want)
			}
		})
	}
}

// counter allocates ids of creator 1.
type counter struct{ n uint64 }

func (c *counter) next() record.ID { c.n++; return record.ID{Creator: 1, Num: c.n} }

func tcpFlow(src string, state uint8, status ct.Status, timeout uint32) ct.Flow {
	return ct.Flow{
		TupleOrig:  ctTuple(6, src, "10.0.2.3:80"),
		TupleReply: ctTuple(6, "10.0.2.3:80", src),
		Status:     status,
		Timeout:    timeout,
		ProtoInfo:  ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: state}},
	}
}

func TestTrackerLocalLifecycle(t *testing.T) {
	tr := newTracker(&Filter{}, 0)
	var ids counter
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured

	// NEW: a fresh identity, version 1.
	a, ok, err := tr.observe(ptr(tcpFlow("10.0.1.2:1000", tcpSynSent, ct.StatusConfirmed, 120)), testNow, ids.next)
	if err != nil || !ok || a.del || a.rec.ID != (record.ID{Creator: 1, Num: 1}) || a.rec.Version != 1 {
		t.Fatalf("NEW: %+v %v %v", a, ok, err)
	}
	// UPDATE to ESTABLISHED: same identity, next version.
	a, ok, _ = tr.observe(ptr(tcpFlow("10.0.1.2:1000", tcpEstablished, est, 432000)), testNow, ids.next)
	if !ok || a.rec.ID.Num != 1 || a.rec.Version != 2 || a.rec.Peers[0].Level != record.TCPEstablished {
		t.Fatalf("UPDATE: %+v %v", a, ok)
	}
	// An update event without protocol info (a mark change) keeps the state.
	f := tcpFlow("10.0.1.2:1000", 0, est, 431990)
	f.ProtoInfo.TCP = nil
	f.Mark = 5
	a, ok, _ = tr.observe(&f, testNow, ids.next)
	if !ok || a.rec.Version != 3 || a.rec.Peers[1].Level != record.TCPEstablished || a.rec.Timeout != tcpEstablished {
		t.Fatalf("mark UPDATE: %+v %v", a, ok)
	}
	// The same state again with only a shorter timeout is no news.
	f.Timeout = 431980
	if a, ok, _ = tr.observe(&f, testNow, ids.next); ok {
		t.Fatalf("repeated UPDATE reported: %+v", a)
	}
	// DESTROY: the record is deleted, once.
	a, ok = tr.destroyed(&f)
	if !ok || !a.del || a.id.Num != 1 {
		t.Fatalf("DESTROY: %+v %v", a, ok)
	}
	if a, ok = tr.destroyed(&f); ok {
		t.Fatalf("second DESTROY reported: %+v", a)
	}
	if ids.n != 1 {
		t.Errorf("allocated %d ids, want 1", ids.n)
	}
}

func ptr[T any](v T) *T { return &v }

func TestTrackerAssuredOnly(t *testing.T) {
	tr := newTracker(&Filter{AssuredOnly: true}, 0)
	var ids counter
	if a, ok, _ := tr.observe(ptr(tcpFlow("10.0.1.2:1000", tcpSynSent, ct.StatusConfirmed, 120)), testNow, ids.next); ok {
		t.Fatalf("unassured NEW reported: %+v", a)
	}
	// Destroying a flow that was never reported reports nothing.
	if a, ok := tr.destroyed(ptr(tcpFlow("10.0.1.2:1000", tcpClose, ct.StatusConfirmed, 10))); ok {
		t.Fatalf("DESTROY of an unreported flow: %+v", a)
	}
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	a, ok, _ := tr.observe(ptr(tcpFlow("10.0.1.3:1000", tcpEstablished, est, 432000)), testNow, ids.next)
	if !ok || a.rec.Version != 1 {
		t.Fatalf("assured UPDATE: %+v %v", a, ok)
	}
	if s := tr.stats; s.Filtered != 1 || s.Upserts != 1 {
		t.Errorf("stats %+v, want 1 filtered, 1 upsert", s)
	}
}

func TestTrackerRefresh(t *testing.T) {
	// An idle flow whose timeout packets refreshed (no event) is reported
	// again when the peers' copy would expire within two resync intervals.
	tr := newTracker(&Filter{}, time.Minute)
	var ids counter
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	udp := func(port uint16, timeout uint32) *ct.Flow {
		return &ct.Flow{
			TupleOrig:  ctTuple(17, netip.AddrPortFrom(netip.MustParseAddr("10.0.1.2"), port).String(), "10.0.2.3:5000"),
			TupleReply: ctTuple(17, "10.0.2.3:5000", netip.AddrPortFrom(netip.MustParseAddr("10.0.1.2"), port).String()),
			Status:     est, Timeout: timeout,
		}
	}
	tcp := tcpFlow("10.0.1.2:1000", tcpEstablished, est, 432000)
	for _, f := range []*ct.Flow{udp(1, 180), udp(2, 180), &tcp} {
		if _, ok, _ := tr.observe(f, testNow, ids.next); !ok {
			t.Fatal("NEW not reported")
		}
	}
	for _, tc := range []struct {
		name string
		at   time.Duration
		flow *ct.Flow
		want bool
	}{
		{"refreshed, peers' copy still 150 s left", 30 * time.Second, udp(1, 180), false},
		{"idle, not refreshed: let it expire", 90 * time.Second, udp(2, 90), false},
		{"refreshed, peers' copy 90 s left", 90 * time.Second, udp(1, 170), true},
		{"established tcp refreshed: days left", 90 * time.Second, ptr(tcpFlow("10.0.1.2:1000", tcpEstablished, est, 432000)), false},
	} {
		a, ok, _ := tr.observe(tc.flow, testNow.Add(tc.at), ids.next)
		if ok != tc.want {
			t.Errorf("%s: reported %v, want %v", tc.name, ok, tc.want)
		}
		if ok && (a.rec.Version != 2 || a.rec.Expire != tc.flow.Timeout) {
			t.Errorf("%s: reported v%d expire %d", tc.name, a.rec.Version, a.rec.Expire)
		}
	}
}

// injected registers rec in tr as the injection of a peer's record and
// returns the flow the kernel will report for it.
func injected(t *testing.T, tr *tracker, rec record.Record) ct.Flow {
	t.Helper()
	f, err := recordToFlow(&rec)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := canonical(&f, rec.ID, rec.Version)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.register(keyOf(&rec.Key), canon, testNow); !ok {
		t.Fatal("register: conflict")
	}
	// What the kernel reports: the injected status (plus NAT bits it sets
	// up itself) and the injected TCP flags.
	k := f
	k.Status = ct.Status(InjectStatus(rec.Flags)) | ct.StatusSrcNATDone | ct.StatusDstNATDone
	if f.ProtoInfo.TCP != nil {
		tcp := *f.ProtoInfo.TCP
		o, r := injectFlags(&tcp)
		tcp.OriginalFlags, tcp.ReplyFlags = o&0xff00, r&0xff00
		k.ProtoInfo.TCP = &tcp
	}
	return k
}

func TestTrackerInjectedEcho(t *testing.T) {
	tr := newTracker(&Filter{}, 0)
	var ids counter
	peer := convCases()[0].rec // creator 7, established, source NAT
	peer.Version = 12
	k := injected(t, tr, peer)

	// The NEW event of the injection is an echo: nothing reported, no id.
	if a, ok, err := tr.observe(&k, testNow, ids.next); ok || err != nil {
		t.Fatalf("echo reported: %+v %v", a, err)
	}
	if tr.stats.Echoes != 1 || ids.n != 0 {
		t.Fatalf("echoes %d, ids %d; want 1, 0", tr.stats.Echoes, ids.n)
	}
	// Traffic after a takeover moves it to FIN_WAIT: reported under the
	// peer's identity and version.
	k.ProtoInfo.TCP.State = tcpFinWait
	a, ok, err := tr.observe(&k, testNow, ids.next)
	if err != nil || !ok {
		t.Fatalf("FIN_WAIT not reported: %v", err)
	}
	if a.rec.ID != peer.ID || a.rec.Version != 12 || a.rec.Peers[0].Level != record.TCPClosing {
		t.Errorf("FIN_WAIT reported as %v v%d levels %v", a.rec.ID, a.rec.Version, a.rec.Peers)
	}
	// The injector's delete-and-recreate is not a delete.
	reg := registration{e: tr.byKey[keyOf(&peer.Key)]}
	tr.recreating(reg)
	if a, ok := tr.destroyed(&k); ok {
		t.Errorf("DESTROY of a re-creation reported: %+v", a)
	}
	// The flow ending here deletes the peer's record (pfsync deletes a
	// state wherever it expires).
	if a, ok := tr.destroyed(&k); !ok || !a.del || a.id != peer.ID {
		t.Errorf("end of the injected flow reported as %+v, %v; want delete of %v", a, ok, peer.ID)
	}
}

// TestTrackerConflict: a peer's record of a flow this node created under
// another identity (both saw it) becomes an update of the local record —
// the peer's newer state joined in, the local identity and version kept —
// whose kernel echo is not reported, so neither node reports the other's
// write back (no ping-pong); the next real local change is.
func TestTrackerConflict(t *testing.T) {
	tr := newTracker(&Filter{}, 0)
	var ids counter
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	f := tcpFlow("10.0.1.2:1000", tcpEstablished, est, 100)
	a, _, _ := tr.observe(&f, testNow, ids.next)
	local := a.rec

	peer := local
	peer.ID = record.ID{Creator: 7, Num: 3}
	peer.Version = 40
	peer.Peers[record.Orig].Level = record.TCPClosing // the peer saw our FIN
	peer.Timeout = tcpFinWait
	peer.Expire = 120
	if _, ok := tr.conflicting(&peer, testNow); !ok {
		t.Fatal("a peer's record of a local flow is no conflict")
	}
	j, _ := tr.conflicting(&peer, testNow.Add(10*time.Second))
	want := local
	want.Peers[record.Orig].Level, want.Timeout, want.Expire = record.TCPClosing, tcpFinWait, 120
	if diff := cmp.Diff(want, j, cmpOpts); diff != "" {
		t.Errorf("record written for the conflict (-want +got):\n%s", diff)
	}
	if tr.stats.Conflicts != 2 {
		t.Errorf("conflicts %d, want 2", tr.stats.Conflicts)
	}
	// Written as this node's own record.
	fl, _ := recordToFlow(&j)
	canon, _ := canonical(&fl, j.ID, j.Version)
	reg, ok := tr.register(keyOf(&j.Key), canon, testNow)
	if !ok || !reg.own {
		t.Fatalf("register of the joined record: own %v ok %v, want an own-record update", reg.own, ok)
	}
	echo := tcpFlow("10.0.1.2:1000", tcpFinWait, est, 120)
	if a, ok, _ := tr.observe(&echo, testNow, ids.next); ok {
		t.Fatalf("echo of the conflict's write reported: %+v", a)
	}
	next := tcpFlow("10.0.1.2:1000", tcpTimeWait, est, 120)
	a, ok, _ = tr.observe(&next, testNow, ids.next)
	if !ok || a.rec.ID != local.ID || a.rec.Version != local.Version+1 {
		t.Fatalf("local change after the conflict: %v v%d (%v), want %v v%d", a.rec.ID, a.rec.Version, ok, local.ID, local.Version+1)
	}

	// Not conflicts: the local record itself, an unknown flow, an
	// injected one.
	for name, r := range map[string]record.Record{"own": local, "unknown": convCases()[1].rec} {
		if _, ok := tr.conflicting(&r, testNow); ok {
			t.Errorf("%s: treated as a conflict", name)
		}
	}
	// register still refuses another record on a local tuple (the local
	// flow appeared between conflicting and register).
	pf, _ := recordToFlow(&peer)
	pc, _ := canonical(&pf, peer.ID, peer.Version)
	if _, ok := tr.register(keyOf(&peer.Key), pc, testNow); ok {
		t.Error("a peer's record took over a local flow")
	}
}

func TestJoinConflict(t *testing.T) {
	base := record.Record{ID: record.ID{Creator: 1, Num: 1}, Version: 5, Flags: statusConfirmed, Expire: 100,
		Timeout: tcpEstablished, Key: record.Key{Proto: record.ProtoTCP},
		Peers: [2]record.Peer{{Level: record.TCPEstablished, WScale: 7}, {Level: record.TCPEstablished}}}
	with := func(f func(*record.Record)) record.Record { r := base; f(&r); return r }
	cases := []struct {
		name          string
		local, remote record.Record
		want          record.Record
	}{
		{"behind: nothing changes", base,
			with(func(r *record.Record) { r.Peers[0].Level, r.Expire, r.ID.Creator = record.TCPSynSent, 10, 2 }), base},
		{"longer lifetime", base, with(func(r *record.Record) { r.Expire, r.ID.Creator = 300, 2 }),
			with(func(r *record.Record) { r.Expire = 300 })},
		{"more advanced direction with its scale and state", base,
			with(func(r *record.Record) {
				r.Peers[1] = record.Peer{Level: record.TCPClosing, WScale: 3}
				r.Timeout, r.Version, r.ID.Creator = tcpCloseWait, 99, 2
			}),
			with(func(r *record.Record) {
				r.Peers[1] = record.Peer{Level: record.TCPClosing, WScale: 3}
				r.Timeout = tcpCloseWait
			})},
		{"SEEN_REPLY and ASSURED", base, with(func(r *record.Record) { r.Flags |= statusSeenReply | statusAssured | statusExpected }),
			with(func(r *record.Record) { r.Flags |= statusSeenReply | statusAssured })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, joinConflict(&c.local, &c.remote), cmpOpts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestTrackerUndo(t *testing.T) {
	tr := newTracker(&Filter{}, 0)
	peer := convCases()[1].rec
	f, _ := recordToFlow(&peer)
	canon, _ := canonical(&f, peer.ID, peer.Version)
	key := keyOf(&peer.Key)
	tr.register(key, canon, testNow)

	canon2 := canon
	canon2.Version++
	reg, _ := tr.register(key, canon2, testNow)
	tr.undo(reg, true) // update failed, the kernel still holds version 1
	if e := tr.byKey[key]; e == nil || e.rec.Version != canon.Version || tr.byID[peer.ID] != e {
		t.Fatalf("after undo with restore: %+v", e)
	}
	reg, _ = tr.register(key, canon2, testNow)
	tr.undo(reg, false) // deleted and not re-created: nothing left
	if len(tr.byKey) != 0 || len(tr.byID) != 0 {
		t.Fatalf("after undo without restore: %d, %d entries", len(tr.byKey), len(tr.byID))
	}
}

// TestSweep runs the mark-and-sweep resync of the watcher on a fake dump.
func TestSweep(t *testing.T) {
	sink := newFakeSink(0)
	// No kernel behind this backend: StrictLocal, so the sweep writes
	// nothing (TestOwnFlowLiberal covers the writes).
	b := &Backend{cfg: Config{StrictLocal: true}, sink: sink, log: slog.New(slog.DiscardHandler), t: newTracker(&Filter{}, 0)}
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	a := tcpFlow("10.0.1.2:1001", tcpEstablished, est, 1000)
	bb := tcpFlow("10.0.1.2:1002", tcpEstablished, est, 1000)
	c := tcpFlow("10.0.1.2:1003", tcpEstablished, est, 1000)

	// The initial resync reports the whole table.
	b.sweep([]ct.Flow{a, bb}, b.t.beginSweep())
	if sink.len() != 2 {
		t.Fatalf("after the first dump the sink holds %d records, want 2", sink.len())
	}
	idB := b.t.byKey[flowKeyOf(&bb)].rec.ID

	// A peer's record injected before the next dump, and one injected while
	// it runs (newer than the dump's start).
	old := injected(t, b.t, convCases()[1].rec)
	gen := b.t.beginSweep()
	young := convCases()[2].rec
	injected(t, b.t, young)

	// Events were lost: b ended, c started, a moved to TIME_WAIT, the old
	// injection expired. The dump shows a and c.
	a.ProtoInfo.TCP.State = tcpTimeWait
	b.sweep([]ct.Flow{a, c}, gen)

	if diff := cmp.Diff([]record.ID{idB}, sink.dels); diff != "" {
		t.Errorf("deletes (-want +got):\n%s", diff)
	}
	if sink.len() != 2 {
		t.Errorf("sink holds %d records, want 2 (a, c)", sink.len())
	}
	if e := b.t.byKey[flowKeyOf(&a)]; e == nil || e.rec.Peers[0].Level != record.TCPTimeWait || e.rec.Version != 2 {
		t.Errorf("a after the resync: %+v", e)
	}
	if e := b.t.byKey[flowKeyOf(&old)]; e != nil {
		t.Errorf("expired injection still tracked: %+v", e)
	}
	if e := b.t.byKey[keyOf(&young.Key)]; e == nil {
		t.Error("injection newer than the dump was swept")
	}
	if s := b.Stats(); s.Resyncs != 2 || s.Deletes != 1 || s.Tracked != 3 {
		t.Errorf("stats %+v, want 2 resyncs, 1 delete, 3 tracked", s)
	}
}

func TestTrackerOwnRecordFromPeer(t *testing.T) {
	// A peer (the new master) changes this node's own record; the Table
	// writes it into the kernel and the kernel's echo is not a local change.
	tr := newTracker(&Filter{}, 0)
	var ids counter
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	f := tcpFlow("10.0.1.2:1000", tcpEstablished, est, 432000)
	a, _, _ := tr.observe(&f, testNow, ids.next)
	own := a.rec
	own.Version = 9 // the peer's copy
	own.Peers[0].Level = record.TCPClosing
	fl, _ := recordToFlow(&own)
	canon, _ := canonical(&fl, own.ID, own.Version)
	if _, ok := tr.register(keyOf(&own.Key), canon, testNow); !ok {
		t.Fatal("own record treated as a conflict")
	}
	echo := tcpFlow("10.0.1.2:1000", tcpFinWait, est, 120)
	if a, ok, _ := tr.observe(&echo, testNow, ids.next); ok {
		t.Fatalf("echo of the peer's change reported: %+v", a)
	}
	// The next real change is reported above the peer's version.
	next := tcpFlow("10.0.1.2:1000", tcpTimeWait, est, 120)
	a, ok, _ := tr.observe(&next, testNow, ids.next)
	if !ok || a.rec.ID != own.ID || a.rec.Version != 10 {
		t.Fatalf("local change after the peer's: %+v %v, want %v v10", a.rec.ID, ok, own.ID)
	}
	if ids.n != 1 {
		t.Errorf("allocated %d ids, want 1", ids.n)
	}
}

func TestTrackerTakenOverRefresh(t *testing.T) {
	// A peer's UDP flow kept alive by traffic here (after a takeover) is
	// re-reported before the peers' copies run out.
	tr := newTracker(&Filter{}, time.Minute)
	var ids counter
	peer := convCases()[1].rec
	peer.Expire = 120
	k := injected(t, tr, peer)
	k.Timeout = 120
	if a, ok, _ := tr.observe(&k, testNow, ids.next); ok {
		t.Fatalf("echo reported: %+v", a)
	}
	k.Timeout = 118
	a, ok, _ := tr.observe(&k, testNow.Add(70*time.Second), ids.next)
	if !ok || a.rec.ID != peer.ID || a.rec.Version != peer.Version || a.rec.Expire != 118 {
		t.Fatalf("refresh reported as %+v, %v", a.rec, ok)
	}
}

// TestSweepSparesPending: a resync that runs entirely between an
// injection's registration and its write (Commit registers a whole batch
// first) did not see the flow in its dump and must not forget it; once
// written, the entry is newer than that sweep.
func TestSweepSparesPending(t *testing.T) {
	tr := newTracker(&Filter{}, 0)
	peer := convCases()[1].rec
	f, _ := recordToFlow(&peer)
	canon, _ := canonical(&f, peer.ID, peer.Version)
	key := keyOf(&peer.Key)
	reg, _ := tr.register(key, canon, testNow)
	gen := tr.beginSweep() // the dump runs before the write: no observe
	if a := tr.endSweep(gen); len(a) != 0 || tr.byKey[key] == nil {
		t.Fatalf("sweep during the write: actions %v, entry kept %v", a, tr.byKey[key] != nil)
	}
	gen = tr.beginSweep() // the next dump starts before the write is done
	tr.written(reg)
	if tr.endSweep(gen); tr.byKey[key] == nil {
		t.Fatal("entry written after the dump started was swept")
	}
	gen = tr.beginSweep() // a dump after the write that misses the flow: it ended
	if tr.endSweep(gen); tr.byKey[key] != nil {
		t.Error("written entry missing from a later dump was kept")
	}
}

package conntrack

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
	ct "github.com/ti-mo/conntrack"
)

// TestInjectDump writes the conversion cases into a fresh namespace's table
// and reads them back: CONFIRMED always, SEEN_REPLY/ASSURED as replicated,
// NAT set up from the reply tuple, BE_LIBERAL on both directions, the
// timeout the remaining lifetime.
func TestInjectDump(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	netns.RequireBinary(t, "nft")
	// The kernel keeps labels only in a namespace where a rule sets them
	// (otherwise it accepts CTA_LABELS and drops them).
	n.Run("nft", "add table inet gck; add chain inet gck c { type filter hook prerouting priority 0; }; add rule inet gck c ct label set 127")
	b := newBackend(t, Config{NetNS: fd})

	cases := convCases()[:5] // the RELATED case needs its master: TestCommitOrder
	for i := range cases {
		r := &cases[i].rec
		r.ID.Num += uint64(i)
		if err := b.Insert(r); err != nil {
			t.Fatalf("%s: Insert: %v", cases[i].name, err)
		}
	}
	flows := dumpNS(t, fd)
	if len(flows) != len(cases) {
		t.Fatalf("dump has %d flows, want %d", len(flows), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := findFlow(flows, tc.rec.Key.Orig.Src)
			if !ok {
				t.Fatal("not in the dump")
			}
			wantStatus := ct.Status(InjectStatus(tc.rec.Flags))
			if f.Status&(ct.StatusConfirmed|ct.StatusSeenReply|ct.StatusAssured) != wantStatus&^ct.StatusFixedTimeout {
				t.Errorf("status %v, want %v", f.Status, wantStatus)
			}
			if f.Status.Expected() || f.Status.Offload() {
				t.Errorf("status %v carries EXPECTED or OFFLOAD", f.Status)
			}
			snat, dnat := natOf(&f)
			if snat != f.Status.SrcNAT() || dnat != f.Status.DstNAT() {
				t.Errorf("status %v does not match the NAT of the tuples (snat %v, dnat %v)", f.Status, snat, dnat)
			}
			if f.Timeout > tc.rec.Expire || f.Timeout+2 < tc.rec.Expire {
				t.Errorf("timeout %d, want about %d", f.Timeout, tc.rec.Expire)
			}
			got, err := flowToRecord(&f, tc.rec.ID, tc.rec.Version, testNow)
			if err != nil {
				t.Fatal(err)
			}
			// Window scales survive only when both sides negotiated them
			// (the kernel keeps td_scale only with WINDOW_SCALE on both).
			want := tc.rec.Clone()
			for d := range want.Peers {
				if !want.Peers[d].Scaled {
					want.Peers[d].WScale = 0
				}
			}
			if got.Key != want.Key || got.Peers != want.Peers {
				t.Errorf("read back key %+v peers %+v, want %+v %+v", got.Key, got.Peers, want.Key, want.Peers)
			}
			// Mark and labels come back.
			for _, typ := range []record.ExtType{record.ExtMark, record.ExtLabels} {
				w, _ := want.Extension(typ)
				g, _ := got.Extension(typ)
				if string(w) != string(g) {
					t.Errorf("extension %d: % x, want % x", typ, g, w)
				}
			}
			if tcp := f.ProtoInfo.TCP; tcp != nil {
				if uint8(tcp.OriginalFlags>>8)&tcpFlagBeLiberal == 0 || uint8(tcp.ReplyFlags>>8)&tcpFlagBeLiberal == 0 {
					t.Errorf("TCP flags %#04x/%#04x without BE_LIBERAL", tcp.OriginalFlags, tcp.ReplyFlags)
				}
			}
		})
	}
	if s := b.Stats(); s.Injected != uint64(len(cases)) || s.InjectErrors != 0 {
		t.Errorf("stats %+v, want %d injected, no errors", s, len(cases))
	}
}

// TestInjectExisting covers EEXIST: a record whose flow the kernel already
// holds (created by the conntrack tool, or injected twice) is updated, and
// an update the kernel refuses (clearing ASSURED) becomes delete + create.
func TestInjectExisting(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	netns.RequireBinary(t, "conntrack")
	b := newBackend(t, Config{NetNS: fd})

	n.Run("conntrack", "-I", "-p", "udp", "-s", "10.0.1.2", "-d", "10.0.2.3", "--sport", "5353", "--dport", "53", "-t", "50", "-u", "SEEN_REPLY")
	rec := convCases()[1].rec // the same udp flow, 29 s left, mark 0
	rec.Ext = []record.Ext{{Type: record.ExtMark, Data: []byte{0, 0, 0, 9}}}
	if err := b.Insert(&rec); err != nil {
		t.Fatalf("Insert over an existing entry: %v", err)
	}
	f, ok := findFlow(dumpNS(t, fd), rec.Key.Orig.Src)
	if !ok || f.Mark != 9 || f.Timeout > 29 {
		t.Fatalf("after EEXIST -> update: mark %d timeout %d (found %v), want 9, <= 29", f.Mark, f.Timeout, ok)
	}
	// Twice: the second write is an update of what the backend wrote.
	rec.Version++
	rec.Expire = 100
	if err := b.Update(&rec); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if s := b.Stats(); s.InjectUpdates != 2 || s.Injected != 0 {
		t.Errorf("stats %+v, want 2 updates", s)
	}

	// The kernel's entry is ASSURED, the record is not: the kernel refuses
	// to clear ASSURED (EBUSY). Its entry has seen more than the record, so
	// it keeps its status and takes the rest of the update: never deleted
	// and created again (a packet in between would make a new entry).
	n.Run("conntrack", "-I", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.3", "--sport", "1000", "--dport", "80",
		"--state", "ESTABLISHED", "-t", "500", "-u", "SEEN_REPLY,ASSURED")
	tcp := convCases()[0].rec
	tcp.Key = record.Key{Family: record.IPv4, Proto: 6, Orig: rt("10.0.1.2:1000", "10.0.2.3:80"), Reply: rt("10.0.2.3:80", "10.0.1.2:1000")}
	tcp.Flags = uint32(ct.StatusConfirmed | ct.StatusSeenReply)
	tcp.Expire = 300
	tcp.Ext = nil
	if err := b.Insert(&tcp); err != nil {
		t.Fatalf("Insert over an ASSURED entry: %v", err)
	}
	f, ok = findFlow(dumpNS(t, fd), tcp.Key.Orig.Src)
	if !ok || !f.Status.Assured() || f.Timeout > 300 {
		t.Fatalf("after the update: status %v timeout %d (found %v), want ASSURED kept, timeout <= 300", f.Status, f.Timeout, ok)
	}
	if s := b.Stats(); s.Recreated != 0 || s.InjectUpdates != 3 {
		t.Errorf("stats %+v, want 3 updates and nothing recreated", s)
	}

	// A flow whose translated reply tuple another flow holds is refused
	// and names the tuple; the other flow is left alone.
	clash := tcp
	clash.ID.Num++
	clash.Key.Orig.Src = ap("10.0.1.3:1000")
	clash.Key.Reply = rt("10.0.2.3:80", "10.0.1.2:1000") // tcp's reply tuple
	if err := b.Insert(&clash); err == nil || !strings.Contains(err.Error(), "10.0.1.3") {
		t.Errorf("Insert of a clashing NAT reply tuple: %v", err)
	}
	if _, ok := findFlow(dumpNS(t, fd), tcp.Key.Orig.Src); !ok {
		t.Error("the clash removed the other flow")
	}

	// Delete removes it; deleting again is not an error.
	for range 2 {
		if err := b.Delete(tcp.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := findFlow(dumpNS(t, fd), tcp.Key.Orig.Src); ok {
		t.Error("deleted flow still in the kernel")
	}
}

// TestInjectError: a record that cannot be written leaves nothing behind
// and the error names the tuple.
func TestInjectError(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b, err := New(Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel refuses what the conversion never produces.
	rec := convCases()[0].rec
	f, _ := recordToFlow(&rec)
	f.ProtoInfo.TCP.State = 42
	if err := b.inj.exec(&f, true); err == nil {
		t.Error("kernel accepted TCP state 42")
	}
	// A write that fails (here: the socket is gone) is rolled back.
	if err := b.inj.c.Close(); err != nil {
		t.Fatal(err)
	}
	err = b.Insert(&rec)
	if err == nil {
		t.Fatal("Insert on a closed socket succeeded")
	}
	if want := "192.168.1.10"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the tuple (%s)", err, want)
	}
	if len(dumpNS(t, fd)) != 0 {
		t.Error("failed injection left an entry")
	}
	if s := b.Stats(); s.Tracked != 0 || s.InjectErrors != 1 {
		t.Errorf("stats %+v, want nothing tracked, 1 error", s)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

// TestCommitOrder commits a RELATED flow listed before its master: Commit
// writes masters first, so the kernel links it.
func TestCommitOrder(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})

	related := convCases()[5].rec
	master := convCases()[0].rec
	master.Ext = nil
	master.ID.Num++
	master.Key = record.Key{Family: record.IPv4, Proto: 6,
		Orig: rt("10.0.1.2:39000", "10.0.2.10:21"), Reply: rt("10.0.2.10:21", "10.0.1.2:39000")}
	res, err := b.Commit(context.Background(), []record.Record{related, master})
	if err != nil {
		t.Fatal(err)
	}
	if res.Masters != 1 || res.Related != 1 || res.Created != 2 || res.Failed != 0 {
		t.Errorf("commit %+v, want 1 master, 1 related, 2 created", res)
	}
	f, ok := findFlow(dumpNS(t, fd), related.Key.Orig.Src)
	if !ok {
		t.Fatal("RELATED flow not in the kernel")
	}
	if got := tupleToRecord(&f.TupleMaster); got != master.Key.Orig || !f.Status.Expected() {
		t.Errorf("RELATED flow: master %v status %v, want master %v and EXPECTED", got, f.Status, master.Key.Orig)
	}

	// A cancelled context commits nothing and says so.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err = b.Commit(ctx, []record.Record{master})
	if err == nil || res.Skipped != 1 {
		t.Errorf("cancelled commit: %+v, %v", res, err)
	}
}

// TestInsertParksRelated: through the per-record Table path a RELATED flow
// that arrives before its master waits for it.
func TestInsertParksRelated(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})
	related := convCases()[5].rec
	master := convCases()[0].rec
	master.Ext = nil
	master.ID.Num++
	master.Key = record.Key{Family: record.IPv4, Proto: 6,
		Orig: rt("10.0.1.2:39000", "10.0.2.10:21"), Reply: rt("10.0.2.10:21", "10.0.1.2:39000")}
	if err := b.Insert(&related); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpNS(t, fd)); n != 0 {
		t.Fatalf("%d flows before the master, want 0", n)
	}
	if err := b.Insert(&master); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpNS(t, fd)); n != 2 {
		t.Fatalf("%d flows after the master, want 2", n)
	}
	if s := b.Stats(); s.Parked != 1 || s.Injected != 2 {
		t.Errorf("stats %+v, want 1 parked, 2 injected", s)
	}
}

// TestInjectNAT covers the NAT set-ups the kernel must rebuild: IPv6
// source NAT, IPv4 source plus destination NAT, and ICMP with a remapped
// id. The NAT status bits prove the kernel will translate packets.
func TestInjectNAT(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})
	est := uint32(ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured)
	tcp := [2]record.Peer{{Level: record.TCPEstablished}, {Level: record.TCPEstablished}}
	for i, tc := range []struct {
		name       string
		key        record.Key
		peers      [2]record.Peer
		snat, dnat bool
	}{
		{"ipv6 source NAT", record.Key{Family: record.IPv6, Proto: 6,
			Orig: rt("[fd00::10]:40000", "[2001:db8::80]:443"), Reply: rt("[2001:db8::80]:443", "[2001:db8:ff::1]:50000")}, tcp, true, false},
		{"ipv4 source and destination NAT", record.Key{Family: record.IPv4, Proto: 6,
			Orig: rt("10.0.1.2:40000", "203.0.113.1:80"), Reply: rt("10.0.2.10:8080", "203.0.113.1:61000")}, tcp, true, true},
		{"icmp source NAT with another id", record.Key{Family: record.IPv4, Proto: 1,
			Orig: rt("10.0.1.2:7", "8.8.8.8:2048"), Reply: rt("8.8.8.8:9", "203.0.113.1:0")}, [2]record.Peer{{Level: 1}, {Level: 1}}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := record.Record{ID: record.ID{Creator: 7, Num: uint64(i + 1)}, Key: tc.key, Peers: tc.peers, Expire: 100, Flags: est}
			if err := b.Insert(&rec); err != nil {
				t.Fatal(err)
			}
			f, ok := findFlow(dumpNS(t, fd), tc.key.Orig.Src)
			if !ok {
				t.Fatal("not in the kernel")
			}
			if f.Status.SrcNAT() != tc.snat || f.Status.DstNAT() != tc.dnat {
				t.Errorf("status %v, want snat %v dnat %v", f.Status, tc.snat, tc.dnat)
			}
			got, err := flowToRecord(&f, rec.ID, 0, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != tc.key {
				t.Errorf("kernel key %+v, want %+v", got.Key, tc.key)
			}
		})
	}
}

// TestCommitBatch commits more records than one pipelined batch holds,
// with per-flow outcomes mixed inside the batches: one flow the kernel
// holds already (written by another backend: EEXIST, updated), one whose
// translated reply tuple belongs to a flow created earlier in the same
// sendmsg (refused, its error names it), the rest created.
func TestCommitBatch(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})
	other := newBackend(t, Config{NetNS: fd})

	n := 2*commitBatch + 44
	recs := benchRecords(n)
	existing := &recs[commitBatch+3]
	if err := other.Insert(existing); err != nil {
		t.Fatal(err)
	}
	existing.Version++
	existing.Expire = 77
	clash := &recs[10]
	clash.Key.Reply = recs[5].Key.Reply // recs[5] is created first, in the same batch
	clashSrc := clash.Key.Orig.Src.String()

	res, err := b.Commit(context.Background(), recs)
	want := CommitResult{Masters: n, Created: n - 2, Updated: 1, Failed: 1}
	res.Duration = 0
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("commit result (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), clashSrc) || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("commit error %v, want one error naming %s", err, clashSrc)
	}
	flows := dumpNS(t, fd)
	if len(flows) != n-1 {
		t.Errorf("kernel holds %d flows, want %d", len(flows), n-1)
	}
	if _, ok := findFlow(flows, clash.Key.Orig.Src); ok {
		t.Error("the refused flow is in the kernel")
	}
	if f, ok := findFlow(flows, existing.Key.Orig.Src); !ok || f.Timeout > 77 {
		t.Errorf("existing flow: found %v, timeout %d, want updated to <= 77", ok, f.Timeout)
	}
	if s := b.Stats(); s.Injected != uint64(n-2) || s.InjectUpdates != 1 || s.InjectErrors != 1 || s.Tracked != n-1 {
		t.Errorf("stats %+v, want %d injected, 1 update, 1 error, %d tracked", s, n-2, n-1)
	}

	// The same records again (the engine's takeover commit after the
	// embedder's): nothing to write but the refused one; a changed record
	// is written.
	recs[0].Expire = 10
	res, _ = b.Commit(context.Background(), recs)
	res.Duration = 0
	if diff := cmp.Diff(CommitResult{Masters: n, Updated: 1, Current: n - 2, Failed: 1}, res); diff != "" {
		t.Errorf("second commit (-want +got):\n%s", diff)
	}
	if err := b.Insert(&recs[1]); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.Unchanged != uint64(n-1) || s.InjectUpdates != 2 {
		t.Errorf("stats %+v, want %d unchanged, 2 updates", s, n-1)
	}
}

// TestCommitWhileWatching commits while the watcher resyncs over and over
// and receives the commit's events: every event is recognised as the echo
// of an injection (none reported, no flow mistaken for a local one — a
// resync that dumped the table between a batch's registration and its
// write must spare the batch), and the same records handed over again are
// current.
func TestCommitWhileWatching(t *testing.T) {
	tp := netns.New(t, "gck")
	_, fd := testNS(t, tp, "a")
	b := newBackend(t, Config{NetNS: fd})
	sink := newFakeSink(0)
	if err := b.Start(sink); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	recs := benchRecords(n)
	// Resyncs (dumps) all along the commit.
	stop, resyncs := make(chan struct{}), make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			select {
			case <-stop:
				resyncs <- nil
				return
			default:
			}
			err = b.Resync(context.Background())
		}
		resyncs <- err
	}()
	res, err := b.Commit(context.Background(), recs)
	close(stop)
	if err := <-resyncs; err != nil {
		t.Fatal(err)
	}
	if err != nil || res.Created != n {
		t.Fatalf("commit %+v: %v", res, err)
	}
	for i := range recs {
		if err := b.Insert(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Resync(context.Background()); err != nil { // after every event
		t.Fatal(err)
	}
	if s := b.Stats(); s.Upserts != 0 || s.Conflicts != 0 || s.Unchanged != n || s.Tracked != n || sink.len() != 0 {
		t.Errorf("stats %+v, sink holds %d; want nothing reported, %d unchanged, %d tracked", s, sink.len(), n, n)
	}
}

// TestInjectGuards writes peers' records into a namespace whose conntrack
// timeouts are shorter than the host's: the lifetimes are cut to this
// namespace's timeouts (read from its sysctls, not the caller's), and
// records the Filter ignores, or that name loopback addresses, never reach
// its table.
func TestInjectGuards(t *testing.T) {
	tp := netns.New(t, "gck")
	n, fd := testNS(t, tp, "a")
	n.SetSysctls(map[string]string{
		"net/netfilter/nf_conntrack_tcp_timeout_established": "1000",
		"net/netfilter/nf_conntrack_udp_timeout_stream":      "77",
	})
	b := newBackend(t, Config{NetNS: fd, Filter: Filter{
		Ignore:    []netip.Prefix{netip.MustParsePrefix("10.255.0.0/30")},
		Protocols: []uint8{record.ProtoTCP, record.ProtoUDP},
	}})

	tcp := convCases()[0].rec // ESTABLISHED
	tcp.Expire = 1<<32 - 1
	udp := convCases()[1].rec // seen reply: a stream
	udp.ID.Num++
	udp.Expire = 100000
	ignored := udp
	ignored.ID.Num++
	ignored.Key.Orig.Src, ignored.Key.Reply.Dst = ap("10.255.0.1:3780"), ap("10.255.0.1:3780")
	loop := udp
	loop.ID.Num += 2
	loop.Key.Reply.Src = ap("127.0.0.1:53") // DNAT onto this node's loopback
	icmp := convCases()[2].rec              // a protocol not accepted
	icmp.ID.Num += 3
	for _, r := range []*record.Record{&tcp, &udp, &ignored, &loop, &icmp} {
		if err := b.Insert(r); err != nil {
			t.Fatalf("Insert %v: %v", r.Key.Orig, err)
		}
	}
	flows := dumpNS(t, fd)
	if len(flows) != 2 {
		t.Errorf("%d flows in the table, want 2 (the ignored ones refused)", len(flows))
	}
	for _, c := range []struct {
		rec *record.Record
		max uint32
	}{{&tcp, 1000}, {&udp, 77}} {
		f, ok := findFlow(flows, c.rec.Key.Orig.Src)
		if !ok || f.Timeout > c.max || f.Timeout+5 < c.max {
			t.Errorf("%v: timeout %d (found %v), want about %d", c.rec.Key.Orig, f.Timeout, ok, c.max)
		}
	}
	if s := b.Stats(); s.Refused != 3 || s.Capped != 2 || s.Injected != 2 {
		t.Errorf("stats %+v, want 3 refused, 2 capped, 2 injected", s)
	}
}

package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	ct "github.com/ti-mo/conntrack"
)

// cmpOpts compares netip values by ==, and nil like empty slices.
var cmpOpts = cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}), cmpopts.EquateEmpty()}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// ctTuple builds a port-based conntrack tuple.
func ctTuple(proto uint8, src, dst string) ct.Tuple {
	s, d := ap(src), ap(dst)
	return ct.Tuple{
		IP:    ct.IPTuple{SourceAddress: s.Addr(), DestinationAddress: d.Addr()},
		Proto: ct.ProtoTuple{Protocol: proto, SourcePort: s.Port(), DestinationPort: d.Port()},
	}
}

// icmpTuple builds an ICMP echo tuple.
func icmpTuple(src, dst string, typ, code uint8, id uint16) ct.Tuple {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	p := ct.ProtoTuple{Protocol: 1, ICMPv4: true, ICMPID: id, ICMPType: typ, ICMPCode: code}
	if s.Is6() {
		p.Protocol, p.ICMPv4, p.ICMPv6 = 58, false, true
	}
	return ct.Tuple{IP: ct.IPTuple{SourceAddress: s, DestinationAddress: d}, Proto: p}
}

func rt(src, dst string) record.Tuple { return record.Tuple{Src: ap(src), Dst: ap(dst)} }

var (
	testID  = record.ID{Creator: 7, Num: 1 << 40}
	testNow = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	labels  = []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05}
)

// seen is how a dump reports per-direction TCP flags: the flags byte in the
// high byte, mask 0.
func seen(flags uint8) uint16 { return uint16(flags) << 8 }

type convCase struct {
	name string
	flow ct.Flow
	rec  record.Record
}

func convCases() []convCase {
	est := ct.StatusConfirmed | ct.StatusSeenReply | ct.StatusAssured
	return []convCase{
		{
			name: "tcp established with source NAT, mark, labels, zone, counters",
			flow: ct.Flow{
				TupleOrig:  ctTuple(6, "192.168.1.10:40000", "93.184.216.34:443"),
				TupleReply: ctTuple(6, "93.184.216.34:443", "203.0.113.1:61000"),
				Status:     est | ct.StatusSrcNAT | ct.StatusSrcNATDone | ct.StatusDstNATDone,
				Timeout:    431999,
				Zone:       3,
				Mark:       0x42,
				Labels:     labels,
				ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
					State: tcpEstablished, OriginalWindowScale: 7, ReplyWindowScale: 9,
					OriginalFlags: seen(tcpFlagWindowScale | tcpFlagSACKPerm), ReplyFlags: seen(tcpFlagWindowScale | tcpFlagSACKPerm),
				}},
				CountersOrig:  ct.Counter{Packets: 10, Bytes: 1000},
				CountersReply: ct.Counter{Direction: true, Packets: 20, Bytes: 30000},
			},
			rec: record.Record{
				ID: testID, Version: 3,
				Key: record.Key{
					Family: record.IPv4, Proto: 6, Zone: 3,
					Orig:  rt("192.168.1.10:40000", "93.184.216.34:443"),
					Reply: rt("93.184.216.34:443", "203.0.113.1:61000"),
				},
				Peers: [2]record.Peer{
					{Level: record.TCPEstablished, WScale: 7, Scaled: true},
					{Level: record.TCPEstablished, WScale: 9, Scaled: true},
				},
				Expire: 431999, Timeout: tcpEstablished,
				Flags:   uint32(est | ct.StatusSrcNAT | ct.StatusSrcNATDone | ct.StatusDstNATDone),
				Packets: [2]uint64{10, 20}, Bytes: [2]uint64{1000, 30000},
				Ext: []record.Ext{
					{Type: record.ExtMark, Data: []byte{0, 0, 0, 0x42}},
					{Type: record.ExtLabels, Data: labels},
				},
			},
		},
		{
			name: "udp seen reply, not assured",
			flow: ct.Flow{
				TupleOrig:  ctTuple(17, "10.0.1.2:5353", "10.0.2.3:53"),
				TupleReply: ctTuple(17, "10.0.2.3:53", "10.0.1.2:5353"),
				Status:     ct.StatusConfirmed | ct.StatusSeenReply,
				Timeout:    29,
			},
			rec: record.Record{
				ID: testID, Version: 3,
				Key: record.Key{Family: record.IPv4, Proto: 17,
					Orig: rt("10.0.1.2:5353", "10.0.2.3:53"), Reply: rt("10.0.2.3:53", "10.0.1.2:5353")},
				Peers:  [2]record.Peer{{Level: record.Single}, {Level: record.Single}},
				Expire: 29, Flags: uint32(ct.StatusConfirmed | ct.StatusSeenReply),
			},
		},
		{
			name: "icmp echo: id in the source port, type<<8|code in the destination port",
			flow: ct.Flow{
				TupleOrig:  icmpTuple("10.0.1.2", "10.0.2.3", 8, 0, 0x1234),
				TupleReply: icmpTuple("10.0.2.3", "10.0.1.2", 0, 0, 0x1234),
				Status:     ct.StatusConfirmed,
				Timeout:    30,
			},
			rec: record.Record{
				ID: testID, Version: 3,
				Key: record.Key{Family: record.IPv4, Proto: 1,
					Orig: rt("10.0.1.2:4660", "10.0.2.3:2048"), Reply: rt("10.0.2.3:4660", "10.0.1.2:0")},
				Peers:  [2]record.Peer{{Level: record.Single}, {Level: record.NoTraffic}},
				Expire: 30, Flags: uint32(ct.StatusConfirmed),
			},
		},
		{
			name: "ipv6 tcp syn sent",
			flow: ct.Flow{
				TupleOrig:  ctTuple(6, "[2001:db8::1]:50000", "[2001:db8:1::2]:22"),
				TupleReply: ctTuple(6, "[2001:db8:1::2]:22", "[2001:db8::1]:50000"),
				Status:     ct.StatusConfirmed,
				Timeout:    119,
				ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
					State: tcpSynSent, OriginalWindowScale: 7, OriginalFlags: seen(tcpFlagWindowScale | tcpFlagSACKPerm),
				}},
			},
			rec: record.Record{
				ID: testID, Version: 3,
				Key: record.Key{Family: record.IPv6, Proto: 6,
					Orig:  rt("[2001:db8::1]:50000", "[2001:db8:1::2]:22"),
					Reply: rt("[2001:db8:1::2]:22", "[2001:db8::1]:50000")},
				Peers:  [2]record.Peer{{Level: record.TCPSynSent, WScale: 7}, {Level: record.TCPNone}},
				Expire: 119, Timeout: tcpSynSent, Flags: uint32(ct.StatusConfirmed),
			},
		},
		{
			name: "tcp close wait, reply side closed first, destination NAT",
			flow: ct.Flow{
				TupleOrig:  ctTuple(6, "198.51.100.7:33000", "203.0.113.1:80"),
				TupleReply: ctTuple(6, "10.0.2.10:8080", "198.51.100.7:33000"),
				Status:     est | ct.StatusDstNAT | ct.StatusDstNATDone | ct.StatusSrcNATDone,
				Timeout:    59,
				ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
					State: tcpCloseWait, ReplyFlags: seen(tcpFlagCloseInit),
				}},
			},
			rec: record.Record{
				ID: testID, Version: 3,
				Key: record.Key{Family: record.IPv4, Proto: 6,
					Orig: rt("198.51.100.7:33000", "203.0.113.1:80"), Reply: rt("10.0.2.10:8080", "198.51.100.7:33000")},
				Peers:  [2]record.Peer{{Level: record.TCPEstablished}, {Level: record.TCPClosing}},
				Expire: 59, Timeout: tcpCloseWait,
				Flags: uint32(est | ct.StatusDstNAT | ct.StatusDstNATDone | ct.StatusSrcNATDone),
			},
		},
		{
			name: "related ftp data flow with master tuple and helper",
			flow: ct.Flow{
				TupleOrig:   ctTuple(6, "10.0.2.10:20", "10.0.1.2:40001"),
				TupleReply:  ctTuple(6, "10.0.1.2:40001", "10.0.2.10:20"),
				TupleMaster: ctTuple(6, "10.0.1.2:39000", "10.0.2.10:21"),
				Helper:      ct.Helper{Name: "ftp"},
				Status:      est | ct.StatusExpected,
				Timeout:     300,
				ProtoInfo:   ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: tcpTimeWait}},
			},
			rec: record.Record{
				ID: testID, Version: 3,
				Key: record.Key{Family: record.IPv4, Proto: 6,
					Orig: rt("10.0.2.10:20", "10.0.1.2:40001"), Reply: rt("10.0.1.2:40001", "10.0.2.10:20")},
				Peers:  [2]record.Peer{{Level: record.TCPTimeWait}, {Level: record.TCPTimeWait}},
				Expire: 300, Timeout: tcpTimeWait, Flags: uint32(est | ct.StatusExpected),
				Ext: []record.Ext{
					{Type: record.ExtHelper, Data: []byte("ftp")},
					{Type: ExtMaster, Data: append([]byte{4, 6, 10, 0, 1, 2, 10, 0, 2, 10}, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 39000), 21)...)},
				},
			},
		},
	}
}

func TestFlowToRecord(t *testing.T) {
	for _, tc := range convCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := flowToRecord(&tc.flow, testID, 3, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.rec, got, cmpOpts); diff != "" {
				t.Errorf("flowToRecord (-want +got):\n%s", diff)
			}
		})
	}
}

// carried keeps the fields of a flow that replication carries, in the form
// the round trip produces: TCP flags reduced to WINDOW_SCALE and CLOSE_INIT.
func carried(f ct.Flow) ct.Flow {
	out := ct.Flow{
		TupleOrig: f.TupleOrig, TupleReply: f.TupleReply, TupleMaster: f.TupleMaster,
		Status: f.Status, Timeout: f.Timeout, Zone: f.Zone, Mark: f.Mark, Labels: f.Labels,
		Helper:        ct.Helper{Name: f.Helper.Name},
		CountersOrig:  ct.Counter{Packets: f.CountersOrig.Packets, Bytes: f.CountersOrig.Bytes},
		CountersReply: ct.Counter{Direction: true, Packets: f.CountersReply.Packets, Bytes: f.CountersReply.Bytes},
	}
	if tcp := f.ProtoInfo.TCP; tcp != nil {
		c := *tcp
		keep := uint16(tcpFlagWindowScale|tcpFlagCloseInit) << 8
		c.OriginalFlags, c.ReplyFlags = c.OriginalFlags&keep, c.ReplyFlags&keep
		if c.OriginalFlags&c.ReplyFlags&seen(tcpFlagWindowScale) == 0 {
			c.OriginalFlags &^= seen(tcpFlagWindowScale)
			c.ReplyFlags &^= seen(tcpFlagWindowScale)
		}
		out.ProtoInfo.TCP = &c
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range convCases() {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := flowToRecord(&tc.flow, testID, 1, testNow)
			if err != nil {
				t.Fatal(err)
			}
			back, err := recordToFlow(&rec)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(carried(tc.flow), carried(back), cmpOpts); diff != "" {
				t.Errorf("flow -> record -> flow (-want +got):\n%s", diff)
			}
			again, err := flowToRecord(&back, testID, 1, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rec, again, cmpOpts); diff != "" {
				t.Errorf("record -> flow -> record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAge(t *testing.T) {
	f := convCases()[1].flow
	f.Timestamp.Start = testNow.Add(-90 * time.Second)
	rec, err := flowToRecord(&f, testID, 1, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Age != 90 {
		t.Errorf("Age = %d, want 90", rec.Age)
	}
}

func TestTCPStateLevels(t *testing.T) {
	// Every conntrack state survives state -> levels -> state, including
	// the states that share levels (the hint tells them apart).
	for state := tcpNone; state <= tcpSynSent2; state++ {
		for _, closerReply := range []bool{false, true} {
			lv := tcpLevels(state, closerReply)
			got, gotCloser := tcpState(lv, state)
			if got != state {
				t.Errorf("state %d closerReply %v: levels %v -> state %d", state, closerReply, lv, got)
			}
			closing := state == tcpFinWait || state == tcpCloseWait || state == tcpLastAck
			if closing && gotCloser != closerReply {
				t.Errorf("state %d: closer reply %v -> %v", state, closerReply, gotCloser)
			}
		}
	}
	// Pairs only a merge produces map to the most advanced state they imply.
	for _, tc := range []struct {
		levels [2]record.Level
		want   uint8
		closer bool
	}{
		{[2]record.Level{record.TCPEstablished, record.TCPSynSent}, tcpEstablished, false},
		{[2]record.Level{record.TCPNone, record.TCPSynSent}, tcpSynSent, false},
		{[2]record.Level{record.TCPTimeWait, record.TCPClosing}, tcpTimeWait, false},
		{[2]record.Level{record.TCPClosing, record.TCPClosing}, tcpLastAck, false},
		{[2]record.Level{record.TCPEstablished, record.TCPFinAcked}, tcpLastAck, true},
		{[2]record.Level{record.TCPClosed, record.TCPNone}, tcpClose, false},
		{[2]record.Level{record.TCPSynSent, record.TCPSynSent}, tcpSynRecv, false},
	} {
		got, closer := tcpState(tc.levels, 0)
		if got != tc.want || closer != tc.closer {
			t.Errorf("tcpState(%v) = %d, %v; want %d, %v", tc.levels, got, closer, tc.want, tc.closer)
		}
	}
}

func TestRecordToFlowErrors(t *testing.T) {
	base := convCases()[1].rec
	for _, tc := range []struct {
		name string
		ext  []record.Ext
		mod  func(*record.Record)
	}{
		{name: "mark of 3 bytes", ext: []record.Ext{{Type: record.ExtMark, Data: []byte{1, 2, 3}}}},
		{name: "labels of 6 bytes", ext: []record.Ext{{Type: record.ExtLabels, Data: make([]byte, 6)}}},
		{name: "labels of 20 bytes", ext: []record.Ext{{Type: record.ExtLabels, Data: make([]byte, 20)}}},
		{name: "helper name of 16 bytes", ext: []record.Ext{{Type: record.ExtHelper, Data: []byte("0123456789abcdef")}}},
		{name: "master too short", ext: []record.Ext{{Type: ExtMaster, Data: []byte{4, 6, 1}}}},
		{name: "master of the other family", ext: []record.Ext{{Type: ExtMaster, Data: make38()}}},
		{name: "creator 0", mod: func(r *record.Record) { r.ID.Creator = 0 }},
		{name: "family mismatch", mod: func(r *record.Record) { r.Key.Family = record.IPv6 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base.Clone()
			r.Ext = tc.ext
			if tc.mod != nil {
				tc.mod(&r)
			}
			if f, err := recordToFlow(&r); err == nil {
				t.Errorf("recordToFlow = %+v, want an error", f)
			}
		})
	}
}

// make38 returns a valid IPv6 master payload.
func make38() []byte {
	b, err := MasterTuple{Family: record.IPv6, Proto: 6, Orig: rt("[2001:db8::1]:1", "[2001:db8::2]:21")}.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func TestInjectStatus(t *testing.T) {
	// The portable constants are the kernel's.
	for _, c := range []struct{ ours, theirs uint32 }{
		{statusExpected, uint32(ct.StatusExpected)}, {statusSeenReply, uint32(ct.StatusSeenReply)},
		{statusAssured, uint32(ct.StatusAssured)}, {statusConfirmed, uint32(ct.StatusConfirmed)},
		{statusFixedTimeout, uint32(ct.StatusFixedTimeout)}, {statusOffload, uint32(ct.StatusOffload)},
	} {
		if c.ours != c.theirs {
			t.Errorf("status constant %#x, ti-mo/conntrack says %#x", c.ours, c.theirs)
		}
	}
	for _, tc := range []struct {
		name string
		in   ct.Status
		want ct.Status
	}{
		{"nothing: confirmed anyway", 0, ct.StatusConfirmed},
		{"established", ct.StatusSeenReply | ct.StatusAssured | ct.StatusConfirmed, ct.StatusSeenReply | ct.StatusAssured | ct.StatusConfirmed},
		{"expected stripped", ct.StatusExpected | ct.StatusSeenReply, ct.StatusSeenReply | ct.StatusConfirmed},
		{"offload and hw offload stripped", ct.StatusAssured | ct.StatusOffload | ct.Status(statusHWOffload), ct.StatusAssured | ct.StatusConfirmed},
		{"nat bits stripped (CTA_NAT sets them up)", ct.StatusSrcNAT | ct.StatusDstNAT | ct.StatusNATDoneMask | ct.StatusSeqAdjust, ct.StatusConfirmed},
		{"dying, template, untracked, helper stripped", ct.StatusDying | ct.StatusTemplate | ct.StatusUntracked | ct.StatusHelper, ct.StatusConfirmed},
		{"fixed timeout kept", ct.StatusFixedTimeout, ct.StatusFixedTimeout | ct.StatusConfirmed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ct.Status(InjectStatus(uint32(tc.in))); got != tc.want {
				t.Errorf("InjectStatus(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestInjectFlags(t *testing.T) {
	const managed = uint16(tcpFlagsManaged)
	for _, tc := range []struct {
		name       string
		tcp        ct.ProtoInfoTCP
		orig, repl uint16
	}{
		{"established: be-liberal and sack on both", ct.ProtoInfoTCP{State: tcpEstablished},
			seen(tcpFlagBeLiberal|tcpFlagSACKPerm) | managed, seen(tcpFlagBeLiberal|tcpFlagSACKPerm) | managed},
		{"window scale kept", ct.ProtoInfoTCP{State: tcpEstablished, OriginalFlags: seen(tcpFlagWindowScale | 0x10), ReplyFlags: seen(tcpFlagWindowScale)},
			seen(tcpFlagBeLiberal|tcpFlagSACKPerm|tcpFlagWindowScale) | managed, seen(tcpFlagBeLiberal|tcpFlagSACKPerm|tcpFlagWindowScale) | managed},
		{"fin wait: close-init on the closer only", ct.ProtoInfoTCP{State: tcpFinWait, ReplyFlags: seen(tcpFlagCloseInit)},
			seen(tcpFlagBeLiberal|tcpFlagSACKPerm) | managed, seen(tcpFlagBeLiberal|tcpFlagSACKPerm|tcpFlagCloseInit) | managed},
		{"time wait: close-init on both", ct.ProtoInfoTCP{State: tcpTimeWait},
			seen(tcpFlagsManaged&^tcpFlagWindowScale) | managed, seen(tcpFlagsManaged&^tcpFlagWindowScale) | managed},
		{"close: close-init on both", ct.ProtoInfoTCP{State: tcpClose},
			seen(tcpFlagsManaged&^tcpFlagWindowScale) | managed, seen(tcpFlagsManaged&^tcpFlagWindowScale) | managed},
		{"syn sent2 is not a closing state", ct.ProtoInfoTCP{State: tcpSynSent2},
			seen(tcpFlagBeLiberal|tcpFlagSACKPerm) | managed, seen(tcpFlagBeLiberal|tcpFlagSACKPerm) | managed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, r := injectFlags(&tc.tcp)
			if o != tc.orig || r != tc.repl {
				t.Errorf("injectFlags = %#04x, %#04x; want %#04x, %#04x", o, r, tc.orig, tc.repl)
			}
		})
	}
}

func TestNATOf(t *testing.T) {
	for _, tc := range []struct {
		name       string
		orig, repl ct.Tuple
		snat, dnat bool
	}{
		{"none", ctTuple(6, "10.0.0.1:1000", "10.0.0.2:80"), ctTuple(6, "10.0.0.2:80", "10.0.0.1:1000"), false, false},
		{"source address", ctTuple(6, "10.0.0.1:1000", "8.8.8.8:53"), ctTuple(6, "8.8.8.8:53", "203.0.113.1:1000"), true, false},
		{"source port only", ctTuple(17, "10.0.0.1:1000", "8.8.8.8:53"), ctTuple(17, "8.8.8.8:53", "10.0.0.1:2000"), true, false},
		{"destination", ctTuple(6, "8.8.8.8:1000", "203.0.113.1:80"), ctTuple(6, "10.0.0.5:8080", "8.8.8.8:1000"), false, true},
		{"both", ctTuple(6, "10.0.0.1:1000", "203.0.113.9:80"), ctTuple(6, "10.9.9.9:80", "203.0.113.1:3000"), true, true},
		{"icmp none: type differs by nature", icmpTuple("10.0.0.1", "10.0.0.2", 8, 0, 7), icmpTuple("10.0.0.2", "10.0.0.1", 0, 0, 7), false, false},
		{"icmp source NAT with id remap", icmpTuple("10.0.0.1", "8.8.8.8", 8, 0, 7), icmpTuple("8.8.8.8", "203.0.113.1", 0, 0, 9), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ct.Flow{TupleOrig: tc.orig, TupleReply: tc.repl}
			snat, dnat := natOf(&f)
			if snat != tc.snat || dnat != tc.dnat {
				t.Errorf("natOf = snat %v dnat %v, want %v %v", snat, dnat, tc.snat, tc.dnat)
			}
		})
	}
}

func TestBuildMessage(t *testing.T) {
	// ti-mo/conntrack decodes what the injector encodes (it ignores the NAT
	// attributes): the tuples (the untranslated reply tuple when NAT is
	// set up), status, timeout, mark, zone, labels and TCP info.
	for _, tc := range convCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := recordToFlow(&tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			for _, create := range []bool{true, false} {
				m, err := buildMessage(&f, create)
				if err != nil {
					t.Fatalf("create %v: %v", create, err)
				}
				var ev ct.Event
				if err := ev.Unmarshal(m); err != nil {
					t.Fatalf("create %v: decode: %v", create, err)
				}
				want := ct.Flow{
					TupleOrig: f.TupleOrig, Zone: f.Zone, Mark: f.Mark, Labels: f.Labels,
					Status:  ct.Status(InjectStatus(uint32(f.Status))),
					Timeout: f.Timeout,
				}
				if create {
					want.TupleReply = f.TupleReply
					if snat, dnat := natOf(&f); snat || dnat {
						want.TupleReply = untranslated(&f)
					}
					want.TupleMaster = f.TupleMaster
				}
				if tcp := f.ProtoInfo.TCP; tcp != nil {
					c := *tcp
					c.OriginalFlags, c.ReplyFlags = injectFlags(tcp)
					want.ProtoInfo.TCP = &c
				}
				got := *ev.Flow
				got.LabelsMask = nil
				if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
					t.Errorf("create %v: decoded (-want +got):\n%s", create, diff)
				}
			}
		})
	}
}

func FuzzRecordToFlow(f *testing.F) {
	for _, tc := range convCases() {
		for _, e := range tc.rec.Ext {
			f.Add(uint8(e.Type), e.Data, tc.rec.Key.Proto, uint8(tc.rec.Peers[0].Level), uint8(tc.rec.Peers[1].Level), tc.rec.Timeout, tc.rec.Flags)
		}
	}
	f.Add(uint8(ExtMaster), make38(), uint8(6), uint8(9), uint8(0), uint8(200), uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, typ uint8, data []byte, proto, l0, l1, class uint8, flags uint32) {
		r := convCases()[0].rec.Clone()
		r.Key.Proto = proto
		r.Peers[0].Level, r.Peers[1].Level = record.Level(l0), record.Level(l1)
		r.Timeout, r.Flags = class, flags
		r.Ext = append(r.Ext, record.Ext{Type: record.ExtType(typ), Data: data})
		fl, err := recordToFlow(&r)
		if err != nil {
			return
		}
		// A record the conversion accepts always encodes.
		for _, create := range []bool{true, false} {
			if _, err := buildMessage(&fl, create); err != nil {
				t.Fatalf("buildMessage(create %v): %v", create, err)
			}
		}
		if _, err := canonical(&fl, r.ID, r.Version); err != nil && proto == record.ProtoTCP {
			t.Fatalf("canonical: %v", err)
		}
	})
}

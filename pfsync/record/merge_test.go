package record

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpOpts = cmp.Options{
	cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{}),
	cmpopts.EquateEmpty(),
}

func tcpRecord() Record {
	orig := Tuple{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:443")}
	return Record{
		ID:      ID{Creator: 1, Num: 42},
		Version: 3,
		Key:     Key{Family: IPv4, Proto: ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]Peer{
			{Level: TCPEstablished, SeqLo: 1000, SeqHi: 70000, MaxWin: 65535, WScale: 7, Scaled: true},
			{Level: TCPEstablished, SeqLo: 5000, SeqHi: 90000, MaxWin: 29200, WScale: 7, Scaled: true},
		},
		Expire: 86400, Timeout: 2, Age: 10, Flags: 0x18e,
		Packets: [2]uint64{10, 8}, Bytes: [2]uint64{1000, 8000},
	}
}

func TestSeqAfter(t *testing.T) {
	tests := []struct {
		a, b uint32
		want bool
	}{
		{2, 1, true},
		{1, 2, false},
		{5, 5, false},
		{0, 0xffffffff, true}, // wrapped: 0 follows 2^32-1
		{0xffffffff, 0, false},
		{0x7fffffff, 0, true},
		{0x80000000, 0, true}, // exactly 2^31 apart: numerically larger wins
		{0, 0x80000000, false},
		{100, 0x80000100, true}, // 0x80000100 + 2^31 - 0x9c wraps to 100
		{0x80000100, 100, false},
	}
	for _, tt := range tests {
		if got := SeqAfter(tt.a, tt.b); got != tt.want {
			t.Errorf("SeqAfter(%#x, %#x) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMerge(t *testing.T) {
	base := tcpRecord()
	with := func(f func(r *Record)) Record {
		r := base
		f(&r)
		return r
	}
	tests := []struct {
		name          string
		local, remote Record
		want          Record
		out           Outcome
	}{
		{
			name: "identical", local: base, remote: base, want: base, out: 0,
		},
		{
			name:   "remote ahead in both directions",
			local:  base,
			remote: with(func(r *Record) { r.Peers[Orig].SeqLo, r.Peers[Reply].SeqLo = 2000, 6000 }),
			want:   with(func(r *Record) { r.Peers[Orig].SeqLo, r.Peers[Reply].SeqLo = 2000, 6000 }),
			out:    Changed,
		},
		{
			// opnsense/src #327: the direction judged stale must never be
			// overwritten even when the other one is taken.
			name:   "orig taken, stale reply kept",
			local:  with(func(r *Record) { r.Peers[Reply].SeqLo, r.Peers[Reply].SeqHi = 9000, 99000 }),
			remote: with(func(r *Record) { r.Peers[Orig].SeqLo, r.Peers[Orig].SeqHi = 3000, 80000 }),
			want: with(func(r *Record) {
				r.Peers[Orig].SeqLo, r.Peers[Orig].SeqHi = 3000, 80000
				r.Peers[Reply].SeqLo, r.Peers[Reply].SeqHi = 9000, 99000
			}),
			out: Changed | StaleReply,
		},
		{
			name:   "higher level beats sequence numbers",
			local:  with(func(r *Record) { r.Peers[Orig].SeqLo = 9000 }),
			remote: with(func(r *Record) { r.Peers[Orig].Level = TCPClosing }),
			want:   with(func(r *Record) { r.Peers[Orig].Level = TCPClosing }),
			out:    Changed,
		},
		{
			name:   "local level ahead",
			local:  with(func(r *Record) { r.Peers[Orig].Level = TCPTimeWait }),
			remote: with(func(r *Record) { r.Peers[Orig].SeqLo = 9999 }),
			want:   with(func(r *Record) { r.Peers[Orig].Level = TCPTimeWait }),
			out:    StaleOrig,
		},
		{
			name:   "sequence wrap counts as ahead",
			local:  with(func(r *Record) { r.Peers[Orig].SeqLo = 0xfffffff0 }),
			remote: with(func(r *Record) { r.Peers[Orig].SeqLo = 0x10 }),
			want:   with(func(r *Record) { r.Peers[Orig].SeqLo = 0x10 }),
			out:    Changed,
		},
		{
			name:   "equal level and seqlo: fieldwise max",
			local:  with(func(r *Record) { r.Peers[Orig].SeqHi = 80000 }),
			remote: with(func(r *Record) { r.Peers[Orig].MaxWin = 1 }),
			want:   with(func(r *Record) { r.Peers[Orig].SeqHi = 80000 }),
			out:    StaleOrig,
		},
		{
			name:  "newer version brings creator fields and lifetime",
			local: base,
			remote: with(func(r *Record) {
				r.Version, r.Flags, r.Expire, r.Timeout, r.Ext = 4, 0x19e, 100, 3, []Ext{{ExtMark, []byte{0, 0, 0, 1}}}
			}),
			want: with(func(r *Record) {
				r.Version, r.Flags, r.Expire, r.Timeout, r.Ext = 4, 0x19e, 100, 3, []Ext{{ExtMark, []byte{0, 0, 0, 1}}}
			}),
			out: Changed,
		},
		{
			name:   "older version: peers still merged, creator fields kept",
			local:  base,
			remote: with(func(r *Record) { r.Version, r.Flags, r.Expire, r.Peers[Reply].SeqLo = 2, 0, 5, 7000 }),
			want:   with(func(r *Record) { r.Peers[Reply].SeqLo = 7000 }),
			out:    Changed | Older,
		},
		{
			name:   "same version: longer lifetime wins",
			local:  base,
			remote: with(func(r *Record) { r.Expire = 90000 }),
			want:   with(func(r *Record) { r.Expire = 90000 }),
			out:    Changed,
		},
		{
			name:   "counters and age never go back",
			local:  with(func(r *Record) { r.Packets[Orig], r.Age = 50, 99 }),
			remote: with(func(r *Record) { r.Bytes[Reply] = 9000 }),
			want:   with(func(r *Record) { r.Packets[Orig], r.Age, r.Bytes[Reply] = 50, 99, 9000 }),
			out:    Changed,
		},
		{
			name:   "udp: levels only",
			local:  with(func(r *Record) { r.Key.Proto = ProtoUDP; r.Peers = [2]Peer{{Level: Multiple}, {Level: Single}} }),
			remote: with(func(r *Record) { r.Key.Proto = ProtoUDP; r.Peers = [2]Peer{{Level: Single}, {Level: Multiple}} }),
			want:   with(func(r *Record) { r.Key.Proto = ProtoUDP; r.Peers = [2]Peer{{Level: Multiple}, {Level: Multiple}} }),
			out:    Changed | StaleOrig,
		},
		{
			name:   "different ids",
			local:  base,
			remote: with(func(r *Record) { r.ID.Num++; r.Version = 99 }),
			want:   base,
			out:    Mismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, out := Merge(&tt.local, &tt.remote)
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Merge result (-want +got):\n%s", diff)
			}
			if out != tt.out {
				t.Errorf("Merge outcome = %v, want %v", out, tt.out)
			}
		})
	}
}

func TestMergeDelta(t *testing.T) {
	base := tcpRecord()
	tests := []struct {
		name string
		d    Delta
		want func(r *Record)
		out  Outcome
	}{
		{
			name: "orig peer and lifetime",
			d: Delta{ID: base.ID, Version: 4, Fields: FieldOrig | FieldLifetime,
				Peers: [2]Peer{{Level: TCPEstablished, SeqLo: 1500, SeqHi: 71000, MaxWin: 65535, WScale: 7, Scaled: true}}, Expire: 7000, Timeout: 2},
			want: func(r *Record) {
				r.Version = 4
				r.Peers[Orig] = Peer{Level: TCPEstablished, SeqLo: 1500, SeqHi: 71000, MaxWin: 65535, WScale: 7, Scaled: true}
				r.Expire = 7000
			},
			out: Changed,
		},
		{
			name: "stale reply is reported, absent orig is not",
			d:    Delta{ID: base.ID, Version: 3, Fields: FieldReply, Peers: [2]Peer{{}, {Level: TCPSynSent, SeqLo: 1}}},
			want: func(r *Record) {},
			out:  StaleReply,
		},
		{
			name: "flags only with a newer version",
			d:    Delta{ID: base.ID, Version: 3, Fields: FieldFlags | FieldCounters, Flags: 1, Packets: [2]uint64{11, 1}},
			want: func(r *Record) { r.Packets[Orig] = 11 },
			out:  Changed,
		},
		{
			name: "older delta",
			d:    Delta{ID: base.ID, Version: 1, Fields: FieldLifetime | FieldFlags, Expire: 999999, Flags: 1},
			want: func(r *Record) {},
			out:  Older,
		},
		{
			name: "mismatch",
			d:    Delta{ID: ID{Creator: 2, Num: 42}, Version: 9, Fields: FieldsAll},
			want: func(r *Record) {},
			out:  Mismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := base
			tt.want(&want)
			got, out := MergeDelta(&base, &tt.d)
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("MergeDelta result (-want +got):\n%s", diff)
			}
			if out != tt.out {
				t.Errorf("MergeDelta outcome = %v, want %v", out, tt.out)
			}
		})
	}
}

// randCopy returns a random copy of one record as some node may hold it.
// Creator-owned fields are a function of the version, as they are when only
// the creator changes them and bumps the version each time. Sequence numbers
// stay within a window of 2^20 around base (which may wrap), where serial
// arithmetic is a total order.
func randCopy(rng *rand.Rand, base uint32, proto uint8) Record {
	r := tcpRecord()
	r.Key.Proto = proto
	r.Version = rng.Uint64N(4)
	r.Flags = uint32(r.Version) * 0x11
	if r.Version%2 == 1 {
		r.Ext = []Ext{{Type: ExtMark, Data: []byte{0, 0, 0, byte(r.Version)}}}
	}
	for d := range r.Peers {
		p := &r.Peers[d]
		p.Level = Level(rng.IntN(3))
		if proto == ProtoTCP {
			// Few distinct values, so that ties (equal level and seqlo)
			// are common, spread over up to 2^20.
			p.SeqLo = base + rng.Uint32N(3)<<uint(rng.IntN(20))
			p.SeqHi = base + rng.Uint32N(3)<<uint(rng.IntN(20))
			p.MaxWin = uint16(rng.IntN(4))
			p.WScale = uint8(rng.IntN(MaxWScale + 1))
			p.Scaled = rng.IntN(2) == 0
		}
	}
	r.Expire = rng.Uint32N(5)
	r.Timeout = uint8(rng.IntN(3))
	r.Age = rng.Uint32N(100)
	r.Packets = [2]uint64{rng.Uint64N(10), rng.Uint64N(10)}
	r.Bytes = [2]uint64{rng.Uint64N(1000), rng.Uint64N(1000)}
	return r
}

func merge(a, b Record) Record {
	r, _ := Merge(&a, &b)
	return r
}

// TestMergeProperties checks that Merge is a join: idempotent, commutative,
// associative, so the final state does not depend on delivery order, and
// that no direction ever goes backwards.
func TestMergeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		base := rng.Uint32()
		if i%4 == 0 {
			base = 0xffffffff - rng.Uint32N(1<<19) // windows that wrap
		}
		proto := ProtoTCP
		if i%3 == 0 {
			proto = ProtoUDP
		}
		a, b, c := randCopy(rng, base, proto), randCopy(rng, base, proto), randCopy(rng, base, proto)

		if got, out := Merge(&a, &a); !got.Equal(&a) || out != 0 {
			t.Fatalf("case %d: not idempotent: outcome %v, diff:\n%s", i, out, cmp.Diff(a, got, cmpOpts))
		}
		if ab, ba := merge(a, b), merge(b, a); !ab.Equal(&ba) {
			t.Fatalf("case %d: not commutative (-ab +ba):\n%s", i, cmp.Diff(ab, ba, cmpOpts))
		}
		if l, r := merge(merge(a, b), c), merge(a, merge(b, c)); !l.Equal(&r) {
			t.Fatalf("case %d: not associative (-(ab)c +a(bc)):\n%s", i, cmp.Diff(l, r, cmpOpts))
		}
		got, out := Merge(&a, &b)
		tcp := proto == ProtoTCP
		for d := range got.Peers {
			if behind(got.Peers[d], a.Peers[d], tcp) {
				t.Fatalf("case %d: %v direction went backwards: %+v -> %+v", i, Direction(d), a.Peers[d], got.Peers[d])
			}
			stale := out.Has(StaleOrig << d)
			if stale != (got.Peers[d] != b.Peers[d]) {
				t.Fatalf("case %d: %v stale=%v but result %+v, remote %+v", i, Direction(d), stale, got.Peers[d], b.Peers[d])
			}
		}
		if out.Has(Changed) == got.Equal(&a) {
			t.Fatalf("case %d: Changed=%v but result equal to local=%v", i, out.Has(Changed), got.Equal(&a))
		}
		// Echoing our copy back converges the sender in one step.
		back, _ := Merge(&b, &got)
		if !back.Equal(&got) {
			t.Fatalf("case %d: echo does not converge (-want +got):\n%s", i, cmp.Diff(got, back, cmpOpts))
		}
	}
}

// behind reports whether p is ahead of q is false and q is strictly ahead:
// q's (Level, SeqLo) after p's.
func behind(p, q Peer, tcp bool) bool {
	if p.Level != q.Level {
		return p.Level < q.Level
	}
	return tcp && SeqAfter(q.SeqLo, p.SeqLo)
}

// TestMergeDeliveryOrder delivers the same updates in every order to a
// replica and checks that the final state is the same.
func TestMergeDeliveryOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		base := rng.Uint32()
		start := randCopy(rng, base, ProtoTCP)
		updates := make([]Record, 5)
		for j := range updates {
			updates[j] = randCopy(rng, base, ProtoTCP)
		}
		var first Record
		for p := range 20 {
			order := rng.Perm(len(updates))
			got := start
			for _, j := range order {
				got = merge(got, updates[j])
			}
			if p == 0 {
				first = got
				continue
			}
			if !got.Equal(&first) {
				t.Fatalf("case %d: order %v gives a different state (-first +got):\n%s", i, order, cmp.Diff(first, got, cmpOpts))
			}
		}
	}
}

// TestMergeDeltaAgreesWithMerge checks that a compressed update of every
// dynamic field has the same effect on peers, lifetime and counters as the
// full record it came from.
func TestMergeDeltaAgreesWithMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		base := rng.Uint32()
		a, b := randCopy(rng, base, ProtoTCP), randCopy(rng, base, ProtoTCP)
		d := b.Delta(FieldOrig | FieldReply | FieldLifetime | FieldCounters)
		full, fo := Merge(&a, &b)
		part, po := MergeDelta(&a, &d)
		if full.Peers != part.Peers || full.Expire != part.Expire || full.Timeout != part.Timeout ||
			full.Packets != part.Packets || full.Bytes != part.Bytes || full.Version != part.Version {
			t.Fatalf("case %d: (-Merge +MergeDelta):\n%s", i, cmp.Diff(full, part, cmpOpts))
		}
		mask := StaleOrig | StaleReply | Older
		if fo&mask != po&mask {
			t.Fatalf("case %d: outcomes differ: Merge %v, MergeDelta %v", i, fo, po)
		}
	}
}

func TestRecordDelta(t *testing.T) {
	r := tcpRecord()
	got := r.Delta(FieldReply | FieldFlags | 0x80)
	want := Delta{ID: r.ID, Version: r.Version, Fields: FieldReply | FieldFlags, Peers: [2]Peer{{}, r.Peers[Reply]}, Flags: r.Flags}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Delta (-want +got):\n%s", diff)
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{0, "none"},
		{Changed | StaleReply, "changed|stale-reply"},
		{Mismatch | 0x80, "mismatch|0x80"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%#x).String() = %q, want %q", uint8(tt.o), got, tt.want)
		}
	}
}

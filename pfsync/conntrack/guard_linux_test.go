package conntrack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// logCounter is a slog.Handler that keeps every record it is given.
type logCounter struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// matching returns the records whose message contains s.
func (h *logCounter) matching(s string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if strings.Contains(r.Message, s) {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// fakeKernel answers ctnetlink requests in memory: every create gets
// createErr (0: success), every other request succeeds. It keeps the
// creates it was sent.
type fakeKernel struct {
	mu        sync.Mutex
	createErr unix.Errno
	creates   []netlink.Message
}

func (k *fakeKernel) conn() *netlink.Conn {
	return nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(reqs) == 0 {
			return nil, nil
		}
		out := make([]netlink.Message, 0, len(reqs))
		for _, m := range reqs {
			code := unix.Errno(0)
			if m.Header.Flags&netlink.Create != 0 {
				k.creates = append(k.creates, m)
				code = k.createErr
			}
			ack, _ := nltest.Error(int(code), []netlink.Message{m})
			out = append(out, ack...)
		}
		return out, nil
	})
}

// timeout returns the CTA_TIMEOUT of a ctnetlink NEW message.
func msgTimeout(t *testing.T, m netlink.Message) uint32 {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	for ad.Next() {
		if ad.Type() == ctaTimeout {
			return binary.BigEndian.Uint32(ad.Bytes())
		}
	}
	t.Fatal("message without CTA_TIMEOUT")
	return 0
}

// fakeBackend returns a Backend writing into k with cfg and the kernel's
// default timeouts.
func fakeBackend(t *testing.T, k *fakeKernel, cfg Config) *Backend {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	b := newBackendConn(cfg, k.conn(), defaultTimeouts())
	t.Cleanup(func() { b.Close() })
	return b
}

// udpRecord is a peer's UDP record of the flow from 10.0.1.2:port.
func udpRecord(n int) record.Record {
	o := record.Tuple{Src: netip.AddrPortFrom(netip.MustParseAddr("10.0.1.2"), uint16(1000+n)), Dst: ap("10.0.2.3:53")}
	return record.Record{
		ID: record.ID{Creator: 7, Num: uint64(n) + 1}, Version: 1,
		Key:    record.Key{Family: record.IPv4, Proto: record.ProtoUDP, Orig: o, Reply: o.Reverse()},
		Peers:  [2]record.Peer{{Level: record.Multiple}, {Level: record.Multiple}},
		Flags:  statusConfirmed | statusSeenReply | statusAssured,
		Expire: 100,
	}
}

// TestTableFull fills a fake kernel table: every create is refused with
// ENOMEM, as the kernel does at nf_conntrack_max. Every record is counted
// and its error says the table is full, but the backend logs once per
// interval, with the number of failures it did not log.
func TestTableFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &logCounter{}
		k := &fakeKernel{createErr: unix.ENOMEM}
		b := fakeBackend(t, k, Config{Logger: slog.New(h)})
		const n = 500
		for i := range n {
			rec := udpRecord(i)
			err := b.Insert(&rec)
			if !errors.Is(err, ErrTableFull) || !errors.Is(err, unix.ENOMEM) {
				t.Fatalf("Insert %d: %v, want ErrTableFull wrapping ENOMEM", i, err)
			}
		}
		// A commit's records (pipelined creates) count the same.
		recs := make([]record.Record, n)
		for i := range recs {
			recs[i] = udpRecord(n + i)
		}
		res, err := b.Commit(context.Background(), recs)
		if !errors.Is(err, ErrTableFull) || res.Failed != n {
			t.Fatalf("Commit = %+v, %v; want %d failed with ErrTableFull", res, err, n)
		}
		if s := b.Stats(); s.TableFull != 2*n || s.InjectErrors != 2*n || s.Tracked != 0 {
			t.Errorf("stats %+v, want %d table full, %d inject errors, nothing tracked", s, 2*n, 2*n)
		}
		logs := h.matching("table full")
		if len(logs) != 1 {
			t.Fatalf("%d table-full logs for %d refused records, want 1", len(logs), 2*n)
		}
		if v := attr(logs[0], "suppressed"); v.Uint64() != 0 {
			t.Errorf("first log: suppressed %v, want 0", v)
		}

		// After the interval the next failure logs again, with the count
		// of those held back.
		time.Sleep(logEvery)
		rec := udpRecord(2 * n)
		if err := b.Insert(&rec); !errors.Is(err, ErrTableFull) {
			t.Fatalf("Insert: %v", err)
		}
		logs = h.matching("table full")
		if len(logs) != 2 {
			t.Fatalf("%d table-full logs after the interval, want 2", len(logs))
		}
		if v := attr(logs[1], "suppressed"); v.Uint64() != 2*n-1 {
			t.Errorf("second log: suppressed %v, want %d", v, 2*n-1)
		}
		if v := attr(logs[1], "table_full"); v.Uint64() != 2*n+1 {
			t.Errorf("second log: table_full %v, want %d", v, 2*n+1)
		}

		// Once flows expire the same record is written.
		k.mu.Lock()
		k.createErr = 0
		k.mu.Unlock()
		if err := b.Insert(&rec); err != nil {
			t.Fatalf("Insert with room in the table: %v", err)
		}
		if s := b.Stats(); s.Injected != 1 || s.TableFull != 2*n+1 {
			t.Errorf("stats %+v, want 1 injected", s)
		}
	})
}

// TestLogLimiterKinds checks that each kind of failure has its own
// interval.
func TestLogLimiterKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &logCounter{}
		lg := slog.New(h)
		var l logLimiter
		for range 3 {
			l.log(lg, logTableFull, slog.LevelWarn, "full")
			l.log(lg, logRefused, slog.LevelWarn, "refused")
		}
		if a, b := len(h.matching("full")), len(h.matching("refused")); a != 1 || b != 1 {
			t.Errorf("%d and %d logs, want 1 of each kind", a, b)
		}
		time.Sleep(logEvery - time.Nanosecond)
		l.log(lg, logTableFull, slog.LevelWarn, "full")
		if n := len(h.matching("full")); n != 1 {
			t.Errorf("%d logs before the interval ended, want 1", n)
		}
		time.Sleep(time.Nanosecond)
		l.log(lg, logTableFull, slog.LevelWarn, "full")
		logs := h.matching("full")
		if len(logs) != 2 || attr(logs[1], "suppressed").Uint64() != 3 {
			t.Errorf("logs %v, want a second one with 3 suppressed", logs)
		}
	})
}

// TestRefuseIgnored hands the backend peers' records that its own Filter
// would never have sent: none reaches the kernel, each is counted, and the
// refusal is logged once per interval.
func TestRefuseIgnored(t *testing.T) {
	h := &logCounter{}
	k := &fakeKernel{}
	cfg := Config{Logger: slog.New(h), Filter: Filter{
		Ignore:      []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("10.255.0.0/30")},
		IgnoreZones: []uint16{9},
		Protocols:   []uint8{record.ProtoTCP, record.ProtoUDP},
		AssuredOnly: true,
	}}
	b := fakeBackend(t, k, cfg)
	with := func(f func(r *record.Record)) record.Record {
		r := udpRecord(1)
		f(&r)
		return r
	}
	master := func(src, dst string) func(r *record.Record) {
		return func(r *record.Record) {
			m := MasterTuple{Family: record.IPv4, Proto: record.ProtoTCP, Orig: rt(src, dst)}
			d, err := m.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Ext = append(r.Ext, record.Ext{Type: ExtMaster, Data: d})
		}
	}
	refused := []struct {
		name string
		rec  record.Record
	}{
		{"original source ignored", with(func(r *record.Record) {
			r.Key.Orig.Src = ap("10.255.0.1:3780")
			r.Key.Reply.Dst = r.Key.Orig.Src
		})},
		{"reply source ignored (traffic to the VIP)", with(func(r *record.Record) {
			r.Key.Orig.Dst = ap("203.0.113.1:22")
			r.Key.Reply.Src = r.Key.Orig.Dst
		})},
		{"reply source ignored behind a DNAT", with(func(r *record.Record) { r.Key.Reply.Src = ap("10.255.0.2:53") })},
		{"ignored zone", with(func(r *record.Record) { r.Key.Zone = 9 })},
		{"protocol not accepted", with(func(r *record.Record) { r.Key.Proto = protoGRE })},
		{"loopback", with(func(r *record.Record) {
			r.Key.Orig = rt("127.0.0.1:40000", "127.0.0.1:6379")
			r.Key.Reply = r.Key.Orig.Reverse()
		})},
		{"NAT onto loopback", with(func(r *record.Record) { r.Key.Reply.Src = ap("127.0.0.1:53") })},
		{"IPv6 link-local", func() record.Record {
			r := udpRecord(1)
			r.Key.Family = record.IPv6
			r.Key.Orig = rt("[fe80::1]:546", "[fe80::2]:547")
			r.Key.Reply = r.Key.Orig.Reverse()
			return r
		}()},
		{"master from an ignored address", with(master("10.255.0.1:40000", "10.0.2.3:21"))},
		{"master protocol not accepted", with(func(r *record.Record) {
			master("10.0.1.2:40000", "10.0.2.3:21")(r)
			r.Ext[0].Data[1] = protoSCTP
		})},
	}
	for _, tc := range refused {
		if err := b.Insert(&tc.rec); err != nil {
			t.Errorf("%s: Insert: %v", tc.name, err)
		}
		if err := b.Update(&tc.rec); err != nil {
			t.Errorf("%s: Update: %v", tc.name, err)
		}
	}
	res, err := b.Commit(context.Background(), []record.Record{refused[0].rec, refused[3].rec})
	if err != nil || res.Refused != 2 || res.Created != 0 {
		t.Errorf("Commit = %+v, %v; want 2 refused", res, err)
	}
	if len(k.creates) != 0 {
		t.Errorf("%d creates reached the kernel, want none", len(k.creates))
	}
	want := uint64(2*len(refused) + 2)
	if s := b.Stats(); s.Refused != want || s.Tracked != 0 || s.InjectErrors != 0 {
		t.Errorf("stats %+v, want %d refused, nothing tracked", s, want)
	}
	if n := len(h.matching("refused")); n != 1 {
		t.Errorf("%d refusal logs, want 1", n)
	}

	// What the filter selects is written, including what AssuredOnly
	// would not have sent, and a RELATED flow whose master has an ignored
	// original destination (a port forward on the VIP).
	passed := []record.Record{
		udpRecord(2),
		udpRecord(3),
		udpRecord(4),
		udpRecord(5),
	}
	passed[1].Flags = statusConfirmed
	master("198.51.100.7:40000", "203.0.113.1:21")(&passed[2])
	passed[3].Key.Reply.Dst = ap("203.0.113.1:61000") // source-NATed to the VIP
	for i := range passed {
		if err := b.Insert(&passed[i]); err != nil {
			t.Errorf("Insert %d: %v", i, err)
		}
	}
	if len(k.creates) != len(passed) {
		t.Errorf("%d creates reached the kernel, want %d", len(k.creates), len(passed))
	}
}

// TestFilterNodeOnly checks that this node never sends loopback and IPv6
// link-local flows either.
func TestFilterNodeOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		flow ct.Flow
		want bool
	}{
		{"loopback", ct.Flow{TupleOrig: ctTuple(6, "127.0.0.1:40000", "127.0.0.1:80"), TupleReply: ctTuple(6, "127.0.0.1:80", "127.0.0.1:40000")}, false},
		{"IPv6 loopback", ct.Flow{TupleOrig: ctTuple(6, "[::1]:40000", "[::1]:80"), TupleReply: ctTuple(6, "[::1]:80", "[::1]:40000")}, false},
		{"IPv6 link-local", ct.Flow{TupleOrig: ctTuple(17, "[fe80::1]:546", "[ff02::1:2]:547"), TupleReply: ctTuple(17, "[ff02::1:2]:547", "[fe80::1]:546")}, false},
		{"DNAT onto loopback", ct.Flow{TupleOrig: ctTuple(6, "198.51.100.7:40000", "203.0.113.1:80"), TupleReply: ctTuple(6, "127.0.0.1:8080", "198.51.100.7:40000")}, false},
		{"IPv4 link-local is forwarded", ct.Flow{TupleOrig: ctTuple(6, "10.0.1.2:40000", "169.254.169.254:80"), TupleReply: ctTuple(6, "169.254.169.254:80", "10.0.1.2:40000")}, true},
	} {
		if got := (&Filter{}).pass(&tc.flow); got != tc.want {
			t.Errorf("%s: pass = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTimeoutCap hands the backend peers' records with lifetimes longer
// than the kernel would give their flows: each is written with the
// kernel's timeout for its state and counted; shorter ones are written as
// they are.
func TestTimeoutCap(t *testing.T) {
	k := &fakeKernel{}
	b := fakeBackend(t, k, Config{})
	const forever = 1<<32 - 1
	tcp := func(l0, l1 record.Level, hint uint8) func(r *record.Record) {
		return func(r *record.Record) {
			r.Key.Proto = record.ProtoTCP
			r.Peers = [2]record.Peer{{Level: l0}, {Level: l1}}
			r.Timeout = hint
		}
	}
	cases := []struct {
		name   string
		set    func(r *record.Record)
		expire uint32
		want   uint32
	}{
		{"tcp established", tcp(record.TCPEstablished, record.TCPEstablished, tcpEstablished), forever, 432000},
		{"tcp established, shorter", tcp(record.TCPEstablished, record.TCPEstablished, tcpEstablished), 431000, 431000},
		{"tcp syn sent", tcp(record.TCPSynSent, record.TCPNone, tcpSynSent), forever, 120},
		{"tcp syn recv", tcp(record.TCPSynSent, record.TCPSynSent, tcpSynRecv), forever, 60},
		{"tcp fin wait", tcp(record.TCPClosing, record.TCPEstablished, tcpFinWait), forever, 120},
		{"tcp close wait", tcp(record.TCPClosing, record.TCPEstablished, tcpCloseWait), forever, 60},
		{"tcp last ack", tcp(record.TCPFinAcked, record.TCPClosing, tcpLastAck), forever, 30},
		{"tcp time wait", tcp(record.TCPTimeWait, record.TCPTimeWait, tcpTimeWait), forever, 120},
		{"tcp close", tcp(record.TCPClosed, record.TCPClosed, tcpClose), forever, 10},
		{"tcp none", tcp(record.TCPNone, record.TCPNone, tcpNone), forever, 120},
		// The state written is what the levels say, not the hint.
		{"tcp hint lies", tcp(record.TCPClosed, record.TCPClosed, tcpEstablished), forever, 10},
		{"udp stream", func(r *record.Record) {}, forever, 120},
		{"udp unreplied", func(r *record.Record) {
			r.Flags = statusConfirmed
			r.Peers[record.Reply].Level = record.NoTraffic
		}, forever, 30},
		{"udp unreplied, shorter", func(r *record.Record) { r.Flags = statusConfirmed }, 20, 20},
		{"icmp", func(r *record.Record) {
			r.Key.Proto = record.ProtoICMP
			r.Key.Orig = rt("10.0.1.2:4660", "10.0.2.3:2048")
			r.Key.Reply = rt("10.0.2.3:4660", "10.0.1.2:0")
		}, forever, 30},
		{"sctp", func(r *record.Record) { r.Key.Proto = protoSCTP }, forever, 210},
		{"gre stream", func(r *record.Record) { r.Key.Proto = protoGRE }, forever, 180},
		{"other protocol", func(r *record.Record) { r.Key.Proto = 200 }, forever, 600},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := udpRecord(i)
			tc.set(&r)
			r.Expire = tc.expire
			k.mu.Lock()
			k.creates = k.creates[:0]
			k.mu.Unlock()
			if err := b.Insert(&r); err != nil {
				t.Fatal(err)
			}
			if len(k.creates) != 1 {
				t.Fatalf("%d creates, want 1", len(k.creates))
			}
			if got := msgTimeout(t, k.creates[0]); got != tc.want {
				t.Errorf("timeout %d, want %d", got, tc.want)
			}
		})
	}
	capped := uint64(0)
	for _, tc := range cases {
		if tc.expire > tc.want {
			capped++
		}
	}
	if s := b.Stats(); s.Capped != capped {
		t.Errorf("Capped %d, want %d", s.Capped, capped)
	}
}

// TestParseTimeouts reads a node's sysctls, keeping the default for what
// is missing or unreadable.
func TestParseTimeouts(t *testing.T) {
	files := map[string]string{
		"nf_conntrack_tcp_timeout_established": "7200\n",
		"nf_conntrack_tcp_timeout_syn_sent":    "90\n",
		"nf_conntrack_udp_timeout_stream":      "180\n",
		"nf_conntrack_udp_timeout":             "garbage\n",
		"nf_conntrack_icmp_timeout":            "0\n",
		"nf_conntrack_sctp_timeout_closed":     "10\n",
		// An older kernel's SCTP established default.
		"nf_conntrack_sctp_timeout_established": "432000\n",
	}
	got := parseTimeouts(func(name string) ([]byte, error) {
		v, ok := files[strings.TrimPrefix(name, sysctlDir+"/")]
		if !ok {
			return nil, fmt.Errorf("open %s: %w", name, unix.ENOENT)
		}
		return []byte(v), nil
	})
	want := defaultTimeouts()
	want.tcp[tcpEstablished] = 7200
	want.tcp[tcpSynSent], want.tcp[tcpSynSent2], want.tcp[tcpNone] = 90, 90, 90
	want.udpStream = 180
	want.sctp = 432000
	if got != want {
		t.Errorf("timeouts\n%+v, want\n%+v", got, want)
	}
}

// fakeDumper is a dump socket whose table is empty and whose statistics
// are stats.
type fakeDumper struct {
	mu    sync.Mutex
	stats []ct.Stats
}

func (d *fakeDumper) Dump(*ct.DumpOptions) ([]ct.Flow, error) { return nil, nil }
func (d *fakeDumper) Close() error                            { return nil }
func (d *fakeDumper) DumpFilter(ct.Filter, *ct.DumpOptions) ([]ct.Flow, error) {
	return nil, nil
}
func (d *fakeDumper) Stats() ([]ct.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]ct.Stats(nil), d.stats...), nil
}

func (d *fakeDumper) set(st ...ct.Stats) {
	d.mu.Lock()
	d.stats = st
	d.mu.Unlock()
}

// startFake starts b's watcher loop on d, without an event socket, and
// returns the channel that feeds it what the reader would.
func startFake(b *Backend, d dumper) chan<- item {
	items := make(chan item)
	b.lifeMu.Lock()
	b.dump, b.sink, b.started = d, newFakeSink(0), true
	b.lifeMu.Unlock()
	b.wg.Add(1)
	go b.process(items)
	return items
}

// TestEventsLostLoggedOnce feeds the watcher a burst of lost-event
// reports (every read failing under overload): one log per interval.
func TestEventsLostLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &logCounter{}
		b := fakeBackend(t, &fakeKernel{}, Config{Logger: slog.New(h)})
		items := startFake(b, &fakeDumper{})
		synctest.Wait() // the first resync is over: it would drop queued reports
		for range 100 {
			items <- item{lost: unix.ENOBUFS}
		}
		synctest.Wait()
		if n := len(h.matching("events lost")); n != 1 {
			t.Fatalf("%d logs for 100 overruns, want 1", n)
		}
		time.Sleep(logEvery)
		items <- item{lost: unix.ENOBUFS}
		synctest.Wait()
		logs := h.matching("events lost")
		if len(logs) != 2 || attr(logs[1], "suppressed").Uint64() != 99 {
			t.Fatalf("logs %v, want a second with 99 suppressed", logs)
		}
	})
}

// TestKernelDrops: the kernel's drop and early_drop counters (its table
// was full) that grew between two resyncs are counted and logged once per
// interval; what they held at the start is not.
func TestKernelDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &logCounter{}
		b := fakeBackend(t, &fakeKernel{}, Config{Logger: slog.New(h)})
		d := &fakeDumper{}
		d.set(ct.Stats{CPUID: 0, Drop: 5, EarlyDrop: 3})
		startFake(b, d) // its first resync reads the baseline
		ctx := context.Background()
		resync := func() {
			t.Helper()
			if err := b.Resync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		resync()
		if s := b.Stats(); s.KernelDrops != 0 || len(h.matching("table full")) != 0 {
			t.Fatalf("KernelDrops %d and logs %d before any growth, want none", s.KernelDrops, len(h.matching("table full")))
		}
		d.set(ct.Stats{CPUID: 0, Drop: 10, EarlyDrop: 3}, ct.Stats{CPUID: 1, EarlyDrop: 2})
		resync()
		// A counter that wrapped around.
		d.set(ct.Stats{CPUID: 0, Drop: 1<<32 - 1, EarlyDrop: 3}, ct.Stats{CPUID: 1, EarlyDrop: 2})
		resync()
		d.set(ct.Stats{CPUID: 0, Drop: 1, EarlyDrop: 3}, ct.Stats{CPUID: 1, EarlyDrop: 2})
		resync()
		want := uint64(5 + 2 + (1<<32 - 1 - 10) + 2)
		if s := b.Stats(); s.KernelDrops != want {
			t.Errorf("KernelDrops %d, want %d", s.KernelDrops, want)
		}
		if n := len(h.matching("table full")); n != 1 {
			t.Errorf("%d logs, want 1 per interval", n)
		}
	})
}

// TestParkKeepsLittle parks a RELATED record (its master is not in the
// kernel: ENOENT) that carries kilobytes of extensions no write uses: only
// the ones a write needs are kept while it waits.
func TestParkKeepsLittle(t *testing.T) {
	k := &fakeKernel{createErr: unix.ENOENT}
	b := fakeBackend(t, k, Config{})
	rec := convCases()[5].rec // RELATED, with a master tuple and a helper
	rec.Ext = append(rec.Ext,
		record.Ext{Type: 200, Data: make([]byte, record.MaxExtLen)},
		record.Ext{Type: 201, Data: make([]byte, record.MaxExtLen)})
	if err := b.Insert(&rec); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.Parked != 1 {
		t.Fatalf("stats %+v, want 1 parked", s)
	}
	size := 0
	for _, recs := range b.parked {
		for _, r := range recs {
			for _, e := range r.Ext {
				size += len(e.Data)
				if e.Type >= 200 {
					t.Errorf("parked record keeps extension type %d", e.Type)
				}
			}
		}
	}
	if size > 64 {
		t.Errorf("parked record keeps %d bytes of extensions, want at most 64", size)
	}
}

//go:build linux

package udp_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/pfsync/udp"
)

// These tests run two pfsync Engines, each with a seal.Sealer under one
// cluster key and a MemTable, over real UDP sockets in two namespaces on a
// bridge (namespace prefix "gse"), and an attacker in a third namespace on
// the same segment. Every packet stays inside the namespaces.

const (
	engRecords = 2000
	// engDeadline bounds every wait for convergence or for counters; it
	// catches hangs only.
	engDeadline = 30 * time.Second
	engBootA    = 7 // node A's boot counter; its "previous boot" is 6
)

// engCase is one transport set-up.
type engCase struct {
	name  string
	addrs [3]netip.Prefix // A, B, attacker
	group netip.Addr      // zero: unicast
}

func engCases() []engCase {
	v4 := [3]netip.Prefix{
		netip.MustParsePrefix("10.78.0.1/24"), netip.MustParsePrefix("10.78.0.2/24"), netip.MustParsePrefix("10.78.0.66/24"),
	}
	v6 := [3]netip.Prefix{
		netip.MustParsePrefix("fd78::1/64"), netip.MustParsePrefix("fd78::2/64"), netip.MustParsePrefix("fd78::66/64"),
	}
	return []engCase{
		{"UnicastIPv4", v4, netip.Addr{}},
		{"MulticastIPv4", v4, netip.MustParseAddr(udp.DefaultGroup4)},
		{"MulticastIPv6", v6, netip.MustParseAddr(udp.DefaultGroup6)},
	}
}

// engTransport opens node i's transport (0 = A, node id 1; 1 = B, node id
// 2) inside ns.
func engTransport(t *testing.T, ns *netns.NS, c engCase, i int) pfsync.Transport {
	t.Helper()
	var tr pfsync.Transport
	err := ns.Do(func() error {
		if c.group.IsValid() {
			m, err := udp.NewMulticast(udp.MulticastConfig{Interface: "sync0", Group: c.group})
			tr = m
			return err
		}
		ap := func(j int) netip.AddrPort { return netip.AddrPortFrom(c.addrs[j].Addr(), udp.DefaultPort) }
		peer := 1 - i
		u, err := udp.NewUnicast(udp.UnicastConfig{
			Local:     ap(i),
			Interface: "sync0",
			Peers:     map[pfsync.NodeID]netip.AddrPort{pfsync.NodeID(peer + 1): ap(peer)},
		})
		tr = u
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", ns.Short, err)
	}
	return tr
}

// tapTransport records every frame its engine receives, sealed, as it came
// off the wire: a capture on the receiver's interface. Replaying frames the
// receiver is known to have seen makes every replay a replay (a frame the
// kernel dropped before B read it would be new to B, and rightly accepted
// once).
type tapTransport struct {
	pfsync.Transport
	mu     sync.Mutex
	frames [][]byte
}

func (tt *tapTransport) Receive() (pfsync.Datagram, error) {
	d, err := tt.Transport.Receive()
	if err == nil {
		tt.mu.Lock()
		tt.frames = append(tt.frames, slices.Clone(d.Payload)) // before the engine opens it in place
		tt.mu.Unlock()
	}
	return d, err
}

func (tt *tapTransport) recorded() [][]byte {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return slices.Clone(tt.frames)
}

// tapSealer records the plaintext of every frame its engine seals, so the
// test can seal the same genuine frames as an earlier boot of the node would
// have.
type tapSealer struct {
	*seal.Sealer
	mu     sync.Mutex
	plains [][]byte
}

func (ts *tapSealer) Seal(dst, plaintext []byte) ([]byte, error) {
	ts.mu.Lock()
	ts.plains = append(ts.plains, append([]byte(nil), plaintext...))
	ts.mu.Unlock()
	return ts.Sealer.Seal(dst, plaintext)
}

func (ts *tapSealer) recorded() [][]byte {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([][]byte(nil), ts.plains...)
}

func engSealer(t *testing.T, node pfsync.NodeID, boot uint32, psk []byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(seal.Config{Node: node, Boot: boot, Keys: []seal.Key{{ID: 1, Secret: psk}}, SendKeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func engStart(t *testing.T, node pfsync.NodeID, tr pfsync.Transport, s pfsync.Sealer, table *pfsync.MemTable) *pfsync.Engine {
	t.Helper()
	e, err := pfsync.New(pfsync.Config{
		Node:      node,
		Transport: tr,
		Sealer:    s,
		Table:     table,
		Commit:    pfsync.CommitDirect,
		// Short timers so the test converges quickly; the defaults are
		// tuned for real links.
		FlushDelay:  5 * time.Millisecond,
		Heartbeat:   100 * time.Millisecond,
		BulkTimeout: time.Second,
	})
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("node %d: Close: %v", node, err)
		}
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// engRecord is flow i of node A: a NATed TCP connection.
func engRecord(id record.ID, i int) record.Record {
	client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(20000+i))
	server := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.80"), 443)
	snat := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(40000+i))
	return record.Record{
		ID: id,
		Key: record.Key{
			Family: record.IPv4, Proto: record.ProtoTCP,
			Orig:  record.Tuple{Src: client, Dst: server},
			Reply: record.Tuple{Src: server, Dst: snat},
		},
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: uint32(i) * 1000, SeqHi: uint32(i)*1000 + 65535, MaxWin: 65535, WScale: 7, Scaled: true},
			{Level: record.TCPEstablished, SeqLo: uint32(i) * 3000, SeqHi: uint32(i)*3000 + 65535, MaxWin: 65535, WScale: 7, Scaled: true},
		},
		Expire:  86400,
		Timeout: 4,
		Flags:   0x1a,
		Packets: [2]uint64{3, 2},
		Bytes:   [2]uint64{180, 120},
		Ext:     []record.Ext{{Type: record.ExtMark, Data: []byte{0, 0, 0, byte(i)}}},
	}
}

// engCmp compares records field by field (netip values by ==, a nil and an
// empty Ext alike, as record.Record.Equal does).
var engCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// expireSlack is how far the remaining lifetimes of two copies of a record
// may differ and still count as the same: a receiver takes off the whole
// seconds a record waited before it reached the table, so a copy written
// just after a second boundary holds one second less than the sender's.
const expireSlack = 2

// sameRecords reports whether a and b hold the same records in the same
// order (record.Record.Equal, with Expire within expireSlack seconds).
func sameRecords(a, b []record.Record) bool {
	return slices.EqualFunc(a, b, func(x, y record.Record) bool {
		if max(x.Expire, y.Expire)-min(x.Expire, y.Expire) <= expireSlack {
			y.Expire = x.Expire
		}
		return x.Equal(&y)
	})
}

// waitConverged polls until B's table holds exactly A's records.
func waitConverged(t *testing.T, a *pfsync.Engine, tb *pfsync.MemTable) []record.Record {
	t.Helper()
	deadline := time.Now().Add(engDeadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		want, got := a.Records(), tb.Records()
		if sameRecords(want, got) {
			return got
		}
		if time.Now().After(deadline) {
			diff := cmp.Diff(want, got, engCmp)
			t.Fatalf("B's table did not converge to A's %d records (B holds %d) (-want +got):\n%.3000s", len(want), len(got), diff)
		}
		<-tick.C
	}
}

// engInjector is the attacker's socket in the third namespace: it sends to
// B's unicast address or to the group, with TTL (hop limit) 255 so that the
// transport's on-link check lets the datagrams through to the Sealer.
type engInjector struct {
	c   *net.UDPConn
	dst netip.AddrPort
}

func newInjector(t *testing.T, ns *netns.NS, c engCase) *engInjector {
	t.Helper()
	inj := &engInjector{}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("sync0")
		if err != nil {
			return err
		}
		if !c.group.IsValid() {
			// Unicast drops datagrams from addresses that are no
			// peer's: the attacker spoofs A's address and port
			// (IP_TRANSPARENT binds an address the host does not hold).
			lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					if c.addrs[0].Addr().Is4() {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
					} else {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
					}
				})
				return errors.Join(err, serr)
			}}
			pc, err := lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(c.addrs[0].Addr(), udp.DefaultPort).String())
			if err != nil {
				return err
			}
			inj.c = pc.(*net.UDPConn)
			inj.dst = netip.AddrPortFrom(c.addrs[1].Addr(), udp.DefaultPort)
			return nil
		}
		if inj.c, err = net.ListenUDP("udp", &net.UDPAddr{IP: c.addrs[2].Addr().AsSlice()}); err != nil {
			return err
		}
		switch {
		case c.group.Is4():
			inj.dst = netip.AddrPortFrom(c.group, udp.DefaultPort)
			p := ipv4.NewPacketConn(inj.c)
			return errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastTTL(255))
		default:
			inj.dst = netip.AddrPortFrom(c.group.WithZone(ifi.Name), udp.DefaultPort)
			p := ipv6.NewPacketConn(inj.c)
			return errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(255))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inj.c.Close() })
	return inj
}

func (inj *engInjector) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := inj.c.WriteToUDPAddrPort(f, inj.dst); err != nil {
			t.Fatal(err)
		}
	}
}

// authCounters is the part of B's statistics the attack must move.
type authCounters struct {
	Replay, BadAuth, StaleEpoch uint64 // engine (Stats)
	SealReplay, SealBadAuth     uint64 // Sealer (seal.Stats)
	SealStale                   uint64
}

func countersOf(e *pfsync.Engine, s *seal.Sealer) authCounters {
	es, ss := e.Stats(), s.Stats()
	return authCounters{es.Replay, es.BadAuth, es.StaleEpoch, ss.Replay, ss.BadAuth, ss.StaleEpoch}
}

// total is the number of frames the engine rejected for these reasons.
func (c authCounters) total() uint64 { return c.Replay + c.BadAuth + c.StaleEpoch }

// waitCounters polls until B's engine has rejected total frames (replay, bad
// auth and stale epoch together).
func waitCounters(t *testing.T, e *pfsync.Engine, s *seal.Sealer, total uint64) {
	t.Helper()
	deadline := time.Now().Add(engDeadline)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c := countersOf(e, s)
		if c.total() >= total {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("B rejected %d frames; want %d: injected frames lost? engine stats: %+v", c.total(), total, e.Stats())
		}
		<-tick.C
	}
}

func (c authCounters) sub(o authCounters) authCounters {
	return authCounters{
		c.Replay - o.Replay, c.BadAuth - o.BadAuth, c.StaleEpoch - o.StaleEpoch,
		c.SealReplay - o.SealReplay, c.SealBadAuth - o.SealBadAuth, c.SealStale - o.SealStale,
	}
}

// TestEngineOverUDP: two sealed engines on real UDP sockets in two namespaces
// converge on 2,000 inserted, updated and deleted records; then an attacker
// on the segment replays A's recorded frames, forges frames (random bytes in
// a valid-looking envelope, frames sealed under another key) and replays
// genuine frames of A's previous boot. B's table does not change and B
// counts each attack under its own counter.
func TestEngineOverUDP(t *testing.T) {
	for _, c := range engCases() {
		t.Run(c.name, func(t *testing.T) { testEngineOverUDP(t, c) })
	}
}

func testEngineOverUDP(t *testing.T, c engCase) {
	netns.Require(t)
	tp := netns.New(t, "gse")
	br := tp.Bridge("br0")
	nsA, nsB, nsX := tp.Node("a"), tp.Node("b"), tp.Node("x")
	tp.Attach(nsA, br, "sync0", c.addrs[0])
	tp.Attach(nsB, br, "sync0", c.addrs[1])
	tp.Attach(nsX, br, "sync0", c.addrs[2])

	psk, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trA := engTransport(t, nsA, c, 0)
	trB := engTransport(t, nsB, c, 1)
	tapB := &tapTransport{Transport: trB}
	sealA := &tapSealer{Sealer: engSealer(t, 1, engBootA, psk)}
	sealB := engSealer(t, 2, 1, psk)
	tableA, tableB := &pfsync.MemTable{}, &pfsync.MemTable{}
	a := engStart(t, 1, trA, sealA, tableA)
	b := engStart(t, 2, tapB, sealB, tableB)

	// Insert, update every other record, delete every fourth.
	start := time.Now()
	ids := make([]record.ID, engRecords)
	for i := range ids {
		ids[i] = a.NewID()
		if err := a.Upsert(engRecord(ids[i], i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < engRecords; i += 2 {
		r := engRecord(ids[i], i)
		r.Peers[record.Orig].SeqLo += 5000
		r.Peers[record.Reply].SeqLo += 7000
		r.Packets = [2]uint64{40, 30}
		r.Bytes = [2]uint64{4000, 30000}
		if err := a.Upsert(r); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < engRecords; i += 4 {
		if err := a.Delete(ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	before := waitConverged(t, a, tableB)
	if want := engRecords - engRecords/4; len(before) != want {
		t.Fatalf("B holds %d records; want %d", len(before), want)
	}
	if n := tableA.Len(); n != 0 {
		t.Errorf("A's own table got %d records: the engine echoed A's own changes", n)
	}
	sa, sb := a.Stats(), b.Stats()
	t.Logf("converged on %d records in %v; A sent %d frames (%d bytes), B received %d; B: stale %d, retransmits %d, auth failures %d",
		len(before), time.Since(start).Round(time.Millisecond), sa.FramesOut, sa.BytesOut, sb.FramesIn, sb.Stale, sa.Retransmits, sb.AuthFailures)
	if sb.AuthFailures != 0 {
		t.Errorf("B rejected %d genuine frames (bad auth %d, replay %d, stale epoch %d)", sb.AuthFailures, sb.BadAuth, sb.Replay, sb.StaleEpoch)
	}

	// The attack. Recordings first: every frame B received so far.
	recorded := tapB.recorded()
	plains := sealA.recorded()
	if len(recorded) < 10 || len(plains) < 10 {
		t.Fatalf("recorded %d frames and %d plaintexts; want at least 10 each", len(recorded), len(plains))
	}
	replays := recorded
	if len(replays) > 200 {
		replays = replays[len(replays)-200:] // the newest: inside and just behind the replay window
	}

	// Forgeries: random bytes behind a valid-looking envelope claiming to
	// be A's current run (the epoch and boot copied from a recording), and
	// genuine-looking frames sealed by a node 1 holding another key.
	var forged [][]byte
	for _, rec := range recorded[:20] {
		f := make([]byte, len(rec))
		copy(f, rec[:seal.HeaderLen])
		binary.BigEndian.PutUint64(f[21:29], 1<<40+uint64(len(forged))) // an unseen sequence number, so the tag is checked
		rand.Read(f[seal.HeaderLen:])
		forged = append(forged, f)
	}
	otherKey, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	impostor := engSealer(t, 1, engBootA+1, otherKey) // claims a newer boot of node 1
	for _, p := range plains[:20] {
		f, err := impostor.Seal(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		forged = append(forged, f)
	}

	// Frames of A's previous boot: A's own plaintexts, sealed under the
	// cluster key as A's earlier run (boot engBootA-1) sealed them.
	previous := engSealer(t, 1, engBootA-1, psk)
	var stale [][]byte
	for _, p := range plains[:20] {
		f, err := previous.Seal(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		stale = append(stale, f)
	}

	cnt0 := countersOf(b, sealB)
	inj := newInjector(t, nsX, c)
	// Inject in small batches, each once B has judged the previous one: a
	// burst of hundreds of datagrams would overflow B's socket buffer and
	// be dropped by the kernel before the Sealer sees it.
	for _, frames := range [][][]byte{replays, forged, stale} {
		for chunk := range slices.Chunk(frames, 16) {
			judged := countersOf(b, sealB).total() + uint64(len(chunk))
			inj.send(t, chunk...)
			waitCounters(t, b, sealB, judged)
		}
	}
	got := countersOf(b, sealB).sub(cnt0)
	want := authCounters{
		Replay: uint64(len(replays)), BadAuth: uint64(len(forged)), StaleEpoch: uint64(len(stale)),
		SealReplay: uint64(len(replays)), SealBadAuth: uint64(len(forged)), SealStale: uint64(len(stale)),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("B's counters after injecting %d replays, %d forgeries, %d previous-boot frames (-want +got):\n%s",
			len(replays), len(forged), len(stale), diff)
	}
	if after := tableB.Records(); !sameRecords(before, after) {
		diff := cmp.Diff(before, after, engCmp)
		t.Errorf("B's table changed under attack (-before +after):\n%.3000s", diff)
	}

	// And the pair still syncs: a change made after the attack arrives.
	r := engRecord(ids[1], 1)
	r.Peers[record.Orig].Level = record.TCPClosing
	if err := a.Upsert(r); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, a, tableB)
	if got, ok := tableB.Get(ids[1]); !ok || got.Peers[record.Orig].Level != record.TCPClosing {
		t.Errorf("B's copy of %v after the attack: %v", ids[1], fmt.Sprint(got.Peers))
	}
}

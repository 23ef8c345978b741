package udp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/ipv4"

	"github.com/gocarp/gocarp/pfsync"
)

// loopbacks are the loopback addresses the batch tests run on.
var loopbacks = []struct{ name, addr string }{{"IPv4", "127.0.0.1"}, {"IPv6", "::1"}}

// TestUnicastBroadcastBatched sends to three peers with one Send and
// several frames with one SendBatch, over IPv4 and IPv6 loopback, and
// checks what each peer received, in order, and the counters.
func TestUnicastBroadcastBatched(t *testing.T) {
	for _, fam := range loopbacks {
		t.Run(fam.name, func(t *testing.T) {
			trs := cluster(t, netip.MustParseAddr(fam.addr), 4)
			a := trs[0]
			var rs []*receiver
			for _, tr := range trs {
				rs = append(rs, startReceiver(t, tr))
			}
			if err := a.Send(pfsync.Broadcast, []byte("one")); err != nil {
				t.Fatal(err)
			}
			frames := []pfsync.Outgoing{
				{To: pfsync.Broadcast, Frame: []byte("two")},
				{To: 3, Frame: []byte("three")},
				{To: pfsync.Broadcast, Frame: []byte("four")},
			}
			a.SendBatch(frames)
			for i, f := range frames {
				if f.Err != nil {
					t.Errorf("frames[%d].Err = %v", i, f.Err)
				}
			}
			want := map[int][]string{1: {"one", "two", "four"}, 2: {"one", "two", "three", "four"}, 3: {"one", "two", "four"}}
			for i, w := range want {
				var got []string
				for range w {
					d := rs[i].next(t)
					if d.From != 1 {
						t.Errorf("node %d: datagram from %d, want 1", i+1, d.From)
					}
					got = append(got, string(d.Payload))
				}
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("node %d received (-want +got):\n%s", i+1, diff)
				}
			}
			if s := a.Stats(); s.Sent != 10 || s.SendErrors != 0 {
				t.Errorf("Stats = %+v, want 10 sent, 0 errors", s)
			}
		})
	}
}

// TestUnicastBatchPeerFails has one peer the kernel refuses to send to (a
// socket bound to IPv4 loopback cannot reach an address outside the host;
// IPv6 has no such refusal that needs no set-up, TestBatchShortWrites
// covers the loop for both): the others still get every frame, the error
// names the peer, and the counters count each datagram.
func TestUnicastBatchPeerFails(t *testing.T) {
	for _, fam := range []struct{ name, addr, away string }{
		{"IPv4", "127.0.0.1", "192.0.2.1:7240"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			addr := netip.MustParseAddr(fam.addr)
			ports := freePorts(t, addr, 3)
			peers := map[pfsync.NodeID]netip.AddrPort{
				2: netip.AddrPortFrom(addr, ports[1]),
				3: netip.MustParseAddrPort(fam.away),
				4: netip.AddrPortFrom(addr, ports[2]),
			}
			a, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, ports[0]), Peers: peers})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			var rs []*receiver
			for _, i := range []int{1, 2} {
				tr, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, ports[i]), Peers: map[pfsync.NodeID]netip.AddrPort{1: netip.AddrPortFrom(addr, ports[0])}})
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, startReceiver(t, tr))
			}
			err = a.Send(pfsync.Broadcast, []byte("one"))
			if err == nil || !strings.Contains(err.Error(), "node 3 at "+fam.away) {
				t.Fatalf("Send(Broadcast) = %v, want an error naming node 3 at %s", err, fam.away)
			}
			frames := []pfsync.Outgoing{{To: pfsync.Broadcast, Frame: []byte("two")}, {To: 4, Frame: []byte("three")}, {To: 3, Frame: []byte("lost")}}
			a.SendBatch(frames)
			if frames[0].Err == nil || !strings.Contains(frames[0].Err.Error(), "node 3") || frames[1].Err != nil || frames[2].Err == nil {
				t.Fatalf("SendBatch errors %v, %v, %v; want node 3's, nil, node 3's", frames[0].Err, frames[1].Err, frames[2].Err)
			}
			for i, w := range [][]string{{"one", "two"}, {"one", "two", "three"}} {
				var got []string
				for range w {
					got = append(got, string(rs[i].next(t).Payload))
				}
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("peer %d received (-want +got):\n%s", i, diff)
				}
			}
			if s := a.Stats(); s.Sent != 5 || s.SendErrors != 3 {
				t.Errorf("Stats = %+v, want 5 sent, 3 errors", s)
			}
		})
	}
}

// shortWriter is a batchWriter that sends at most max datagrams a call
// and refuses the datagrams to the ports in fail, as sendmmsg does: a
// refused datagram first in the call is an error, later it ends the call
// short.
type shortWriter struct {
	max  int
	fail map[int]bool
	sent []string // "port:payload"
	n    int      // calls
}

func (w *shortWriter) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	w.n++
	for i, m := range ms {
		port := m.Addr.(*net.UDPAddr).Port
		if w.fail[port] {
			if i == 0 {
				return -1, syscall.EPERM
			}
			return i, nil
		}
		if i == w.max {
			return i, nil
		}
		w.sent = append(w.sent, fmt.Sprintf("%d:%s", port, m.Buffers[0]))
	}
	return len(ms), nil
}

// TestBatchShortWrites drives the send loop through partial sends and a
// refused datagram in the middle of a call.
func TestBatchShortWrites(t *testing.T) {
	peers := map[pfsync.NodeID]netip.AddrPort{}
	for id := pfsync.NodeID(2); id <= 6; id++ {
		peers[id] = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(id))
	}
	u, err := NewUnicast(UnicastConfig{Local: netip.MustParseAddrPort("127.0.0.1:0"), Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	w := &shortWriter{max: 2, fail: map[int]bool{4: true}}
	u.batch.w = w
	frames := []pfsync.Outgoing{{To: pfsync.Broadcast, Frame: []byte("a")}, {To: 4, Frame: []byte("b")}, {To: 6, Frame: []byte("c")}}
	u.SendBatch(frames)
	want := []string{"2:a", "3:a", "5:a", "6:a", "6:c"}
	if diff := cmp.Diff(want, w.sent); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if !errors.Is(frames[0].Err, syscall.EPERM) || !strings.Contains(frames[0].Err.Error(), "node 4 at 127.0.0.1:4") {
		t.Errorf("frames[0].Err = %v, want EPERM naming node 4", frames[0].Err)
	}
	if !errors.Is(frames[1].Err, syscall.EPERM) || frames[2].Err != nil {
		t.Errorf("frames[1].Err = %v, frames[2].Err = %v; want EPERM, nil", frames[1].Err, frames[2].Err)
	}
	if s := u.Stats(); s.Sent != 5 || s.SendErrors != 2 {
		t.Errorf("Stats = %+v, want 5 sent, 2 errors", s)
	}

	// A writer that makes no progress and gives no reason must not hang
	// the loop: each datagram counts as failed.
	u.batch.w = &shortWriter{max: 0}
	if err := u.Send(pfsync.Broadcast, []byte("x")); err == nil {
		t.Error("Send with a stuck writer succeeded")
	}
	if s := u.Stats(); s.SendErrors != 2+5 {
		t.Errorf("SendErrors = %d, want 7", s.SendErrors)
	}
}

// TestSendBatchRefusals checks the frames SendBatch refuses before the
// kernel sees them.
func TestSendBatchRefusals(t *testing.T) {
	trs := cluster(t, netip.MustParseAddr("127.0.0.1"), 2)
	a := trs[0]
	defer a.Close()
	r := startReceiver(t, trs[1])
	frames := []pfsync.Outgoing{
		{To: 2, Frame: bytes.Repeat([]byte{1}, a.MTU()+1)},
		{To: 9, Frame: []byte("nobody")},
		{To: 2, Frame: []byte("ok")},
	}
	a.SendBatch(frames)
	if frames[0].Err == nil || !strings.Contains(frames[0].Err.Error(), "exceeds MTU") {
		t.Errorf("oversize frame: Err = %v", frames[0].Err)
	}
	if frames[1].Err == nil || !strings.Contains(frames[1].Err.Error(), "no peer with node id 9") {
		t.Errorf("unknown peer: Err = %v", frames[1].Err)
	}
	if frames[2].Err != nil {
		t.Errorf("frames[2].Err = %v", frames[2].Err)
	}
	if got := string(r.next(t).Payload); got != "ok" {
		t.Errorf("received %q, want \"ok\"", got)
	}
}

// TestBatchNoAllocs checks that Broadcast to several peers and SendBatch
// allocate nothing once their buffers have grown.
func TestBatchNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing with the race detector (x/net's buffers come from a sync.Pool)")
	}
	for _, fam := range loopbacks {
		t.Run(fam.name, func(t *testing.T) {
			addr := netip.MustParseAddr(fam.addr)
			peers := map[pfsync.NodeID]netip.AddrPort{}
			for id := range pfsync.NodeID(4) {
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
				if err != nil {
					t.Skipf("no UDP on %v: %v", addr, err)
				}
				defer c.Close()
				peers[id+2] = c.LocalAddr().(*net.UDPAddr).AddrPort()
			}
			u, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, 0), Peers: peers})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			frame := make([]byte, 100)
			frames := []pfsync.Outgoing{{To: pfsync.Broadcast, Frame: frame}, {To: 3, Frame: frame}}
			if n := testing.AllocsPerRun(100, func() {
				if err := u.Send(pfsync.Broadcast, frame); err != nil {
					t.Fatal(err)
				}
				u.SendBatch(frames)
				if frames[0].Err != nil || frames[1].Err != nil {
					t.Fatal(frames[0].Err, frames[1].Err)
				}
			}); n != 0 {
				t.Errorf("%v allocations per Send and SendBatch, want 0", n)
			}
		})
	}
}

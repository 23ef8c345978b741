package udp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/internal/sockopt"
	"github.com/gocarp/gocarp/pfsync"
)

// cluster makes n Unicast transports on addr that know each other:
// node i+1 listens on ports[i].
func cluster(t testing.TB, addr netip.Addr, n int) []*Unicast {
	t.Helper()
	ports := freePorts(t, addr, n)
	var trs []*Unicast
	for i := range n {
		peers := make(map[pfsync.NodeID]netip.AddrPort)
		for j := range n {
			if j != i {
				peers[pfsync.NodeID(j+1)] = netip.AddrPortFrom(addr, ports[j])
			}
		}
		u, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, ports[i]), Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, u)
	}
	return trs
}

func TestUnicastSendReceive(t *testing.T) {
	for _, tt := range []struct {
		name    string
		addr    string
		wantMTU int
	}{
		{"IPv4", "127.0.0.1", 1472},
		{"IPv6", "::1", 1452},
	} {
		t.Run(tt.name, func(t *testing.T) {
			trs := cluster(t, netip.MustParseAddr(tt.addr), 2)
			a, b := trs[0], trs[1]
			ra, rb := startReceiver(t, a), startReceiver(t, b)
			if a.MTU() != tt.wantMTU {
				t.Errorf("MTU = %d, want %d", a.MTU(), tt.wantMTU)
			}
			frame := bytes.Repeat([]byte{7}, a.MTU())
			if err := a.Send(2, frame); err != nil {
				t.Fatal(err)
			}
			frame[0] = 0 // the caller may reuse the frame after Send
			want := pfsync.Datagram{From: 1, Src: a.LocalAddr(), Payload: bytes.Repeat([]byte{7}, a.MTU())}
			if diff := cmp.Diff(want, rb.next(t), cmpAddrPort()); diff != "" {
				t.Errorf("datagram (-want +got):\n%s", diff)
			}
			if err := b.Send(pfsync.Broadcast, []byte("back")); err != nil {
				t.Fatal(err)
			}
			want = pfsync.Datagram{From: 2, Src: b.LocalAddr(), Payload: []byte("back")}
			if diff := cmp.Diff(want, ra.next(t), cmpAddrPort()); diff != "" {
				t.Errorf("datagram (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(Stats{Sent: 1, Received: 1}, a.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnicastBroadcast(t *testing.T) {
	trs := cluster(t, netip.MustParseAddr("127.0.0.1"), 3)
	r2, r3 := startReceiver(t, trs[1]), startReceiver(t, trs[2])
	startReceiver(t, trs[0])
	if err := trs[0].Send(pfsync.Broadcast, []byte("all")); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*receiver{r2, r3} {
		d := r.next(t)
		if d.From != 1 || string(d.Payload) != "all" {
			t.Errorf("node %d got (%d, %q), want (1, \"all\")", i+2, d.From, d.Payload)
		}
	}
	if got := trs[0].Stats().Sent; got != 2 {
		t.Errorf("Sent = %d, want 2", got)
	}
}

// TestUnicastFromMapping: a datagram from a peer's address and port, or
// from another port of an address only one peer uses, is delivered with that
// peer's id; one from an address that is no peer's, or from another port of
// an address two peers share, is dropped and counted. Every port is above
// 1024 and picked free, so it runs as any user.
func TestUnicastFromMapping(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs the whole of 127.0.0.0/8 on loopback (Linux)")
	}
	lo := netip.MustParseAddr("127.0.0.1")
	five, six := netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6")
	p5, p6 := freePorts(t, five, 2), freePorts(t, six, 3) // the last of each is no peer's port
	ports := freePorts(t, lo, 1)
	b, err := NewUnicast(UnicastConfig{
		Local: netip.AddrPortFrom(lo, ports[0]),
		Peers: map[pfsync.NodeID]netip.AddrPort{
			5: netip.AddrPortFrom(five, p5[0]),
			6: netip.AddrPortFrom(six, p6[0]),
			7: netip.AddrPortFrom(six, p6[1]), // shares an address: not matched by address alone
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rb := startReceiver(t, b)
	// send sends one datagram from each of srcs, in order, from one CPU
	// (pinToOneCPU), and returns the source addresses used.
	send := func(srcs ...netip.AddrPort) []netip.AddrPort {
		t.Helper()
		type result struct {
			used []netip.AddrPort
			err  error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // no Unlock: the pinned thread dies with the goroutine
			var r result
			defer func() { done <- r }()
			if r.err = pinToOneCPU(); r.err != nil {
				return
			}
			for _, src := range srcs {
				c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(src))
				if err != nil {
					r.err = err
					return
				}
				r.used = append(r.used, c.LocalAddr().(*net.UDPAddr).AddrPort())
				_, err = c.WriteToUDPAddrPort([]byte(src.String()), b.LocalAddr())
				if err = errors.Join(err, c.Close()); err != nil {
					r.err = err
					return
				}
			}
		}()
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.used
	}
	for _, tt := range []struct {
		name string
		src  netip.AddrPort
		want pfsync.NodeID // 0: dropped
	}{
		{"peer's address and port", netip.AddrPortFrom(five, p5[0]), 5},
		{"address shared, peer's port", netip.AddrPortFrom(six, p6[1]), 7},
		{"another port, unique address", netip.AddrPortFrom(five, p5[1]), 5},
		{"another port, shared address", netip.AddrPortFrom(six, p6[2]), 0},
		{"no peer's address", netip.MustParseAddrPort("127.0.0.9:0"), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Sent from one CPU, datagrams are delivered in order: once
			// the marker from a peer arrives, a dropped datagram sent
			// before it has been judged.
			used := send(tt.src, netip.AddrPortFrom(five, p5[0]))
			src, marker := used[0], used[1]
			if tt.want != 0 {
				d := rb.next(t)
				if d.From != tt.want || string(d.Payload) != tt.src.String() || d.Src != src {
					t.Errorf("got (%d, %q from %v), want (%d, %q from %v)", d.From, d.Payload, d.Src, tt.want, tt.src, src)
				}
			}
			if d := rb.next(t); d.From != 5 || d.Src != marker {
				t.Errorf("got (%d, %q from %v), want the marker from node 5", d.From, d.Payload, d.Src)
			}
		})
	}
	if diff := cmp.Diff(Stats{Received: 8, UnknownSource: 2}, b.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestUnicastMTU(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	ports := freePorts(t, lo, 2)
	a, err := NewUnicast(UnicastConfig{
		Local: netip.AddrPortFrom(lo, ports[0]),
		Peers: map[pfsync.NodeID]netip.AddrPort{2: netip.AddrPortFrom(lo, ports[1])},
		MTU:   1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewUnicast(UnicastConfig{
		Local: netip.AddrPortFrom(lo, ports[1]),
		Peers: map[pfsync.NodeID]netip.AddrPort{1: netip.AddrPortFrom(lo, ports[0])},
		MTU:   500,
	})
	if err != nil {
		t.Fatal(err)
	}
	startReceiver(t, a)
	rb := startReceiver(t, b)
	err = a.Send(2, make([]byte, 1001))
	if err == nil || err.Error() != "udp: 1001-byte frame exceeds MTU 1000" {
		t.Fatalf("Send over MTU: err = %v", err)
	}
	// b's MTU is smaller: a's 501-byte frame is dropped, counted, and the
	// next one that fits is delivered.
	if err := a.Send(2, make([]byte, 501)); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(2, []byte("fits")); err != nil {
		t.Fatal(err)
	}
	if d := rb.next(t); string(d.Payload) != "fits" {
		t.Fatalf("got %q", d.Payload)
	}
	if diff := cmp.Diff(Stats{Received: 1, Oversize: 1}, b.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if err := a.Send(3, []byte("x")); err == nil || err.Error() != "udp: no peer with node id 3" {
		t.Errorf("Send to unknown node: err = %v", err)
	}
}

func TestUnicastCloseUnblocksReceive(t *testing.T) {
	u := cluster(t, netip.MustParseAddr("127.0.0.1"), 2)[0]
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := u.Receive()
		errc <- err
	}()
	<-started
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "udp: receive: ") {
		t.Fatalf("Receive = %v, want a udp error wrapping net.ErrClosed", err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := u.Receive(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Receive after Close = %v", err)
	}
	if err := u.Send(2, []byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
}

func TestUnicastBindToDevice(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_BINDTODEVICE is Linux-only")
	}
	u, err := NewUnicast(UnicastConfig{
		Local:     netip.MustParseAddrPort("127.0.0.1:0"),
		Interface: "lo",
		Peers:     map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("127.0.0.1:9")},
	})
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("SO_BINDTODEVICE needs CAP_NET_RAW here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = NewUnicast(UnicastConfig{
		Local:     netip.MustParseAddrPort("127.0.0.1:0"),
		Interface: "gsu-nonexistent",
		Peers:     map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("127.0.0.1:9")},
	})
	if err == nil || !strings.Contains(err.Error(), `SO_BINDTODEVICE "gsu-nonexistent"`) {
		t.Fatalf("bind to a missing interface: err = %v", err)
	}
}

func TestUnicastConfigErrors(t *testing.T) {
	peer := map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("127.0.0.1:9")}
	local := netip.MustParseAddrPort("127.0.0.1:0")
	for _, tt := range []struct {
		name string
		cfg  UnicastConfig
		want string
	}{
		{"no local", UnicastConfig{Peers: peer}, "udp: UnicastConfig.Local invalid AddrPort is not an address and port"},
		{"no peers", UnicastConfig{Local: local}, "udp: UnicastConfig.Peers is empty, want at least one peer"},
		{"node zero", UnicastConfig{Local: local, Peers: map[pfsync.NodeID]netip.AddrPort{0: netip.MustParseAddrPort("127.0.0.1:9")}},
			"udp: UnicastConfig.Peers node id 0 (127.0.0.1:9) out of range 1-4294967295"},
		{"port zero", UnicastConfig{Local: local, Peers: map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("127.0.0.1:0")}},
			"udp: UnicastConfig.Peers[2] 127.0.0.1:0 is not a unicast address and port"},
		{"multicast peer", UnicastConfig{Local: local, Peers: map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("224.0.0.240:9")}},
			"udp: UnicastConfig.Peers[2] 224.0.0.240:9 is not a unicast address and port"},
		{"family", UnicastConfig{Local: local, Peers: map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("[::1]:9")}},
			"udp: UnicastConfig.Peers[2] [::1]:9 is not of the family of UnicastConfig.Local 127.0.0.1:0"},
		{"mtu", UnicastConfig{Local: local, Peers: peer, MTU: 70000}, "udp: UnicastConfig.MTU 70000 out of range 64-65507 (0 means 1472)"},
		{"mtu6", UnicastConfig{Local: netip.MustParseAddrPort("[::1]:0"), Peers: peer, MTU: 10}, "udp: UnicastConfig.MTU 10 out of range 64-65527 (0 means 1452)"},
		{"read buffer", UnicastConfig{Local: local, Peers: peer, ReadBuffer: -1}, "udp: UnicastConfig.ReadBuffer -1 out of range 64-1073741824"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUnicast(tt.cfg)
			if err == nil {
				u.Close()
				t.Fatal("NewUnicast succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnicastReadBuffer: the receive buffer is sized as configured (Linux
// reports twice the requested size, for its bookkeeping), and by default
// holds far more than the kernel's default of about 200 KiB.
func TestUnicastReadBuffer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_RCVBUF is read back with a Linux getsockopt")
	}
	peer := map[pfsync.NodeID]netip.AddrPort{2: netip.MustParseAddrPort("127.0.0.1:9")}
	for _, tt := range []struct {
		name string
		set  int
		want int
	}{
		{"default", 0, DefaultReadBuffer},
		{"configured", 1 << 20, 1 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUnicast(UnicastConfig{Local: netip.MustParseAddrPort("127.0.0.1:0"), Peers: peer, ReadBuffer: tt.set})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			rc, err := u.conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			got, err := sockopt.GetInt(rc, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			if err != nil {
				t.Fatal(err)
			}
			if got < tt.want && os.Geteuid() == 0 {
				t.Errorf("SO_RCVBUF = %d; want at least %d", got, tt.want)
			}
			t.Logf("SO_RCVBUF = %d", got)
		})
	}
}

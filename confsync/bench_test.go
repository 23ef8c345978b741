package confsync_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/udp"
)

// freePort returns a UDP port on 127.0.0.1 free a moment ago.
func freePort(b *testing.B) netip.AddrPort {
	b.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	return ap
}

// BenchmarkTransfer64MiB moves a 64 MiB document over UDP on loopback, as
// an ordinary user: Publish (copy and digest), chunked transfer of sealed
// 64 KiB datagrams, digest check, Apply.
// The sync link's usual MTU (1472-byte datagrams) is measured beside the
// largest UDP datagram loopback carries.
func BenchmarkTransfer64MiB(b *testing.B) {
	for _, mtu := range []int{65507, 1472} {
		b.Run(fmt.Sprintf("mtu=%d", mtu), func(b *testing.B) { benchTransfer(b, mtu) })
	}
}

func benchTransfer(b *testing.B, mtu int) {
	const size = 64 << 20
	a1, a2 := freePort(b), freePort(b)
	t1, err := udp.NewUnicast(udp.UnicastConfig{Local: a1, Peers: map[pfsync.NodeID]netip.AddrPort{2: a2}, MTU: mtu})
	if err != nil {
		b.Fatal(err)
	}
	t2, err := udp.NewUnicast(udp.UnicastConfig{Local: a2, Peers: map[pfsync.NodeID]netip.AddrPort{1: a1}, MTU: mtu})
	if err != nil {
		b.Fatal(err)
	}
	applied := make(chan uint64, 1)
	pub, err := confsync.New(confsync.Config{Node: 1, Transport: t1, Sealer: newSealer(b, 1, 7), Publish: []string{"big"}})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := confsync.New(confsync.Config{Node: 2, Transport: t2, Sealer: newSealer(b, 2, 7),
		Subscribe: map[string]pfsync.NodeID{"big": 1},
		Apply: func(_ string, v uint64, data []byte) error {
			if len(data) != size {
				b.Errorf("applied %d bytes, want %d", len(data), size)
			}
			applied <- v
			return nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	pub.Start()
	sub.Start()
	defer func() {
		for _, n := range []*confsync.Node{sub, pub} {
			if err := n.Close(); err != nil {
				b.Error(err)
			}
		}
	}()
	data := doc(0, size)
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		data[0] = byte(i)
		v := uint64(i + 1)
		if err := pub.Publish("big", v, data); err != nil {
			b.Fatal(err)
		}
		if got := <-applied; got != v {
			b.Fatalf("applied version %d, want %d", got, v)
		}
	}
	b.StopTimer()
	s := sub.Stats()
	b.ReportMetric(float64(s.Retransmits)/float64(b.N), "retransmits/op")
}

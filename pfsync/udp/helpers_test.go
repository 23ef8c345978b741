package udp

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gocarp/gocarp/pfsync"
)

// freePorts returns n UDP ports free on addr at the time of the call.
func freePorts(t testing.TB, addr netip.Addr, n int) []uint16 {
	t.Helper()
	var conns []*net.UDPConn
	var ports []uint16
	for range n {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			t.Skipf("no UDP on %v: %v", addr, err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ports
}

// receiver pumps a transport's Receive into a channel until it fails.
type receiver struct {
	ch   chan pfsync.Datagram
	done chan error
}

func startReceiver(t testing.TB, tr pfsync.Transport) *receiver {
	r := &receiver{ch: make(chan pfsync.Datagram, 1024), done: make(chan error, 1)}
	go func() {
		for {
			d, err := tr.Receive()
			if err != nil {
				r.done <- err
				close(r.ch)
				return
			}
			r.ch <- d
		}
	}()
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-r.done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Receive after Close: %v, want net.ErrClosed", err)
		}
	})
	return r
}

// next returns the next datagram. The timeout only keeps a lost datagram
// from hanging the test; it asserts nothing about speed.
func (r *receiver) next(t testing.TB) pfsync.Datagram {
	t.Helper()
	select {
	case d, ok := <-r.ch:
		if !ok {
			t.Fatal("transport closed")
		}
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no datagram within 10s")
	}
	return pfsync.Datagram{}
}

// cmpAddrPort lets cmp compare netip values, whose fields are unexported.
func cmpAddrPort() cmp.Option {
	return cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
}

package sockopt_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/internal/sockopt"
)

func rawConn(t *testing.T, network, addr string) (*net.UDPConn, syscall.RawConn) {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("no %s socket: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	uc := c.(*net.UDPConn)
	rc, err := uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return uc, rc
}

func TestSetMulticastAll(t *testing.T) {
	for _, tt := range []struct {
		name, network, addr string
		ipv6                bool
		level, opt          int
	}{
		{"ipv4", "udp4", "127.0.0.1:0", false, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL},
		{"ipv6", "udp6", "[::1]:0", true, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, rc := rawConn(t, tt.network, tt.addr)
			// Linux defaults to 1.
			if v, err := sockopt.GetInt(rc, tt.level, tt.opt); err != nil || v != 1 {
				t.Fatalf("default = %d, %v; want 1, nil", v, err)
			}
			for _, on := range []bool{false, true, false} {
				if err := sockopt.SetMulticastAll(rc, tt.ipv6, on); err != nil {
					t.Fatal(err)
				}
				want := 0
				if on {
					want = 1
				}
				if v, err := sockopt.GetInt(rc, tt.level, tt.opt); err != nil || v != want {
					t.Fatalf("after SetMulticastAll(%v) = %d, %v; want %d", on, v, err, want)
				}
			}
		})
	}
}

func TestBindToDevice(t *testing.T) {
	_, rc := rawConn(t, "udp4", "127.0.0.1:0")
	if err := sockopt.BindToDevice(rc, "lo"); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("SO_BINDTODEVICE needs CAP_NET_RAW here: %v", err)
		}
		t.Fatal(err)
	}
	if err := sockopt.BindToDevice(rc, "no-such-if0"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("BindToDevice(no such interface) = %v, want ENODEV", err)
	}
}

func TestErrorsAfterClose(t *testing.T) {
	c, rc := rawConn(t, "udp4", "127.0.0.1:0")
	c.Close()
	if err := sockopt.SetMulticastAll(rc, false, false); err == nil {
		t.Error("SetMulticastAll on a closed socket returned nil")
	}
	if err := sockopt.BindToDevice(rc, "lo"); err == nil {
		t.Error("BindToDevice on a closed socket returned nil")
	}
	if _, err := sockopt.GetInt(rc, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL); err == nil {
		t.Error("GetInt on a closed socket returned nil")
	}
}

// TestQueued: Queued reports the next datagram's length while one waits,
// and 0 once it is read.
func TestQueued(t *testing.T) {
	c, rc := rawConn(t, "udp4", "127.0.0.1:0")
	if n, err := sockopt.Queued(rc); err != nil || n != 0 {
		t.Fatalf("Queued on an empty socket = %d, %v; want 0, nil", n, err)
	}
	if _, err := c.WriteTo([]byte("seven b"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	// Loopback delivers inside WriteTo, so the datagram is queued now.
	if n, err := sockopt.Queued(rc); err != nil || n != 7 {
		t.Fatalf("Queued with a 7-byte datagram waiting = %d, %v; want 7, nil", n, err)
	}
	buf := make([]byte, 16)
	if _, _, err := c.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	if n, err := sockopt.Queued(rc); err != nil || n != 0 {
		t.Fatalf("Queued after reading = %d, %v; want 0, nil", n, err)
	}
}

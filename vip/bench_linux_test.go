//go:build linux

package vip_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/lab/netns"
	"github.com/gocarp/gocarp/vip"
	"golang.org/x/sys/unix"
)

// htons converts a 16-bit EtherType to network byte order for AF_PACKET.
func htons(v uint16) uint16 { return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, v)) }

// arpTap is an AF_PACKET socket in the client namespace that reports the
// kernel's receive timestamp (SO_TIMESTAMPNS) of each ARP frame.
type arpTap struct{ fd int }

func newARPTap(b *testing.B, ns *netns.NS, ifname string) *arpTap {
	b.Helper()
	tap := &arpTap{fd: -1}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		tap.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if tap.fd >= 0 {
			unix.Close(tap.fd)
		}
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(tap.fd) })
	return tap
}

// next returns the kernel receive time of the next gratuitous ARP request
// for addr.
func (tap *arpTap) next(addr netip.Addr) (time.Time, error) {
	buf, oob := make([]byte, 1500), make([]byte, 128)
	want := addr.As4()
	for {
		n, oobn, _, _, err := unix.Recvmsg(tap.fd, buf, oob, 0)
		if err != nil {
			return time.Time{}, err
		}
		f := buf[:n]
		// Ethernet(14) + ARP: op at 20, sender IP at 28.
		if n < 42 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(f[20:]) != 1 || [4]byte(f[28:32]) != want {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return time.Time{}, err
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(ts.Unix()), nil
			}
		}
		return time.Time{}, errors.New("no SO_TIMESTAMPNS control message")
	}
}

// BenchmarkTransitionToWire measures, on real sockets in network
// namespaces, the time from Follower.Handle(MASTER) to the kernel receive
// timestamp of the first gratuitous ARP at a client across a bridge: the
// goroutine hand-off, the netlink RTM_NEWADDR round trip, the frame build,
// the AF_PACKET write and the veth/bridge/veth path. Root only.
func BenchmarkTransitionToWire(b *testing.B) {
	tp := netns.New(b, "vipb")
	br := tp.Bridge("br0")
	a, c := tp.Node("a"), tp.Node("c")
	tp.Attach(a, br, "eth0", lanA4)
	tp.Attach(c, br, "eth0", lanC4)
	tap := newARPTap(b, c, "eth0")

	var ifi *net.Interface
	var mgr *vip.NetlinkManager
	var ann *vip.PacketAnnouncer
	var obs *vip.NetlinkManager // watches the withdrawal between rounds
	err := a.Do(func() error {
		var err error
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		if obs, err = vip.NewNetlinkManager(ifi, nil); err != nil {
			return err
		}
		if mgr, err = vip.NewNetlinkManager(ifi, nil); err != nil {
			return err
		}
		ann, err = vip.NewPacketAnnouncer(ifi, nil)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer obs.Close()
	defer mgr.Close()
	defer ann.Close()
	f, err := vip.NewFollower(vip.Config{
		VHID: 10, Addrs: []vip.VIP{{Addr: vip4, Bits: 32}}, Manager: mgr, Announcer: ann,
		Schedule: vip.Schedule{Repeats: vip.NoRepeats}, ReconcileInterval: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Start(); err != nil {
		b.Fatal(err)
	}
	defer f.Close()

	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		f.Handle(carp.Transition{VHID: 10, To: carp.Master})
		at, err := tap.next(vip4)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, at.Sub(t0))

		b.StopTimer()
		f.Handle(carp.Transition{VHID: 10, To: carp.Backup})
		for {
			ps, err := obs.List()
			if err != nil {
				b.Fatal(err)
			}
			if !slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == vip4 }) {
				break
			}
			select {
			case <-obs.Changes():
			case <-time.After(wait):
				b.Fatal("VIP not withdrawn")
			}
		}
		b.StartTimer()
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Nanoseconds()) }
	b.ReportMetric(q(0.5), "p50-ns/first-frame")
	b.ReportMetric(q(0.99), "p99-ns/first-frame")
	b.ReportMetric(q(1), "max-ns/first-frame")
}

package vip

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// benchManager is a minimal in-memory AddrManager (viptest imports vip, so
// the internal tests cannot use it). removed receives after each Remove.
type benchManager struct {
	mu      sync.Mutex
	addrs   []netip.Prefix
	removed chan struct{}
}

func (m *benchManager) Add(p netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.addrs, p) {
		m.addrs = append(m.addrs, p)
	}
	return nil
}

func (m *benchManager) Remove(p netip.Prefix) error {
	m.mu.Lock()
	m.addrs = slices.DeleteFunc(m.addrs, func(q netip.Prefix) bool { return q == p })
	m.mu.Unlock()
	m.removed <- struct{}{}
	return nil
}

func (m *benchManager) List() ([]netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.addrs), nil
}

func (m *benchManager) Changes() <-chan struct{} { return nil }

// BenchmarkTransitionToFirstFrame measures the internal path from
// Follower.Handle(MASTER) to the first announcement frame written on the
// (recording) packet conn: the hand-off to the Follower's goroutine, the
// installs through the AddrManager (in memory here; netlink adds tens of
// microseconds per address on a real host), the frame build and the write.
// It reports the median, the 99th percentile and the maximum (ns/op includes
// the demotion between rounds and is not the figure of interest).
func BenchmarkTransitionToFirstFrame(b *testing.B) {
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
	}{
		{"ipv4", []netip.Addr{testVIP4}},
		{"ipv6", []netip.Addr{testVIP6}},
		{"4+4", []netip.Addr{testVIP4, netip.MustParseAddr("192.0.2.11"), testVIP6, netip.MustParseAddr("2001:db8::11")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// armed is set before each promotion; the first frame written
			// afterwards disarms it and reports its time.
			var armed atomic.Bool
			sent := make(chan time.Time, 1)
			onSend := func() {
				if armed.CompareAndSwap(true, false) {
					sent <- time.Now()
				}
			}
			arpC, ip6C := &recConn{onSend: onSend}, &recConn{onSend: onSend}
			ifi := &net.Interface{Index: 7, Name: "eth7", HardwareAddr: testMAC}
			ann, err := newPacketAnnouncer(ifi, arpC, ip6C, func() (netip.Addr, error) { return testLL, nil }, nil)
			if err != nil {
				b.Fatal(err)
			}
			mgr := &benchManager{removed: make(chan struct{}, len(tc.addrs))}
			f, err := NewFollower(Config{VHID: 10, Addrs: Host(tc.addrs...), Manager: mgr, Announcer: ann, ReconcileInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			if err := f.Start(); err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var ds []time.Duration
			b.ResetTimer()
			for b.Loop() {
				armed.Store(true)
				t0 := time.Now()
				f.Handle(carp.Transition{VHID: 10, To: carp.Master})
				ds = append(ds, (<-sent).Sub(t0))

				b.StopTimer()
				f.Handle(carp.Transition{VHID: 10, To: carp.Backup})
				for range tc.addrs {
					<-mgr.removed
				}
				arpC.mu.Lock()
				arpC.writes = nil
				arpC.mu.Unlock()
				ip6C.mu.Lock()
				ip6C.writes = nil
				ip6C.mu.Unlock()
				b.StartTimer()
			}
			slices.Sort(ds)
			q := func(f float64) float64 { return float64(ds[int(f*float64(len(ds)-1))].Nanoseconds()) }
			b.ReportMetric(q(0.5), "p50-ns/first-frame")
			b.ReportMetric(q(0.99), "p99-ns/first-frame")
			b.ReportMetric(q(1), "max-ns/first-frame")
		})
	}
}

// BenchmarkFrames measures building one round's frames.
func BenchmarkFrames(b *testing.B) {
	b.Run("garp", func(b *testing.B) {
		for b.Loop() {
			if _, err := garpFrame(1, testMAC, testVIP4); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("na", func(b *testing.B) {
		for b.Loop() {
			if _, err := naFrame(testMAC, testLL, testVIP6, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

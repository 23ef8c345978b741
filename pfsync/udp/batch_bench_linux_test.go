//go:build linux

package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// threadCPU is the CPU time of the calling OS thread (lock the goroutine to
// it first): the sender's own work and the kernel's work in its system
// calls, which for loopback includes queuing the datagram to the receiver.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// processCPU is the CPU time, user and system, of the whole process.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drainedPeers opens n UDP sockets on addr whose datagrams are read and
// discarded until the benchmark ends, and returns their addresses.
func drainedPeers(b *testing.B, addr netip.Addr, n int) map[pfsync.NodeID]netip.AddrPort {
	peers := make(map[pfsync.NodeID]netip.AddrPort, n)
	for i := range n {
		var wg sync.WaitGroup
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			b.Skipf("no UDP on %v: %v", addr, err)
		}
		if err := c.SetReadBuffer(DefaultReadBuffer); err != nil {
			b.Fatal(err)
		}
		peers[pfsync.NodeID(i+2)] = c.LocalAddr().(*net.UDPAddr).AddrPort()
		wg.Go(func() {
			buf := make([]byte, 1<<16)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
			}
		})
		b.Cleanup(func() {
			if err := c.Close(); err != nil {
				b.Error(err)
			}
			wg.Wait()
		})
	}
	return peers
}

// BenchmarkBroadcast sends one 1400-byte frame per iteration to every
// peer (pfsync.Broadcast) over loopback UDP, to 1, 2 and 4 peers that read
// and discard what they get. cpu-ns/frame is the sending thread's CPU time
// (its system calls included) per frame.
func BenchmarkBroadcast(b *testing.B) {
	for _, fam := range []struct{ name, addr string }{{"IPv4", "127.0.0.1"}, {"IPv6", "::1"}} {
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/peers=%d", fam.name, n), func(b *testing.B) {
				addr := netip.MustParseAddr(fam.addr)
				u, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, 0), Peers: drainedPeers(b, addr, n)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { u.Close() })
				frame := make([]byte, 1400)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.SetBytes(int64(len(frame) * n))
				cpu0, t0 := threadCPU(b), time.Now()
				for b.Loop() {
					if err := u.Send(pfsync.Broadcast, frame); err != nil {
						b.Fatal(err)
					}
				}
				cpu, wall := threadCPU(b)-cpu0, time.Since(t0)
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
				b.ReportMetric(float64(b.N)/wall.Seconds(), "frames/s")
				if s := u.Stats(); s.Sent != uint64(b.N*n) || s.SendErrors != 0 {
					b.Fatalf("stats %+v, want %d sent", s, b.N*n)
				}
			})
		}
	}
}

// countTable counts inserts and closes done when it reached want.
type countTable struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
}

func newCountTable(want int) *countTable {
	return &countTable{want: want, done: make(chan struct{})}
}

func (c *countTable) Insert(*record.Record) error {
	c.mu.Lock()
	c.n++
	if c.n == c.want {
		close(c.done)
	}
	c.mu.Unlock()
	return nil
}
func (c *countTable) Update(*record.Record) error { return nil }
func (c *countTable) Delete(record.ID) error      { return nil }

// benchEngine starts a sealed engine on tr.
func benchEngine(b *testing.B, node pfsync.NodeID, tr pfsync.Transport, psk []byte, cfg pfsync.Config) *pfsync.Engine {
	s, err := seal.New(seal.Config{Node: node, Boot: 1, Keys: []seal.Key{{ID: 1, Secret: psk}}, SendKeyID: 1})
	if err != nil {
		b.Fatal(err)
	}
	cfg.Node, cfg.Transport, cfg.Sealer = node, tr, s
	if cfg.BulkTimeout == 0 {
		cfg.BulkTimeout = time.Minute
	}
	e, err := pfsync.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// waitFor fails the benchmark if done is not closed within a minute; the
// bound only catches a hang.
func waitFor(b *testing.B, what string, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%s: not done within a minute", what)
	}
}

// BenchmarkBulkSyncUDP measures the bulk sync of 100,000 records from one
// sealed engine to a joining one over loopback UDP: the wall time until the
// joining node's Table holds them all, and the CPU time of the process
// (both engines) meanwhile, and the frames the first node sent (bulk,
// heartbeats, retransmissions). "default" paces the bulk at the default
// BulkRate (2,000 frames a second); "fast" at 200,000.
func BenchmarkBulkSyncUDP(b *testing.B) {
	const n = 100_000
	for _, rate := range []struct {
		name       string
		rate, burs int
	}{{"default", 0, 0}, {"fast", 200_000, 64}} {
		b.Run(rate.name, func(b *testing.B) {
			addr := netip.MustParseAddr("127.0.0.1")
			psk, err := seal.GenerateKey()
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				b.StopTimer()
				// The joining node's socket opens only when it joins: the
				// frames the first node sends meanwhile do not wait in it.
				ports := freePorts(b, addr, 2)
				ta, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, ports[0]), Peers: map[pfsync.NodeID]netip.AddrPort{2: netip.AddrPortFrom(addr, ports[1])}})
				if err != nil {
					b.Fatal(err)
				}
				a := benchEngine(b, 1, ta, psk, pfsync.Config{BulkRate: rate.rate, BulkBurst: rate.burs})
				for i := range n {
					if err := a.Upsert(benchFlow(a.NewID(), i)); err != nil {
						b.Fatal(err)
					}
				}
				tab := newCountTable(n)
				tj, err := NewUnicast(UnicastConfig{Local: netip.AddrPortFrom(addr, ports[1]), Peers: map[pfsync.NodeID]netip.AddrPort{1: netip.AddrPortFrom(addr, ports[0])}})
				if err != nil {
					b.Fatal(err)
				}
				out0 := a.Stats().FramesOut
				b.StartTimer()
				cpu0, t0 := processCPU(b), time.Now()
				j := benchEngine(b, 2, tj, psk, pfsync.Config{Table: tab})
				waitFor(b, "bulk sync", tab.done)
				cpu, wall := processCPU(b)-cpu0, time.Since(t0)
				b.StopTimer()
				b.ReportMetric(wall.Seconds(), "s/bulk")
				b.ReportMetric(cpu.Seconds(), "cpu-s/bulk")
				b.ReportMetric(float64(a.Stats().FramesOut-out0), "frames-out")
				if err := errors.Join(j.Close(), a.Close()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkReplicateUDP measures a storm of new records from one sealed
// engine to its peers over loopback UDP (1 or 3 peers): one Upsert per
// iteration, until every peer's Table holds every record.
func BenchmarkReplicateUDP(b *testing.B) {
	for _, peers := range []int{1, 3} {
		b.Run(fmt.Sprintf("peers=%d", peers), func(b *testing.B) {
			addr := netip.MustParseAddr("127.0.0.1")
			psk, err := seal.GenerateKey()
			if err != nil {
				b.Fatal(err)
			}
			trs := cluster(b, addr, peers+1)
			a := benchEngine(b, 1, trs[0], psk, pfsync.Config{})
			var tabs []*countTable
			for i := range peers {
				tab := newCountTable(b.N)
				tabs = append(tabs, tab)
				benchEngine(b, pfsync.NodeID(i+2), trs[i+1], psk, pfsync.Config{Table: tab})
			}
			for deadline := time.Now().Add(time.Minute); a.Stats().PeersUp < peers || a.Demotion() != 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("the engines did not sync")
				}
			}
			recs := make([]record.Record, b.N)
			for i := range recs {
				recs[i] = benchFlow(a.NewID(), i)
			}
			b.ReportAllocs()
			cpu0, t0 := processCPU(b), time.Now()
			b.ResetTimer()
			for i := range recs {
				if err := a.Upsert(recs[i]); err != nil {
					b.Fatal(err)
				}
			}
			for _, tab := range tabs {
				waitFor(b, "replication", tab.done)
			}
			b.StopTimer()
			cpu, wall := processCPU(b)-cpu0, time.Since(t0)
			b.ReportMetric(float64(b.N)/wall.Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
		})
	}
}

//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/internal/realtime"
)

// Addresses of the topology.
var (
	vip      = netip.MustParseAddr("10.98.0.254")
	password = []byte("flap")
)

// nodeMain runs one group in the current namespace until SIGUSR1, printing
// its transitions and, as master, the delay of every timed advert, then a
// summary of its counters since SIGUSR2 (or the start).
func nodeMain(args []string) int {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	skew := fs.Int("skew", 25, "advskew (advbase 0)")
	master := fs.Bool("master", false, "start as master")
	garbage := fs.Int("garbage", 0, "goroutines allocating garbage")
	sched := fs.String("sched", "", "rt: the process under SCHED_FIFO")
	pace := fs.Duration("pace", 0, "pause of the garbage goroutines after each 2 MiB (0: none)")
	fs.Parse(args)

	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	emit := func(format string, a ...any) {
		outMu.Lock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
		outMu.Unlock()
	}

	tr, err := carp.NewRawTransport("eth0", &carp.RawConfig{Families: []carp.Family{carp.IPv4}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tt := &timedTransport{RawTransport: tr, interval: time.Duration(*skew) * time.Second / 256, delays: make([]int64, 0, 1<<20)}
	switch *sched {
	case "":
	case "rt":
		if *garbage > 0 && *pace <= 0 {
			fmt.Fprintln(os.Stderr, "-sched rt with -garbage needs -pace: a real-time goroutine that never sleeps takes a CPU from the host")
			return 2
		}
		// The whole node process SCHED_FIFO, as carpd --realtime or a
		// unit's CPUSchedulingPolicy=fifo makes a daemon: every thread,
		// including the ones that notice timers and packets.
		if _, err := realtime.FIFO(50); err != nil {
			fmt.Fprintln(os.Stderr, "-sched rt:", err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "-sched %q: want rt or nothing\n", *sched)
		return 2
	}
	g, err := carp.NewGroup(carp.Config{
		VHID: 1, AdvBase: 0, ZeroAdvBase: true, AdvSkew: uint8(*skew), Password: password,
		Addrs: []netip.Addr{vip}, StartAsMaster: *master, Transport: tt,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnTransition: func(t carp.Transition) {
			if t.From == carp.Master {
				tt.restart.Store(true)
			}
			emit("state %v %v %v", t.From, t.To, t.Reason)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := g.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for range *garbage {
		go churn(*pace)
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	var base carp.Stats
	var gc0 uint32
	for sig := range sigs {
		if sig == syscall.SIGUSR2 {
			base, gc0 = g.Stats(), numGC()
			tt.reset.Store(true)
			continue
		}
		break
	}
	st := g.Stats()
	sum := nodeSummary{
		Stats: nodeStats{
			Opackets: st.Opackets - base.Opackets, Ipackets: st.Ipackets - base.Ipackets,
			LateTimers: st.LateTimers - base.LateTimers, Unread: st.Unread - base.Unread,
		},
		GCCycles: numGC() - gc0,
	}
	g.Close()
	// Printed after Close: the loop no longer appends.
	for _, d := range tt.delays[min(int(tt.mark.Load()), len(tt.delays)):] {
		emit("delay %d", d)
	}
	b, _ := json.Marshal(sum)
	emit("summary %s", b)
	return 0
}

func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

// churn allocates, keeping a few megabytes live, so that the garbage
// collector is always running or about to: without pause, or with a pause
// after every 2 MiB (what a daemon with steady work of its own does; the
// only kind a real-time process may run). It stays on the process's
// threads: a thread of another priority inside a real-time Go process
// holds one of its processors while it waits for a CPU, and every
// stop-the-world pause waits for it (docs/sub-second.md).
func churn(pace time.Duration) {
	// Blocks above 64 KiB always go to the heap.
	live := make([][]byte, 32)
	for i := 0; ; i++ {
		live[i%len(live)] = make([]byte, 128<<10)
		runtime.KeepAlive(live)
		if pace > 0 && i%16 == 15 {
			time.Sleep(pace)
		}
	}
}

// timedTransport records, for each advert sent by the advert timer, how
// late it went out: the group re-arms its timer for one interval right
// after each advert, so an advert is due one interval after the previous
// one was sent. Adverts sent sooner than that (an answer to a worse master)
// are not timed and do not move the reference; after leaving MASTER the
// reference starts again. The delays go into a buffer allocated up front:
// recording allocates nothing and makes no system call on the loop.
type timedTransport struct {
	*carp.RawTransport
	interval time.Duration
	last     time.Time // end of the last timed send
	delays   []int64   // appended by the protocol loop only
	mark     atomic.Int64
	reset    atomic.Bool // SIGUSR2: delays from here on
	restart  atomic.Bool // left MASTER: the next advert starts a new reference
}

func (t *timedTransport) Send(f carp.Family, p []byte) error {
	start := time.Now()
	err := t.RawTransport.Send(f, p)
	end := time.Now()
	if t.reset.Swap(false) {
		t.mark.Store(int64(len(t.delays)))
	}
	if t.last.IsZero() || t.restart.Swap(false) {
		t.last = end
		return err
	}
	late := start.Sub(t.last.Add(t.interval))
	if late < -time.Millisecond {
		return err // not the timer's advert
	}
	t.last = end
	if len(t.delays) < cap(t.delays) {
		t.delays = append(t.delays, int64(max(late, 0)))
	}
	return err
}

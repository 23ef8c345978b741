package metrics_test

import (
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/metrics"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// signalTable is a MemTable that reports the creator of every insert.
type signalTable struct {
	pfsync.MemTable
	from chan uint32
}

func (t *signalTable) Insert(r *record.Record) error {
	if err := t.MemTable.Insert(r); err != nil {
		return err
	}
	t.from <- r.ID.Creator
	return nil
}

// benchNode builds what a busy node registers: 16 started master groups,
// each on its own segment (advertising every interval if not zero, and
// reporting each send to send if not nil), and an engine that has heard
// from 3 sync peers (each sent it a record), with a conntrack collector.
// It returns the registry and the groups.
func benchNode(b *testing.B, interval time.Duration, send func(carp.Family, []byte) error) (*prometheus.Registry, []*carp.Group) {
	b.Helper()
	reg := prometheus.NewRegistry()
	var groups []*carp.Group
	for vhid := 1; vhid <= 16; vhid++ {
		cfg := carp.Config{VHID: uint8(vhid), StartAsMaster: true}
		if interval > 0 {
			cfg.AdvBase, cfg.ZeroAdvBase, cfg.AdvSkew = 0, true, uint8(interval*256/time.Second)
		}
		port := carptest.NewSegment(uint64(vhid)).Join(carp.IPv4)
		cfg.Addrs, cfg.Password = vips, []byte("secret")
		cfg.Transport = port
		if send != nil {
			cfg.Transport = sendHook{port, send}
		}
		g, err := carp.NewGroup(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { g.Close() })
		groups = append(groups, g)
		reg.MustRegister(metrics.NewGroup(g))
	}

	network, err := pfsynctest.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	table := &signalTable{from: make(chan uint32, 16)}
	var es []*pfsync.Engine
	for i := 1; i <= 4; i++ {
		cfg := pfsync.Config{Node: pfsync.NodeID(i), Transport: network.Attach(pfsync.NodeID(i)), Table: &pfsync.MemTable{}, Insecure: true}
		if i == 1 {
			cfg.Table = table
		}
		e, err := pfsync.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		es = append(es, e)
	}
	for i, e := range es[1:] {
		if err := e.Upsert(flow(e.NewID(), uint16(i))); err != nil {
			b.Fatal(err)
		}
	}
	heard := map[uint32]bool{}
	for len(heard) < 3 {
		heard[<-table.from] = true
	}
	reg.MustRegister(metrics.NewEngine(es[0]), metrics.NewConntrack(&fakeConntrack{Tracked: 1000}))
	return reg, groups
}

// sendHook is a carp transport that reports every send.
type sendHook struct {
	*carptest.Port
	hook func(carp.Family, []byte) error
}

func (s sendHook) Send(f carp.Family, p []byte) error {
	if err := s.Port.Send(f, p); err != nil {
		return err
	}
	return s.hook(f, p)
}

// BenchmarkScrape measures one scrape of a node with 16 groups and 3 sync
// peers: Gather (the collectors and the registry) and the whole HTTP
// response in the text format.
func BenchmarkScrape(b *testing.B) {
	reg, _ := benchNode(b, 0, nil)
	b.Run("Gather", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("HTTP", func(b *testing.B) {
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		req := httptest.NewRequest("GET", "/metrics", nil)
		var size int
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			size = w.Body.Len()
		}
		b.ReportMetric(float64(size), "bytes/scrape")
	})
}

// BenchmarkAdvertGaps measures how late adverts go out, with no scrapes,
// with a scrape every 100 ms (150 times Prometheus' default rate) and with
// a loop scraping as fast as it can (a stress test: it keeps a core busy
// and the garbage collector working): 16 master groups
// advertising every 1/256·20 s (78 ms), the gap between consecutive
// adverts of each group compared with its interval. One op is one advert
// (of any group). Reported: the 50th and 99th percentile and the largest
// lateness, and the scrapes done meanwhile.
func BenchmarkAdvertGaps(b *testing.B) {
	for _, mode := range []struct {
		name  string
		every time.Duration // between scrapes; 0 is flat out
		off   bool
	}{{name: "idle", off: true}, {name: "scrape-every-100ms", every: 100 * time.Millisecond}, {name: "scrape-flat-out"}} {
		b.Run(mode.name, func(b *testing.B) {
			const interval = 20 * time.Second / 256
			var (
				mu    sync.Mutex
				last  = map[uint8]time.Time{}
				lates []time.Duration
				done  = make(chan struct{})
				want  = b.N
				armed bool
			)
			hook := func(_ carp.Family, p []byte) error {
				now := time.Now()
				var adv carp.Advertisement
				if err := adv.UnmarshalBinary(p); err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if !armed {
					return nil
				}
				if t, ok := last[adv.VHID]; ok && len(lates) < want {
					lates = append(lates, now.Sub(t)-interval)
					if len(lates) == want {
						close(done)
					}
				}
				last[adv.VHID] = now
				return nil
			}
			reg, _ := benchNode(b, interval, hook)
			stop := make(chan struct{})
			var scrapes int
			var wg sync.WaitGroup
			if !mode.off {
				wg.Go(func() {
					var tick <-chan time.Time
					if mode.every > 0 {
						t := time.NewTicker(mode.every)
						defer t.Stop()
						tick = t.C
					}
					for {
						if tick != nil {
							select {
							case <-stop:
								return
							case <-tick:
							}
						} else {
							select {
							case <-stop:
								return
							default:
							}
						}
						if _, err := reg.Gather(); err != nil {
							b.Error(err)
							return
						}
						scrapes++
					}
				})
			}
			b.ResetTimer()
			mu.Lock()
			armed = true
			mu.Unlock()
			<-done
			b.StopTimer()
			close(stop)
			wg.Wait()
			slices.Sort(lates)
			q := func(p float64) float64 { return float64(lates[int(p*float64(len(lates)-1))].Microseconds()) }
			b.ReportMetric(q(0.5), "p50-late-µs")
			b.ReportMetric(q(0.99), "p99-late-µs")
			b.ReportMetric(float64(lates[len(lates)-1].Microseconds()), "max-late-µs")
			b.ReportMetric(float64(scrapes), "scrapes")
			b.ReportMetric(0, "ns/op")
		})
	}
}

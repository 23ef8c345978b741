package chaos

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// addrWatcher lists the addresses of one node over an rtnetlink socket
// opened inside its namespace (the socket stays there; the list is taken
// from any goroutine).
type addrWatcher struct {
	n *node
	c *rtnetlink.Conn
}

func newAddrWatcher(n *node) (*addrWatcher, error) {
	w := &addrWatcher{n: n}
	err := n.ns.Do(func() error {
		var err error
		w.c, err = rtnetlink.Dial(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chaos: %s: rtnetlink: %w", n.name, err)
	}
	return w, nil
}

// held returns the addresses configured on the node's interfaces that are
// up and have carrier: an address on an interface without carrier (a
// pulled cable, a crashed box whose links are down) is not on the network.
func (w *addrWatcher) held() (map[netip.Addr]bool, error) {
	links, err := w.c.Link.List()
	if err != nil {
		return nil, err
	}
	running := map[uint32]bool{}
	for _, l := range links {
		if l.Attributes == nil || l.Flags&unix.IFF_UP == 0 || l.Flags&unix.IFF_RUNNING == 0 {
			continue
		}
		for _, ifn := range w.n.ifaces {
			if l.Attributes.Name == ifn {
				running[l.Index] = true
			}
		}
	}
	addrs, err := w.c.Address.List()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, a := range addrs {
		if !running[a.Index] || a.Attributes == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.Attributes.Address); ok {
			out[ip.Unmap()] = true
		}
	}
	return out, nil
}

// observe checks the invariants every Poll until stop is closed, and
// samples the daemons' memory every memEvery.
func (s *Soak) observe(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var ws []*addrWatcher
	for _, sys := range s.systems {
		for _, n := range sys.nodes {
			w, err := newAddrWatcher(n)
			if err != nil {
				s.mu.Lock()
				s.violate(sys, "observer", err.Error())
				s.mu.Unlock()
				return
			}
			defer w.c.Close()
			ws = append(ws, w)
		}
	}
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	lastMem := time.Time{}
	for {
		select {
		case <-stop:
			s.sampleMem()
			return
		case <-tick.C:
		}
		held := map[*system]map[netip.Addr][]*node{}
		for _, w := range ws {
			as, err := w.held()
			if err != nil {
				continue // the namespace is going away at the end
			}
			sys := w.n.sys
			if held[sys] == nil {
				held[sys] = map[netip.Addr][]*node{}
			}
			for a := range sys.vips {
				if as[a] {
					held[sys][a] = append(held[sys][a], w.n)
				}
			}
		}
		s.check(held)
		if time.Since(lastMem) >= memEvery {
			lastMem = time.Now()
			s.sampleMem()
		}
	}
}

// memEvery is the cadence of the memory samples.
const memEvery = 5 * time.Second

// warmUp is how long a daemon runs before its memory baseline is taken
// (start-up, bulk sync).
const warmUp = 30 * time.Second

// sampleMem reads VmRSS, VmHWM, Threads and the descriptor count of every
// running daemon from /proc.
func (s *Soak) sampleMem() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sys := range s.systems {
		for _, n := range sys.nodes {
			if !n.alive || len(n.mem) == 0 {
				continue
			}
			m := n.mem[len(n.mem)-1]
			smp, err := readMem(m.pid)
			if err != nil {
				continue
			}
			now := time.Now()
			if m.samples == 0 {
				m.first = smp
			}
			m.samples++
			m.last, m.lastAt = smp, now
			m.peakHWM = max(m.peakHWM, smp.HWM)
			if m.baseline == nil && now.Sub(m.started) >= warmUp {
				b := smp
				m.baseline, m.baselineAt = &b, now
			}
		}
	}
}

func readMem(pid int) (memSample, error) {
	var m memSample
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			m.RSS = n
		case "VmHWM":
			m.HWM = n
		case "Threads":
			m.Threads = n
		}
	}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return m, err
	}
	m.FDs = len(fds)
	return m, nil
}

// Growth bounds of a daemon that ran at least growthAfter past its
// baseline: RSS may grow by half plus 16 MiB (the Go heap doubles before it
// collects), threads by 16, descriptors by 32.
const growthAfter = 5 * time.Minute

// checkGrowth reports daemons whose memory, threads or descriptors grew
// beyond the bounds. Called with mu held.
func (s *Soak) checkGrowth() {
	for _, sys := range s.systems {
		for _, n := range sys.nodes {
			for _, m := range n.mem {
				if m.baseline == nil || m.lastAt.Sub(m.baselineAt) < growthAfter {
					continue
				}
				s.checks["flat-memory"]++
				b, l := *m.baseline, m.last
				if l.RSS > b.RSS*3/2+16<<10 || l.Threads > b.Threads+16 || l.FDs > b.FDs+32 {
					s.violate(sys, "flat-memory", fmt.Sprintf("%s (pid %d) grew over %v: from %v to %v",
						n.name, m.pid, m.lastAt.Sub(m.baselineAt).Round(time.Second), b, l))
				}
			}
		}
	}
}

package chaos

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gocarp/gocarp/internal/lab/netns"
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
// samples the daemons' memory every memEvery (on a goroutine of its own:
// a sample waits for the daemons' answers, the checks must not).
func (s *Soak) observe(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	memDone := make(chan struct{})
	go s.sampleLoop(stop, memDone)
	defer func() { <-memDone }()
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
	for {
		select {
		case <-stop:
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
	}
}

// sampleLoop samples the daemons' memory at once, every memEvery, and a
// last time when stop is closed.
func (s *Soak) sampleLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(memEvery)
	defer tick.Stop()
	for {
		s.sampleMem()
		select {
		case <-stop:
			s.sampleMem()
			return
		case <-tick.C:
		}
	}
}

// memEvery is the cadence of the memory samples.
const memEvery = 5 * time.Second

// warmUp is how long a daemon runs before its memory baseline is taken
// (start-up, bulk sync).
const warmUp = 30 * time.Second

// statusTimeout bounds the wait for a daemon's status line after SIGUSR1.
// A daemon answers within milliseconds; one frozen (SIGSTOP) right after
// the signal answers when it is continued, at most 6 s later.
const statusTimeout = 20 * time.Second

// sampleMem samples every daemon that runs (not frozen: it could not
// answer) and has started its groups, all at once: a daemon that is
// frozen, killed or slow to answer delays only its own sample.
func (s *Soak) sampleMem() {
	var wg sync.WaitGroup
	s.mu.Lock()
	for _, sys := range s.systems {
		for _, n := range sys.nodes {
			// A daemon that has logged a state change runs its
			// signal handler: SIGUSR1 before that could reach ip
			// netns exec, which it would kill, or a Go runtime that
			// has not yet asked for it, which would ignore it.
			if !n.alive || n.frozen || len(n.mem) == 0 || len(n.state) == 0 {
				continue
			}
			m, p := n.mem[len(n.mem)-1], n.proc
			wg.Go(func() { s.sampleProc(n, m, p) })
		}
	}
	s.mu.Unlock()
	wg.Wait()
}

// sampleProc reads VmRSS, VmHWM, Threads and the descriptor count of one
// daemon process from /proc, and its goroutine count from the status line
// it logs on SIGUSR1 (read from its output like every other line). A
// process that exits before it answers gives no sample; one that does not
// answer within statusTimeout is counted.
func (s *Soak) sampleProc(n *node, m *procMem, p *netns.Process) {
	smp, err := readMem(m.pid)
	if err != nil {
		return // it exited
	}
	now := time.Now()
	from := p.Len()
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		return
	}
	line, _, err := p.WaitLine(from, statusMark, statusTimeout)
	if err != nil {
		select {
		case <-p.Done():
		default:
			s.mu.Lock()
			s.unanswered++
			s.mu.Unlock()
			s.t.Logf("chaos: %s (pid %d) did not log its status within %v of SIGUSR1", n.name, m.pid, statusTimeout)
		}
		return
	}
	g, ok := goroutinesOf(line)
	if !ok {
		s.mu.Lock()
		s.violate(n.sys, "observer", fmt.Sprintf("%s: no goroutine count in its status line %q", n.name, line))
		s.mu.Unlock()
		return
	}
	smp.Goroutines = g
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.samples == 0 {
		m.first = smp
	}
	m.samples++
	m.last, m.lastAt = smp, now
	m.peakHWM = max(m.peakHWM, smp.HWM)
	m.peakGoroutines = max(m.peakGoroutines, g)
	if m.baseline == nil && now.Sub(m.started) >= warmUp {
		b := smp
		m.baseline, m.baselineAt = &b, now
	}
}

// statusMark picks the line both daemons log on SIGUSR1 (carpd's
// `msg=status state=...`, fwpair's `msg=status node=1 status="{...}"`);
// their lines at exit say "final status".
const statusMark = "msg=status "

// goroutineRE finds the goroutine count in a status line: carpd logs
// goroutines=N, fwpair a JSON status with "goroutines":N, quoted.
var goroutineRE = regexp.MustCompile(`\bgoroutines(?:=|\\":)(\d+)\b`)

// goroutinesOf returns the goroutine count of a daemon's status line.
func goroutinesOf(line string) (int, bool) {
	sm := goroutineRE.FindStringSubmatch(line)
	if sm == nil {
		return 0, false
	}
	g, err := strconv.Atoi(sm[1])
	return g, err == nil
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
// collects), threads by 16, descriptors by 32, goroutines by
// maxGoroutineGrowth.
const growthAfter = 5 * time.Minute

// maxGoroutineGrowth is how many goroutines more than at the baseline a
// daemon may have at its last sample. What legitimately comes and goes is
// a handful (a takeover commit, a control-socket connection, a sync peer's
// restart, the status answer itself); a goroutine leaked per advert (one a
// second) crosses 64 in about a minute, one leaked per event within a long
// soak (a 30 min soak injects well over a hundred events per system).
const maxGoroutineGrowth = 64

// checkGrowth reports daemons whose memory, threads, descriptors or
// goroutines grew beyond the bounds. Called with mu held.
func (s *Soak) checkGrowth() {
	for _, sys := range s.systems {
		for _, n := range sys.nodes {
			for _, m := range n.mem {
				if m.baseline == nil || m.lastAt.Sub(m.baselineAt) < growthAfter {
					continue
				}
				s.checks["flat-memory"]++
				b, l := *m.baseline, m.last
				if l.RSS > b.RSS*3/2+16<<10 || l.Threads > b.Threads+16 || l.FDs > b.FDs+32 ||
					l.Goroutines > b.Goroutines+maxGoroutineGrowth {
					s.violate(sys, "flat-memory", fmt.Sprintf("%s (pid %d) grew over %v: from %v to %v",
						n.name, m.pid, m.lastAt.Sub(m.baselineAt).Round(time.Second), b, l))
				}
			}
		}
	}
}

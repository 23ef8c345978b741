package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// injectReadBuffer is the receive buffer of the socket that writes into
// the kernel: it holds the answers to one pipelined batch (commitBatch):
// an error message per refused request and the last request's ack.
const injectReadBuffer = 1 << 20

// maxParked bounds the RELATED records waiting for their master.
const maxParked = 65536

// Backend replicates the Linux conntrack table of one network namespace.
// Create it with New. Its watcher (Start) reports the local table to the
// Sink; its Table methods (Insert, Update, Delete) write peers' records into
// the kernel, so a *Backend is the pfsync.Table of an engine that
// replicates conntrack.
type Backend struct {
	cfg  Config
	log  *slog.Logger
	logs logLimiter // repeated failures: one log per kind and interval
	t    *tracker
	tmo  timeouts // the kernel's timeouts: caps on injected lifetimes

	injMu  sync.Mutex // serialises kernel writes and the parked map
	inj    injector
	parked map[flowKey][]record.Record // RELATED records whose master is not in the kernel yet
	nPark  int

	lifeMu    sync.Mutex // orders Start and Close
	started   bool
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
	sink      Sink          // nil until Start
	events    *netlink.Conn // nil until Start
	dump      dumper        // nil until Start
	resyncReq chan chan error
	closeErr  error

	// The kernel's per-CPU drop and early_drop counters at the last
	// resync (watcher goroutine only).
	drops     map[uint16][2]uint32
	dropsSeen bool

	// The watcher's own flows waiting for their BE_LIBERAL write, and the
	// reports of the events handled since the first of them (watcher
	// goroutine only; see flushOwn).
	ownStrict []flowKey
	deferred  []action

	pause newPause // the event socket out of the NEW group during large commits

	lossResync time.Duration       // minLossResync; tests shorten it
	wrapDump   func(dumper) dumper // tests only: wraps the dump socket in Start
	onCatchUp  func()              // tests only: called when catchUpNew is done
}

// dumper is the socket the watcher dumps the table and reads the
// kernel's statistics with: a *ct.Conn, or a fake in tests.
type dumper interface {
	Dump(*ct.DumpOptions) ([]ct.Flow, error)
	DumpFilter(ct.Filter, *ct.DumpOptions) ([]ct.Flow, error)
	Stats() ([]ct.Stats, error)
	Close() error
}

// New validates cfg and opens the socket that writes into the kernel table.
// The watcher starts with Start. Close releases everything.
func New(cfg Config) (*Backend, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tmo, err := readTimeouts(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	c, err := dialNetfilter(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	// Acks of a pipelined commit wait in the receive buffer until read;
	// NETLINK_CAP_ACK keeps error acks from echoing the whole request.
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("conntrack: NETLINK_CAP_ACK: %w", err)
	}
	if err := setReadBuffer(c, injectReadBuffer); err != nil {
		c.Close()
		return nil, err
	}
	return newBackendConn(cfg, c, tmo), nil
}

// newBackendConn returns a Backend with the validated cfg writing through c
// (a ctnetlink socket, or a fake in tests), with the kernel timeouts tmo.
func newBackendConn(cfg Config, c *netlink.Conn, tmo timeouts) *Backend {
	f := cfg.Filter
	f.Ignore = slices.Clone(f.Ignore)
	f.IgnoreZones = slices.Clone(f.IgnoreZones)
	f.Protocols = slices.Clone(f.Protocols)
	return &Backend{
		cfg:        cfg,
		log:        cfg.Logger,
		t:          newTracker(&f, max(cfg.Resync, 0)),
		tmo:        tmo,
		inj:        injector{c: c},
		parked:     make(map[flowKey][]record.Record),
		done:       make(chan struct{}),
		resyncReq:  make(chan chan error),
		pause:      newPause{done: make(chan struct{}, 1)},
		lossResync: minLossResync,
	}
}

// Start subscribes to the kernel's conntrack events and starts the watcher,
// which reports this node's flows to sink: a full resync first (every
// current flow), then every NEW, UPDATE and DESTROY event in kernel order, a
// resync after an event overrun (ENOBUFS) and one every Config.Resync.
//
// The sink is given here rather than in Config because the engine and the
// backend refer to each other: the backend is the engine's Table
// (pfsync.Config.Table) and the engine is the backend's Sink. A Backend
// that is never started only writes peers' records. Start may be called
// once.
func (b *Backend) Start(sink Sink) error {
	if sink == nil {
		return errors.New("conntrack: Start with a nil Sink")
	}
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	switch {
	case b.closed:
		return fmt.Errorf("conntrack: Start after Close: %w", net.ErrClosed)
	case b.started:
		return errors.New("conntrack: Start called twice")
	}
	return b.start(sink)
}

func (b *Backend) start(sink Sink) error {
	ev, err := dialNetfilter(b.cfg.NetNS)
	if err != nil {
		return err
	}
	if err := setReadBuffer(ev, b.cfg.ReadBuffer); err != nil {
		ev.Close()
		return err
	}
	for _, g := range netfilter.GroupsCT {
		if err := ev.JoinGroup(uint32(g)); err != nil {
			ev.Close()
			return fmt.Errorf("conntrack: join event group %d: %w", g, err)
		}
	}
	d, err := ct.Dial(netlinkConfig(b.cfg.NetNS))
	if err != nil {
		ev.Close()
		return fmt.Errorf("conntrack: dial dump socket: %w", err)
	}
	var dd dumper = d
	if b.wrapDump != nil {
		dd = b.wrapDump(d)
	}
	b.events, b.dump, b.sink, b.started = ev, dd, sink, true
	items := make(chan item, 1024)
	b.wg.Add(2)
	go b.read(items)
	go b.process(items)
	return nil
}

// item is what the reader hands the processor: an event (its type in ev,
// its flow in flow: ev.Flow is nil), or the news that events were lost.
type item struct {
	ev   ct.Event
	flow ct.Flow
	lost error
}

// read receives events in kernel order (one reader: several would reorder
// them) and hands them to process.
func (b *Backend) read(items chan<- item) {
	defer b.wg.Done()
	defer close(items)
	r, err := newEventReader(b.events)
	if err != nil {
		b.log.Error("conntrack: watcher stops", "err", err)
		return
	}
	failures := 0
	// failed counts a failed read or an error in a datagram, hands the
	// news to process, and reports whether to go on.
	failed := func(err error) bool {
		failures++
		// Counted here, not when handled: a resync already under way
		// drops the news as superseded.
		b.t.count(func(s *Stats) {
			if errors.Is(err, unix.ENOBUFS) {
				s.Overruns++
			} else {
				s.Errors++
			}
		})
		if !errors.Is(err, unix.ENOBUFS) && failures > 100 {
			b.log.Error("conntrack: event socket keeps failing, watcher stops", "err", err)
			return false
		}
		select {
		case items <- item{lost: err}:
			return true
		case <-b.done:
			return false
		}
	}
	var stop bool
	var it item
	deliver := func(m netlink.Message) {
		if stop {
			return
		}
		ev, ok := decodeEvent(m, &it.flow)
		if !ok {
			ev = ct.Event{}
			if err := ev.Unmarshal(m); err != nil {
				b.t.count(func(s *Stats) { s.Errors++ })
				// A malformed or unknown message: the flow it described is
				// repaired by the resync this triggers.
				select {
				case items <- item{lost: fmt.Errorf("conntrack: decode event: %w", err)}:
				case <-b.done:
					stop = true
				}
				return
			}
			if ev.Flow == nil {
				return // an expectation: not replicated
			}
			it.flow = *ev.Flow
		}
		it.ev = ct.Event{Type: ev.Type}
		select {
		case items <- it:
		case <-b.done:
			stop = true
		}
	}
	for {
		n, err := r.read()
		if err != nil {
			select {
			case <-b.done:
				return
			default:
			}
			if errors.Is(err, unix.ENOBUFS) {
				// Empty the socket before the news reaches process, so
				// the resync it causes dumps only once the kernel
				// delivers events again (see eventReader.drop).
				if _, derr := r.drop(); derr != nil {
					b.log.Debug("conntrack: emptying the event socket after an overrun failed", "err", derr)
				}
			}
			if !failed(err) {
				return
			}
			continue
		}
		failures = 0
		for i := range n {
			if err := r.datagram(i, deliver); err != nil && !stop && !failed(err) {
				return
			}
			if stop {
				return
			}
		}
	}
}

// minLossResync is the shortest interval between two resyncs caused by
// lost events: under sustained overload every read may fail, and a resync
// per failure would keep the watcher dumping forever (conntrackd delays its
// overrun resync for the same reason).
const minLossResync = time.Second

func (b *Backend) process(items <-chan item) {
	defer b.wg.Done()
	var (
		cur     ct.Flow          // the flow of the event being handled
		last    time.Time        // end of the last resync
		retry   *time.Timer      // a postponed loss resync
		retryC  <-chan time.Time // retry's channel while armed
		own     *time.Timer      // the pending BE_LIBERAL writes' deadline
		ownC    <-chan time.Time // own's channel while armed
		rejoin  *time.Timer      // rejoining the NEW group after commits
		rejoinC <-chan time.Time // rejoin's channel while armed
	)
	flush := func() {
		if own != nil {
			own.Stop()
			own, ownC = nil, nil
		}
		b.flushOwn()
	}
	resync := func(why string) error {
		if retry != nil {
			retry.Stop()
			retry, retryC = nil, nil
		}
		// Whatever was read before the dump starts is older than the dump:
		// handling it afterwards could only bring back flows the dump no
		// longer has.
		for drained := false; !drained; {
			select {
			case _, ok := <-items:
				drained = !ok
			default:
				drained = true
			}
		}
		err := b.resync(why)
		last = time.Now()
		return err
	}
	logged := func(why string) {
		if err := resync(why); err != nil {
			b.log.Warn("conntrack: resync failed", "err", err)
		}
	}
	logged("start")
	var tick <-chan time.Time
	if b.cfg.Resync > 0 {
		tk := time.NewTicker(b.cfg.Resync)
		defer tk.Stop()
		tick = tk.C
	}
	defer func() {
		if retry != nil {
			retry.Stop()
		}
		if own != nil {
			own.Stop()
		}
		if rejoin != nil {
			rejoin.Stop()
		}
	}()
	for {
		select {
		case <-b.done:
			return
		case it, ok := <-items:
			if !ok {
				flush()
				return
			}
			if it.lost == nil {
				cur = it.flow
				ev := ct.Event{Type: it.ev.Type, Flow: &cur}
				pending := len(b.ownStrict) > 0
				b.handle(&ev)
				switch {
				case len(b.ownStrict) >= commitBatch || len(b.deferred) >= maxDeferred:
					flush()
				case !pending && len(b.ownStrict) > 0:
					own = time.NewTimer(ownLiberalDelay)
					ownC = own.C
				}
				continue
			}
			flush()
			// Under sustained overload every read fails: counted in
			// Stats.Overruns each, logged once in a while.
			b.logs.log(b.log, logEventsLost, slog.LevelWarn, "conntrack: events lost, resyncing", "err", it.lost)
			if wait := b.lossResync - time.Since(last); wait > 0 {
				if retry == nil {
					retry = time.NewTimer(wait)
					retryC = retry.C
				}
				continue
			}
			logged("lost events")
		case <-ownC:
			own, ownC = nil, nil
			flush()
		case <-retryC:
			flush()
			logged("lost events")
		case <-b.pause.done:
			if rejoin == nil {
				rejoin = time.NewTimer(newRejoinDelay)
				rejoinC = rejoin.C
			}
		case <-rejoinC:
			rejoin, rejoinC = nil, nil
			flush()
			if wait := b.rejoinNew(); wait > 0 {
				rejoin = time.NewTimer(wait)
				rejoinC = rejoin.C
			}
		case reply := <-b.resyncReq:
			flush()
			reply <- resync("requested")
		case <-tick:
			flush()
			logged("periodic")
		}
	}
}

func (b *Backend) handle(ev *ct.Event) {
	if ev.Flow == nil {
		return
	}
	b.t.count(func(s *Stats) { s.Events++ })
	switch ev.Type {
	case ct.EventNew, ct.EventUpdate:
		a, ok, err := b.t.observe(ev.Flow, time.Now(), b.sink.NewID)
		if err != nil {
			b.t.count(func(s *Stats) { s.Errors++ })
			b.log.Warn("conntrack: event not replicated", "err", err)
			return
		}
		if !b.cfg.StrictLocal {
			if k, ok := b.t.toLiberalize(ev.Flow); ok {
				b.ownStrict = append(b.ownStrict, k)
			}
		}
		if ok {
			b.report(a)
		}
	case ct.EventDestroy:
		if a, ok := b.t.destroyed(ev.Flow); ok {
			b.report(a)
		}
	}
}

// maxDeferred bounds the reports flushOwn holds back.
const maxDeferred = 1024

// ownLiberalDelay is how long the watcher collects its own flows that need
// BE_LIBERAL before it writes them, in one pipelined batch (or sooner, when
// commitBatch are waiting). At a few thousand new connections a second
// that is tens of flows per write instead of a netlink round trip per
// flow. It leaves the guarantee as it was: the flag matters only once a
// peer forwards part of the flow, and a peer learns of the flow only after
// the engine's flush delay (100 ms by default) anyway, so a flow younger
// than that is at the same risk with or without the wait.
const ownLiberalDelay = 10 * time.Millisecond

// report hands a to the Sink, or holds it back until flushOwn when an own
// flow's BE_LIBERAL write is pending, so the Sink hears of an event only
// after the writes its predecessors called for.
func (b *Backend) report(a action) {
	if len(b.ownStrict) > 0 {
		b.deferred = append(b.deferred, a)
		return
	}
	b.act(a)
}

// flushOwn makes the own flows handle found strict BE_LIBERAL, all in one
// pipelined batch, then makes the reports held back meanwhile. The
// watcher calls it ownLiberalDelay after the first of them was found, when
// commitBatch are waiting, and before anything else it does (a resync, a
// loss, stopping).
func (b *Backend) flushOwn() {
	if len(b.ownStrict) > 0 {
		b.liberalizeOwn(b.ownStrict)
		b.ownStrict = b.ownStrict[:0]
	}
	for i := range b.deferred {
		b.act(b.deferred[i])
		b.deferred[i] = action{}
	}
	b.deferred = b.deferred[:0]
}

func (b *Backend) act(a action) {
	var err error
	if a.del {
		err = b.sink.Delete(a.id)
	} else {
		err = b.sink.Upsert(a.rec)
	}
	if err != nil {
		b.t.count(func(s *Stats) { s.Errors++ })
		b.log.Warn("conntrack: sink refused a change", "err", err)
	}
}

// liberalizeOwn sets BE_LIBERAL on local TCP flows that carry data (see
// Config.StrictLocal for why). A failure is counted and logged once in a
// while; the flow is tried again at its next event or resync, and by
// Takeover.
func (b *Backend) liberalizeOwn(keys []flowKey) {
	if len(keys) == 0 {
		return
	}
	if _, err := b.setLiberal(context.Background(), keys); err != nil {
		b.t.count(func(s *Stats) { s.Errors++ })
		b.logs.log(b.log, logLiberal, slog.LevelWarn, "conntrack: own flows left with strict window tracking", "err", err)
	}
}

// resync is conntrackd's NetlinkOverrunResync: dump the whole table, report
// every flow that is new or changed, and delete the records of flows that
// are no longer there (mark and sweep).
func (b *Backend) resync(why string) error {
	gen := b.t.beginSweep()
	flows, err := b.dump.Dump(nil)
	if err != nil {
		b.t.count(func(s *Stats) { s.Errors++ })
		return fmt.Errorf("conntrack: resync (%s): dump: %w", why, err)
	}
	b.sweep(flows, gen)
	b.log.Debug("conntrack: resynced", "reason", why, "flows", len(flows))
	b.checkDrops()
	return nil
}

// checkDrops reads the kernel's conntrack statistics and reports what its
// full table cost since the last resync: packets of new flows dropped
// because no entry could be allocated (drop), and unassured entries
// evicted to make room (early_drop). Both are this namespace's counters;
// the first reading is only the baseline. Counted in Stats.KernelDrops,
// logged at most once per interval.
func (b *Backend) checkDrops() {
	st, err := b.dump.Stats()
	if err != nil {
		b.log.Debug("conntrack: kernel statistics unavailable", "err", err)
		return
	}
	if b.drops == nil {
		b.drops = make(map[uint16][2]uint32, len(st))
	}
	var drop, early uint64
	for _, c := range st {
		prev, ok := b.drops[c.CPUID]
		if ok || b.dropsSeen {
			// uint32 counters: the difference survives a wrap.
			drop += uint64(c.Drop - prev[0])
			early += uint64(c.EarlyDrop - prev[1])
		}
		b.drops[c.CPUID] = [2]uint32{c.Drop, c.EarlyDrop}
	}
	first := !b.dropsSeen
	b.dropsSeen = true
	if first || drop+early == 0 {
		return
	}
	var total uint64
	b.t.count(func(s *Stats) { s.KernelDrops += drop + early; total = s.KernelDrops })
	b.logs.log(b.log, logKernelDrops, slog.LevelWarn, "conntrack: kernel table full (nf_conntrack_max): new flows dropped, unassured flows evicted",
		"dropped", drop, "evicted", early, "kernel_drops", total)
}

func (b *Backend) sweep(flows []ct.Flow, gen uint64) {
	now := time.Now()
	var errs int
	var strict []flowKey
	for i := range flows {
		a, ok, err := b.t.observe(&flows[i], now, b.sink.NewID)
		if err != nil {
			errs++
			continue
		}
		if !b.cfg.StrictLocal {
			if k, ok := b.t.toLiberalize(&flows[i]); ok {
				strict = append(strict, k)
			}
		}
		if ok {
			b.act(a)
		}
	}
	b.liberalizeOwn(strict)
	if errs > 0 {
		b.t.count(func(s *Stats) { s.Errors += uint64(errs) })
	}
	for _, a := range b.t.endSweep(gen) {
		b.act(a)
	}
}

// Resync runs a full resync now, on the watcher's goroutine, and returns
// its error. It is what conntrackd's "-R" does; the watcher already runs
// one after every overrun and every Config.Resync.
func (b *Backend) Resync(ctx context.Context) error {
	b.lifeMu.Lock()
	started := b.started
	b.lifeMu.Unlock()
	if !started {
		return errors.New("conntrack: Resync before Start")
	}
	reply := make(chan error, 1)
	select {
	case b.resyncReq <- reply:
	case <-b.done:
		return fmt.Errorf("conntrack: resync: %w", net.ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("conntrack: resync: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("conntrack: resync: %w", ctx.Err())
	}
}

// Close stops the watcher and closes every socket. It is idempotent and
// returns when the backend's goroutines have exited (after a Sink call in
// progress returns). Entries written into the kernel stay there.
func (b *Backend) Close() error {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.closed {
		return b.closeErr
	}
	b.closed = true
	close(b.done)
	var errs []error
	if b.events != nil {
		errs = append(errs, b.events.Close())
	}
	b.wg.Wait()
	if b.dump != nil {
		errs = append(errs, b.dump.Close())
	}
	b.injMu.Lock()
	errs = append(errs, b.inj.c.Close())
	b.injMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		b.closeErr = fmt.Errorf("conntrack: close: %w", err)
	}
	return b.closeErr
}

// Stats returns a snapshot of the counters.
func (b *Backend) Stats() Stats {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	s := b.t.stats
	s.Tracked = len(b.t.byKey)
	return s
}

func (t *tracker) count(f func(*Stats)) {
	t.mu.Lock()
	f(&t.stats)
	t.mu.Unlock()
}

package confsync

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarp/gocarp/pfsync"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("confsync: node closed")

// Node publishes and subscribes to documents over one transport. Its
// methods are safe for concurrent use.
type Node struct {
	cfg     Config
	tr      pfsync.Transport
	seal    pfsync.Sealer
	session uint64 // random per run: data must echo it (no recording can)
	log     *slog.Logger

	in      chan inbound
	pokes   chan struct{} // a document was queued for the applier
	done    chan struct{}
	wg      sync.WaitGroup
	started atomic.Bool
	closing sync.Once

	mu        sync.Mutex
	closed    bool
	published map[string]*published       // documents this node publishes
	subs      map[string]*subscription    // documents this node receives
	peers     map[pfsync.NodeID]*peerView // what each subscriber reported
	demoted   bool
	stats     counters
}

// published is the current version of a document this node publishes.
type published struct {
	offer
	data []byte
}

// subscription is a subscriber's state of one document.
type subscription struct {
	name    string
	from    pfsync.NodeID
	applied appliedRecord
	offered uint64 // newest version offered by the publisher
	failed  uint64 // newest version whose apply failed
	err     string
	xfer    *transfer
	queued  *transfer // complete and verified, waiting for the applier
}

type peerView struct {
	heard time.Time
	docs  map[string]have
}

type inbound struct {
	from pfsync.NodeID
	msg  message
}

// New validates cfg and returns a Node; it starts nothing (see Start).
func New(cfg Config) (*Node, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	var sb [8]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return nil, fmt.Errorf("confsync: session: %w", err)
	}
	n := &Node{
		cfg:       c,
		tr:        c.Transport,
		seal:      c.Sealer,
		session:   binary.BigEndian.Uint64(sb[:]) | 1,
		log:       c.Logger,
		in:        make(chan inbound, 1024),
		pokes:     make(chan struct{}, 1),
		done:      make(chan struct{}),
		published: make(map[string]*published),
		subs:      make(map[string]*subscription),
		peers:     make(map[pfsync.NodeID]*peerView),
	}
	var applied map[string]appliedRecord
	if c.StateFile != "" {
		if applied, err = loadState(c.StateFile); err != nil {
			return nil, err
		}
	}
	for name, from := range c.Subscribe {
		n.subs[name] = &subscription{name: name, from: from, applied: applied[name]}
	}
	return n, nil
}

// Start starts the Node's goroutines: a subscriber reports what it has at
// once, which makes its publishers offer what is newer.
func (n *Node) Start() {
	if !n.started.CompareAndSwap(false, true) {
		return
	}
	n.wg.Add(3)
	go n.receive()
	go n.run()
	go n.applier()
}

// Close stops the Node, closes its transport and waits for its goroutines.
// It is idempotent. A transfer in progress is abandoned; nothing half
// received is applied.
func (n *Node) Close() error {
	var err error
	n.closing.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		close(n.done)
		if cerr := n.tr.Close(); cerr != nil {
			err = fmt.Errorf("confsync: close: %w", cerr)
		}
		n.wg.Wait()
	})
	return err
}

// Publish makes version of document name the one offered to subscribers.
// The name must be in Config.Publish and version above the one published
// before in this run (a host that restarts publishes its current version
// again; subscribers that have it fetch nothing). Publish copies data.
func (n *Node) Publish(name string, version uint64, data []byte) error {
	if !slices.Contains(n.cfg.Publish, name) {
		return fmt.Errorf("confsync: Publish %q: not in Config.Publish", name)
	}
	if version == 0 {
		return fmt.Errorf("confsync: Publish %q version 0 out of range 1-%d", name, uint64(1<<64-1))
	}
	if int64(len(data)) > maxDocSize {
		return fmt.Errorf("confsync: Publish %q: %d bytes beyond %d", name, len(data), int64(maxDocSize))
	}
	p := &published{offer: offer{name: name, version: version, size: uint64(len(data)), digest: sha256.Sum256(data)}, data: bytes.Clone(data)}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if old := n.published[name]; old != nil && version <= old.version {
		n.mu.Unlock()
		return fmt.Errorf("confsync: Publish %q version %d not above published version %d", name, version, old.version)
	}
	n.published[name] = p
	n.mu.Unlock()
	n.sendOffers(pfsync.Broadcast, []offer{p.offer})
	return nil
}

// receive reads, opens and decodes datagrams and hands them to run.
func (n *Node) receive() {
	defer n.wg.Done()
	for {
		d, err := n.tr.Receive()
		if err != nil {
			select {
			case <-n.done:
			default:
				n.log.Error("confsync: receive stopped", "err", err.Error())
			}
			return
		}
		from, plain, err := n.seal.Open(nil, d.Payload)
		if err != nil {
			n.countOpenError(err)
			continue
		}
		m, err := decode(plain)
		if err != nil {
			n.stats.tampered.Add(1)
			n.log.Warn("confsync: undecodable message", "peer", uint32(from), "err", err.Error())
			continue
		}
		n.stats.received.Add(1)
		select {
		case n.in <- inbound{from: from, msg: m}:
		case <-n.done:
			return
		}
	}
}

func (n *Node) countOpenError(err error) {
	switch {
	case errors.Is(err, pfsync.ErrReplay), errors.Is(err, pfsync.ErrStaleEpoch):
		n.stats.replayed.Add(1)
	default:
		n.stats.tampered.Add(1)
	}
}

// run is the Node's loop: every state change of transfers happens here.
func (n *Node) run() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.Interval)
	defer tick.Stop()
	rto := time.NewTimer(n.cfg.Retransmit)
	defer rto.Stop()
	n.sendHaves()
	for {
		select {
		case <-n.done:
			return
		case in := <-n.in:
			n.handle(in)
		case <-tick.C:
			n.sendOffers(pfsync.Broadcast, n.currentOffers())
			n.sendHaves()
		case <-rto.C:
			n.retransmit()
			rto.Reset(n.cfg.Retransmit)
		}
	}
}

func (n *Node) handle(in inbound) {
	switch in.msg.kind {
	case kindOffer:
		for _, o := range in.msg.offers {
			n.offered(in.from, o, false)
		}
	case kindHave:
		n.heard(in.from, in.msg.haves)
	case kindRequest:
		n.serve(in.from, in.msg)
	case kindData:
		n.data(in.from, in.msg)
	}
}

// currentOffers lists every published document.
func (n *Node) currentOffers() []offer {
	n.mu.Lock()
	defer n.mu.Unlock()
	os := make([]offer, 0, len(n.published))
	for _, p := range n.published {
		os = append(os, p.offer)
	}
	slices.SortFunc(os, func(a, b offer) int { return cmpString(a.name, b.name) })
	return os
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// room is how many plaintext bytes fit one datagram.
func (n *Node) room() int { return n.tr.MTU() - n.seal.Overhead() }

// send seals and sends one message.
func (n *Node) send(to pfsync.NodeID, plain []byte) {
	frame, err := n.seal.Seal(nil, plain)
	if err == nil {
		err = n.tr.Send(to, frame)
	}
	if err != nil {
		n.stats.sendErrors.Add(1)
		n.log.Warn("confsync: send failed", "peer", uint32(to), "err", err.Error())
	}
}

// sendOffers sends os in as many OFFER messages as the MTU needs.
func (n *Node) sendOffers(to pfsync.NodeID, os []offer) {
	for len(os) > 0 {
		size, k := headerLen+2, 0
		for k < len(os) && size+offerLen(os[k]) <= n.room() {
			size += offerLen(os[k])
			k++
		}
		n.send(to, appendOffers(nil, os[:k]))
		os = os[k:]
	}
}

// sendHaves reports every subscription to its publisher.
func (n *Node) sendHaves() {
	n.mu.Lock()
	by := make(map[pfsync.NodeID][]have)
	for _, s := range n.subs {
		by[s.from] = append(by[s.from], have{name: s.name, applied: s.applied.Version, failed: s.failed, err: s.err})
	}
	n.mu.Unlock()
	for to, hs := range by {
		slices.SortFunc(hs, func(a, b have) int { return cmpString(a.name, b.name) })
		for len(hs) > 0 {
			size, k := headerLen+8+2, 0
			for k < len(hs) && size+haveLen(hs[k]) <= n.room() {
				size += haveLen(hs[k])
				k++
			}
			n.send(to, appendHaves(nil, n.session, hs[:k]))
			hs = hs[k:]
		}
	}
}

// heard records a subscriber's report and offers it what it lacks at once.
func (n *Node) heard(from pfsync.NodeID, hs []have) {
	var owed []offer
	n.mu.Lock()
	pv := n.peers[from]
	if pv == nil {
		pv = &peerView{docs: make(map[string]have)}
		n.peers[from] = pv
	}
	pv.heard = time.Now()
	for _, h := range hs {
		p := n.published[h.name]
		if p == nil {
			continue
		}
		if len(h.err) > maxErrLen {
			h.err = h.err[:maxErrLen]
		}
		pv.docs[h.name] = h
		if h.applied < p.version && h.failed < p.version {
			owed = append(owed, p.offer)
		}
	}
	n.mu.Unlock()
	n.sendOffers(from, owed)
}

// serve answers a REQUEST with the chunks asked for, or with an offer of
// the current version when the request names another.
func (n *Node) serve(from pfsync.NodeID, m message) {
	n.mu.Lock()
	p := n.published[m.name]
	n.mu.Unlock()
	if p == nil {
		return
	}
	if m.version != p.version || m.digest != p.digest {
		n.sendOffers(from, []offer{p.offer})
		return
	}
	chunk := uint64(m.chunk)
	if dataFixedLen+len(m.name)+int(min(chunk, 1<<30)) > n.room() {
		n.log.Warn("confsync: peer asks for chunks beyond the MTU; every node must use the same MTU", "peer", uint32(from), "chunk", m.chunk)
		return
	}
	nchunks := max(1, (p.size+chunk-1)/chunk)
	// One request costs a bounded amount of sending, whatever it asks.
	budget := min(uint64(maxRequestedAtOnce), maxWindowBytes/chunk)
	buf := make([]byte, 0, n.room())
	for _, s := range m.spans {
		for i := uint64(s.start); i < uint64(s.start)+uint64(s.count) && i < nchunks && budget > 0; i++ {
			budget--
			off := i * chunk
			end := min(off+chunk, p.size)
			buf = appendData(buf[:0], m.session, p.offer, off, p.data[off:end])
			n.send(from, buf)
			n.stats.chunksSent.Add(1)
			n.stats.bytesSent.Add(end - off)
		}
	}
}

// offered handles an offer of o from node from. implicit is set when it
// comes from a DATA message answering this run's own request.
func (n *Node) offered(from pfsync.NodeID, o offer, implicit bool) {
	n.mu.Lock()
	s := n.subs[o.name]
	if s == nil || s.from != from {
		n.mu.Unlock()
		return
	}
	switch {
	case o.version < s.applied.Version:
		n.stats.older.Add(1)
	case o.version == s.applied.Version:
		if o.version > s.offered {
			s.offered = o.version
		}
	default:
		if o.version > s.offered {
			s.offered = o.version
		}
		if o.version <= s.failed {
			break
		}
		if s.xfer != nil && s.xfer.offer == o {
			break
		}
		if s.xfer != nil && o.version < s.xfer.version || s.queued != nil && o.version <= s.queued.version {
			break
		}
		if int64(o.size) > n.cfg.MaxSize {
			s.failed, s.err = o.version, fmt.Sprintf("confsync: %d bytes beyond Config.MaxSize %d", o.size, n.cfg.MaxSize)
			break
		}
		s.xfer = newTransfer(o, n.room()-dataFixedLen-len(o.name), n.cfg.WindowBytes, n.cfg.Retransmit)
		if !implicit {
			n.request(s)
		}
	}
	n.mu.Unlock()
	n.updateDemotion()
}

// request asks for the transfer's next chunks; called with n.mu held.
func (n *Node) request(s *subscription) {
	t := s.xfer
	spans := t.next()
	if len(spans) == 0 {
		return
	}
	t.sent = time.Now()
	n.send(s.from, appendRequest(nil, n.session, t.name, t.version, t.digest, uint32(t.chunk), spans))
}

// data handles a chunk.
func (n *Node) data(from pfsync.NodeID, m message) {
	if m.session != n.session {
		// Not an answer to this run's requests: a recording, or an
		// answer to a previous run.
		n.stats.replayed.Add(1)
		return
	}
	o := offer{name: m.name, version: m.version, size: m.size, digest: m.digest}
	n.offered(from, o, true)
	n.mu.Lock()
	s := n.subs[m.name]
	if s == nil || s.from != from || s.xfer == nil || s.xfer.offer != o {
		n.mu.Unlock()
		return
	}
	t := s.xfer
	if !t.put(m.offset, m.payload) {
		n.mu.Unlock()
		return
	}
	n.stats.chunksReceived.Add(1)
	if !t.done() {
		if t.outstanding <= t.window/2 {
			n.request(s)
		}
		n.mu.Unlock()
		return
	}
	s.xfer = nil
	n.mu.Unlock()
	if sha256.Sum256(t.buf) != t.digest {
		n.stats.tampered.Add(1)
		n.log.Warn("confsync: document digest mismatch, fetching again", "doc", t.name, "version", t.version, "peer", uint32(from))
		n.offered(from, t.offer, false)
		return
	}
	n.mu.Lock()
	s.queued = t // replaces an older version not applied yet
	n.mu.Unlock()
	select {
	case n.pokes <- struct{}{}:
	default:
	}
}

// applier hands complete, verified documents to the host, one at a time,
// off the loop: a slow Apply delays neither offers nor other transfers.
func (n *Node) applier() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-n.pokes:
		}
		for {
			n.mu.Lock()
			var s *subscription
			for _, x := range n.subs {
				if x.queued != nil {
					s = x
					break
				}
			}
			n.mu.Unlock()
			if s == nil {
				break
			}
			select {
			case <-n.done:
				return
			default:
			}
			n.apply(s)
		}
	}
}

// apply hands s's queued document to the host.
func (n *Node) apply(s *subscription) {
	n.mu.Lock()
	t := s.queued
	n.mu.Unlock()
	err := n.cfg.Apply(t.name, t.version, t.buf)
	n.mu.Lock()
	if s.queued == t {
		s.queued = nil
	}
	if err != nil {
		s.failed, s.err = t.version, fmt.Sprintf("confsync: apply %q version %d: %v", t.name, t.version, err)
		n.stats.applyErrors.Add(1)
		n.log.Error("confsync: apply failed; previous version stays in force", "doc", t.name, "version", t.version, "in_force", s.applied.Version, "err", err.Error())
	} else {
		s.applied = appliedRecord{Version: t.version, SHA256: hex.EncodeToString(t.digest[:])}
		s.err = ""
		n.stats.applied.Add(1)
		if n.cfg.StateFile != "" {
			docs := make(map[string]appliedRecord, len(n.subs))
			for name, x := range n.subs {
				if x.applied.Version != 0 {
					docs[name] = x.applied
				}
			}
			if serr := saveState(n.cfg.StateFile, docs); serr != nil {
				s.err = serr.Error()
				n.log.Error("confsync: applied but not persisted; a restart fetches it again", "doc", t.name, "version", t.version, "err", serr.Error())
			}
		}
	}
	n.mu.Unlock()
	n.updateDemotion()
	n.sendHaves()
}

// retransmit asks again for chunks of stalled transfers.
func (n *Node) retransmit() {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		t := s.xfer
		if t == nil || now.Sub(t.progress) < t.rto || now.Sub(t.sent) < t.rto {
			continue
		}
		t.rewind()
		t.rto = min(2*t.rto, n.cfg.Interval)
		n.stats.retransmits.Add(1)
		n.request(s)
	}
}

// updateDemotion raises or clears the demotion as subscriptions require.
func (n *Node) updateDemotion() {
	if n.cfg.Demoter == nil {
		return
	}
	n.mu.Lock()
	behind := false
	for _, s := range n.subs {
		if s.offered > s.applied.Version || s.failed > s.applied.Version {
			behind = true
		}
	}
	change := behind != n.demoted
	n.demoted = behind
	n.mu.Unlock()
	if !change {
		return
	}
	if behind {
		n.cfg.Demoter.SetDemotion(DemoteSource, n.cfg.DemoteBy)
	} else {
		n.cfg.Demoter.SetDemotion(DemoteSource, 0)
	}
}

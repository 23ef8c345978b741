package conntrack

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	ct "github.com/ti-mo/conntrack"
)

// tracker is the socket-free core of the backend: the map from kernel flow
// to record identity, the filter, and the decisions "what does this event
// (or this dump) mean for the Sink". The watcher feeds it events and dumps;
// the Table side registers the flows it injects. It is safe for concurrent
// use; it never calls the Sink itself (it returns actions), so no lock is
// held while the engine runs.
type tracker struct {
	mu      sync.Mutex
	filter  *Filter
	refresh time.Duration // re-report a local flow whose expiry moved later by more than this; 0 never
	byKey   map[flowKey]*entry
	byID    map[record.ID]*entry
	gen     uint64 // incremented by every injection, so a sweep spares entries newer than its dump
	stats   Stats
}

// entry is one flow the tracker knows.
type entry struct {
	key    flowKey
	rec    record.Record // local: last reported; remote: what the kernel reports after the injection
	remote bool          // injected from a peer's record
	gen    uint64        // tracker.gen when last injected (remote only)
	seen   time.Time     // when rec.Expire was read from (or written to) the kernel
	mark   bool          // present in the dump being swept

	destroying int // DESTROY events of the injector's delete-and-recreate still to come
	// statusKept: the last write kept the kernel's status bits (it would
	// have cleared SEEN_REPLY or ASSURED), so its echo carries the
	// kernel's bits, a superset of the written ones.
	statusKept bool
	// injected is what the Table last wrote for a local flow (a peer
	// changed this node's record): events matching it are its echo.
	injected *record.Record
	// pending: registered by the Table, its write not done yet. A sweep
	// spares it: its dump may have run before the write.
	pending bool
	// liberal: this local TCP flow is BE_LIBERAL in the kernel (set by the
	// watcher once the flow carried data, by a write of a peer's newer
	// state, or by Takeover), so none of them writes it again.
	liberal bool
}

// action is what the watcher tells the Sink.
type action struct {
	del bool
	id  record.ID     // with del
	rec record.Record // without del
}

func newTracker(f *Filter, refresh time.Duration) *tracker {
	return &tracker{filter: f, refresh: refresh, byKey: make(map[flowKey]*entry), byID: make(map[record.ID]*entry)}
}

// pass reports whether the filter selects f.
func (f *Filter) pass(fl *ct.Flow) bool {
	if f.AssuredOnly && !fl.Status.Assured() {
		return false
	}
	o, r := &fl.TupleOrig.IP, &fl.TupleReply.IP
	return f.passKey(fl.TupleOrig.Proto.Protocol, fl.Zone,
		[4]netip.Addr{o.SourceAddress, o.DestinationAddress, r.SourceAddress, r.DestinationAddress})
}

// passKey is pass without AssuredOnly, for a flow of protocol proto in
// zone whose original source, original destination, reply source and
// reply destination are addrs.
func (f *Filter) passKey(proto uint8, zone uint16, addrs [4]netip.Addr) bool {
	if len(f.Protocols) > 0 && !slices.Contains(f.Protocols, proto) {
		return false
	}
	if slices.Contains(f.IgnoreZones, zone) {
		return false
	}
	for _, a := range addrs {
		if nodeOnly(a) {
			return false
		}
	}
	for _, p := range f.Ignore {
		if p.Contains(addrs[0]) || p.Contains(addrs[2]) {
			return false
		}
	}
	return true
}

// nodeOnly reports whether a flow with the address a can only be traffic
// of the node itself, never forwarded: loopback, IPv6 link-local (which
// Linux never routes) or unspecified. Such a flow is meaningless on
// another node, and a peer's copy in this kernel would capture this node's
// own connections on those addresses (a NAT set-up on 127.0.0.1 redirects
// local clients). IPv4 link-local is left alone: Linux forwards it.
func nodeOnly(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsUnspecified() || a.Is6() && a.IsLinkLocalUnicast()
}

// passRecord reports whether the filter selects a peer's record: the
// checks of pass except AssuredOnly, on the record's key, and on the
// master tuple of a RELATED flow (its protocol and its original source,
// as pass would have judged the master; its reply tuple is not carried).
// A master extension that does not parse passes: the conversion refuses
// it with an error.
func (f *Filter) passRecord(r *record.Record) bool {
	k := &r.Key
	if !f.passKey(k.Proto, k.Zone, [4]netip.Addr{k.Orig.Src.Addr(), k.Orig.Dst.Addr(), k.Reply.Src.Addr(), k.Reply.Dst.Addr()}) {
		return false
	}
	d, ok := r.Extension(ExtMaster)
	if !ok {
		return true
	}
	var m MasterTuple
	if m.UnmarshalBinary(d) != nil {
		return true
	}
	src, dst := m.Orig.Src.Addr(), m.Orig.Dst.Addr()
	// The master's reply tuple is not carried, so Ignore judges only its
	// original source: its original destination may be a VIP with a
	// server behind it (a port forward), which pass would have accepted.
	return f.passKey(m.Proto, k.Zone, [4]netip.Addr{src, dst, src, dst})
}

// flowKeyOf returns the identity of a kernel flow.
func flowKeyOf(f *ct.Flow) flowKey {
	return flowKey{proto: f.TupleOrig.Proto.Protocol, zone: f.Zone, orig: tupleToRecord(&f.TupleOrig)}
}

// inherit fills in what an event leaves out. ctnetlink sends protocol info,
// labels, the helper and the master tuple only in the event that changed
// them (IPCT_PROTOINFO, IPCT_LABEL, IPCT_HELPER, IPCT_RELATED), so an update
// event without them means "unchanged", not "gone".
func inherit(rec *record.Record, old *record.Record, f *ct.Flow) {
	if f.ProtoInfo.TCP == nil && rec.Key.Proto == record.ProtoTCP {
		rec.Peers, rec.Timeout = old.Peers, old.Timeout
	}
	for _, t := range []record.ExtType{record.ExtLabels, record.ExtHelper, ExtMaster} {
		if _, ok := rec.Extension(t); ok {
			continue
		}
		if d, ok := old.Extension(t); ok {
			rec.Ext = append(rec.Ext, record.Ext{Type: t, Data: d})
		}
	}
}

// sameState reports whether two records of one flow differ only in what
// changes without being news: remaining lifetime, age and counters.
func sameState(a, b *record.Record) bool {
	a2, b2 := *a, *b
	a2.Expire, a2.Age, a2.Packets, a2.Bytes, a2.Version = 0, 0, [2]uint64{}, [2]uint64{}, 0
	b2.Expire, b2.Age, b2.Packets, b2.Bytes, b2.Version = 0, 0, [2]uint64{}, [2]uint64{}, 0
	return a2.Equal(&b2)
}

// echoMask are the status bits compared to decide whether an event of an
// injected flow is only the echo of the injection: CONFIRMED and the NAT
// bits are set by the injection itself.
const echoMask = statusSeenReply | statusAssured

// sameInjected reports whether the kernel's view of an injected flow still
// matches what was injected: same levels and the same SEEN_REPLY/ASSURED —
// or, when the write kept the kernel's status (kept), at least the
// injected ones.
func sameInjected(kernel, injected *record.Record, kept bool) bool {
	if kernel.Peers != injected.Peers {
		return false
	}
	k, i := kernel.Flags&echoMask, injected.Flags&echoMask
	return k == i || kept && k&i == i
}

// observe handles a flow the kernel reported, by a NEW or UPDATE event or in
// a dump, and returns what to tell the Sink. newID allocates identities of
// flows seen for the first time.
func (t *tracker) observe(f *ct.Flow, now time.Time, newID func() record.ID) (action, bool, error) {
	if !t.filter.pass(f) {
		t.mu.Lock()
		t.stats.Filtered++
		if e := t.byKey[flowKeyOf(f)]; e != nil {
			e.mark = true
		}
		t.mu.Unlock()
		return action{}, false, nil
	}
	key := flowKeyOf(f)
	// Convert before locking: the conversion is the costly part, and the
	// Table side takes the lock for every record it writes (a takeover
	// commit races the watcher's stream of echo events). The identity is
	// filled in under the lock.
	conv, convErr := flowToRecord(f, record.ID{Creator: 1}, 1, now)
	t.mu.Lock()
	e := t.byKey[key]
	t.mu.Unlock()
	if e == nil {
		if newID == nil {
			return action{}, false, nil
		}
		if convErr != nil {
			return action{}, false, convErr
		}
		// Allocate outside the lock: newID is the Sink's.
		rec := conv
		rec.ID = newID()
		t.mu.Lock()
		defer t.mu.Unlock()
		if e := t.byKey[key]; e != nil {
			// An injection registered the key meanwhile; let the next
			// event or resync handle it.
			e.mark = true
			return action{}, false, nil
		}
		e = &entry{key: key, rec: rec, seen: now, mark: true}
		t.byKey[key], t.byID[rec.ID] = e, e
		t.stats.Upserts++
		return action{rec: rec.Clone()}, true, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey[key] != e {
		return action{}, false, nil // deleted meanwhile
	}
	e.mark = true
	if convErr != nil {
		return action{}, false, convErr
	}
	rec := conv
	rec.ID, rec.Version = e.rec.ID, e.rec.Version
	inherit(&rec, &e.rec, f)
	if e.remote {
		if sameInjected(&rec, &e.rec, e.statusKept) && !t.refreshed(e, &rec, now) {
			if e.statusKept {
				// The kernel's bits, from now on the ones to compare.
				e.rec.Flags, e.statusKept = rec.Flags, false
			}
			t.stats.Echoes++
			return action{}, false, nil
		}
		// Traffic changed (or kept alive) a flow a peer created: this
		// node took over. Report it under the peer's identity and
		// version; the merge on every node advances the peer's record,
		// and the creator's kernel copy with it.
		e.rec, e.seen = rec, now
		t.stats.Upserts++
		return action{rec: rec.Clone()}, true, nil
	}
	if e.injected != nil && sameInjected(&rec, e.injected, e.statusKept) {
		// The echo of a peer's change written by the Table: one event
		// per write.
		rec.Version = e.rec.Version
		e.rec, e.seen, e.injected, e.statusKept = rec, now, nil, false
		t.stats.Echoes++
		return action{}, false, nil
	}
	// Otherwise an event older than the write (its echo is still to
	// come, so injected stays) or a change since: judged as any local
	// event.
	if sameState(&rec, &e.rec) && !t.refreshed(e, &rec, now) {
		return action{}, false, nil
	}
	rec.Version = e.rec.Version + 1
	e.rec, e.seen = rec, now
	t.stats.Upserts++
	return action{rec: rec.Clone()}, true, nil
}

// toLiberalize reports whether the flow f, just observed, is a local TCP
// flow that carries data (ESTABLISHED to LAST_ACK) and still has strict
// window tracking, and returns its key: the backend then sets BE_LIBERAL on
// it (Backend.liberalizeOwn). When f carries the TCP flags, they say whether
// the flow is liberal already. Flows the Filter ignores are not tracked, so
// they keep strict tracking.
func (t *tracker) toLiberalize(f *ct.Flow) (flowKey, bool) {
	if f.TupleOrig.Proto.Protocol != record.ProtoTCP {
		return flowKey{}, false
	}
	key := flowKeyOf(f)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byKey[key]
	if e == nil || e.remote {
		return flowKey{}, false
	}
	state := e.rec.Timeout // the TCP state last reported
	if tcp := f.ProtoInfo.TCP; tcp != nil {
		// The kernel's flags, when reported, are the truth: a flow
		// created through ctnetlink starts liberal, and anyone may clear
		// the flag again.
		e.liberal = uint8(tcp.OriginalFlags>>8)&tcpFlagBeLiberal != 0 && uint8(tcp.ReplyFlags>>8)&tcpFlagBeLiberal != 0
		state = tcp.State
	}
	if e.liberal {
		return flowKey{}, false
	}
	switch state {
	case tcpEstablished, tcpFinWait, tcpCloseWait, tcpLastAck:
		return key, true
	}
	return flowKey{}, false
}

// refreshed reports whether a local flow must be re-reported because
// packets refreshed its timeout without an event: the copies on the peers
// (and what a peer injected into its kernel) expire at the deadline last
// reported, which is less than two resync intervals away, while the
// kernel's deadline moved later by at least half an interval. Flows with
// long timeouts (established TCP) are therefore not re-sent on every
// resync, only when their peers' copies would otherwise run out.
func (t *tracker) refreshed(e *entry, rec *record.Record, now time.Time) bool {
	if t.refresh <= 0 {
		return false
	}
	old := e.seen.Add(time.Duration(e.rec.Expire) * time.Second)
	cur := now.Add(time.Duration(rec.Expire) * time.Second)
	return old.Sub(now) < 2*t.refresh && cur.Sub(old) >= t.refresh/2
}

// destroyed handles a DESTROY event.
func (t *tracker) destroyed(f *ct.Flow) (action, bool) {
	key := flowKeyOf(f)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byKey[key]
	if e == nil {
		return action{}, false
	}
	if e.destroying > 0 {
		// The injector deleted it to create it again.
		e.destroying--
		return action{}, false
	}
	// Deletes the backend makes for the engine (Table.Delete, Purge)
	// forget the entry first, so this flow ended in the kernel: timed
	// out, reset, or deleted by an administrator. Like pfsync, report
	// it whoever created it — a flow a peer created ends here after a
	// takeover, and its record must not outlive it.
	t.forget(e)
	t.stats.Deletes++
	return action{del: true, id: e.rec.ID}, true
}

func (t *tracker) forget(e *entry) {
	delete(t.byKey, e.key)
	delete(t.byID, e.rec.ID)
}

// beginSweep clears the marks before a dump and returns the generation the
// dump starts at.
func (t *tracker) beginSweep() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.byKey {
		e.mark = false
	}
	t.stats.Resyncs++
	return t.gen
}

// endSweep removes every entry the dump did not contain (observe marked the
// others) and returns the deletes of local flows. Injected entries newer than
// the dump are spared: their flows may have been created after it.
func (t *tracker) endSweep(gen uint64) []action {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []action
	for _, e := range t.byKey {
		if e.mark || e.pending || (e.remote && e.gen > gen) {
			continue
		}
		t.forget(e)
		if !e.remote {
			t.stats.Deletes++
			out = append(out, action{del: true, id: e.rec.ID})
		}
	}
	return out
}

// registration is what register changed, for undo.
type registration struct {
	e     *entry
	old   *entry // the injected entry e replaced, nil if none
	saved entry  // *old (or *e for an own record) before the change
	own   bool   // e is this node's own flow, updated by a peer
}

// register records that the flow key is about to be written with the
// canonical record canon. Three cases:
//
//   - a peer's record: the entry becomes (or stays) an injected one;
//   - this node's own record, changed by a peer (pfsync: any node may
//     advance a state, and a new master does): the local entry stays local
//     and remembers what is written, so the kernel's echo is not reported
//     as a local change;
//   - another record on the tuple of a local flow (both nodes saw the same
//     flow): nothing is written and register returns false. The Table
//     turns such a record into an update of the local one first
//     (conflicting), so this only happens when the local flow appeared
//     in between.
func (t *tracker) register(key flowKey, canon record.Record, now time.Time) (registration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byKey[key]
	if old != nil && !old.remote {
		if old.rec.ID != canon.ID {
			t.stats.Conflicts++
			return registration{}, false
		}
		reg := registration{e: old, saved: *old, own: true}
		c := canon
		old.injected = &c
		old.liberal = old.liberal || canon.Key.Proto == record.ProtoTCP // injectFlags
		old.rec.Version = max(old.rec.Version, canon.Version)
		old.rec.Expire, old.seen = canon.Expire, now
		return reg, true
	}
	var reg registration
	if old != nil {
		reg.old, reg.saved = old, *old
		t.forget(old)
	}
	if prev := t.byID[canon.ID]; prev != nil {
		t.forget(prev) // same record under another key
	}
	t.gen++
	reg.e = &entry{key: key, rec: canon, remote: true, gen: t.gen, seen: now, mark: true, pending: true}
	t.byKey[key], t.byID[canon.ID] = reg.e, reg.e
	return reg, true
}

// regHooks are the writeHooks of one registered write.
type regHooks struct {
	t   *tracker
	reg registration
}

func (h regHooks) keepingStatus() { h.t.keepingStatus(h.reg) }
func (h regHooks) recreating()    { h.t.recreating(h.reg) }

// keepingStatus notes that the injector is about to update reg's flow
// without its status bits, so the echo carries the kernel's.
func (t *tracker) keepingStatus(reg registration) {
	t.mu.Lock()
	reg.e.statusKept = true
	t.mu.Unlock()
}

// recreating notes that the injector is about to delete reg's flow to
// create it again, so its DESTROY event is not a delete.
func (t *tracker) recreating(reg registration) {
	t.mu.Lock()
	reg.e.destroying++
	t.mu.Unlock()
}

// undo reverts a registration whose write failed; restore puts back the
// entry it replaced (the kernel still holds it).
func (t *tracker) undo(reg registration, restore bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey[reg.e.key] != reg.e {
		return
	}
	if reg.own {
		if restore {
			reg.e.injected, reg.e.rec, reg.e.liberal = reg.saved.injected, reg.saved.rec, reg.saved.liberal
		} else {
			t.forget(reg.e)
		}
		return
	}
	t.forget(reg.e)
	if restore && reg.old != nil {
		r := reg.saved
		t.byKey[r.key], t.byID[r.rec.ID] = &r, &r
	}
}

// conflicting handles a peer's record rec whose tuple is a flow this node
// created under another identity (both nodes saw the flow: asymmetric
// routing, or the peer forwarded it before its takeover commit was done).
// The local record stays authoritative — adopting the peer's would give
// one flow two identities in the cluster — but the kernel entry must not
// stay behind the peer's newer view, or packets the peer's traffic
// advanced are dropped as INVALID. So the local record joined with the
// peer's (joinConflict) is returned, under the local identity and
// version, to be written as an update of this node's own record: with
// BE_LIBERAL, without touching tuples or NAT, and with its kernel event
// recognised as an echo, so it is not reported back and two nodes holding
// one flow under two identities cannot ping-pong updates. ok is false when
// the tuple is not a local flow of another identity.
func (t *tracker) conflicting(rec *record.Record, now time.Time) (record.Record, bool) {
	key := keyOf(&rec.Key)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byKey[key]
	if e == nil || e.remote || e.rec.ID == rec.ID {
		return record.Record{}, false
	}
	t.stats.Conflicts++
	local := e.rec
	elapsed := uint32(min(max(now.Sub(e.seen), 0)/time.Second, 1<<32-1))
	local.Expire -= min(local.Expire, elapsed)
	return joinConflict(&local, rec), true
}

// joinConflict returns local advanced by what remote, another record of the
// same kernel flow, knows better: per direction the more advanced TCP
// level (with its window scale) and the conntrack state that goes with it,
// the longer remaining lifetime, SEEN_REPLY and ASSURED if either has
// them. Identity, version, key and extensions stay local's: the write is
// an update of the local entry, never a re-keying.
func joinConflict(local, remote *record.Record) record.Record {
	j := local.Clone()
	for d := range j.Peers {
		if remote.Peers[d].Level > j.Peers[d].Level {
			j.Peers[d] = remote.Peers[d]
			j.Timeout = remote.Timeout
		}
	}
	j.Expire = max(j.Expire, remote.Expire)
	j.Flags |= remote.Flags & (statusSeenReply | statusAssured)
	return j
}

// current reports whether the kernel holds the peer's record canon already
// as it is: the entry was injected from the same record, in the same
// version and state (counters and age aside, which are not written). A
// record committed in a batch and handed over again one by one (the
// engine's takeover commit after the embedder's Commit) then costs no
// netlink round trip.
func (t *tracker) current(key flowKey, canon *record.Record) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byKey[key]
	if e == nil || !e.remote || e.rec.ID != canon.ID {
		return false
	}
	a, b := e.rec, *canon
	a.Age, a.Packets, a.Bytes = 0, [2]uint64{}, [2]uint64{}
	b.Age, b.Packets, b.Bytes = 0, [2]uint64{}, [2]uint64{}
	if !a.Equal(&b) {
		return false
	}
	t.stats.Unchanged++
	return true
}

// written notes that reg's write reached the kernel. Until then the entry
// is pending, and it gets a new generation now, not only when registered:
// a resync whose dump ran between the registration and the write did not
// see the flow, and must spare it rather than forget it (its echo would
// then look like a new local flow). Commit registers a whole batch before
// writing it, which makes that window wide.
func (t *tracker) written(reg registration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reg.e.remote && t.byKey[reg.e.key] == reg.e {
		t.gen++
		reg.e.gen, reg.e.pending = t.gen, false
	}
}

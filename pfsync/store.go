package pfsync

import (
	"log/slog"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/wire"
)

// records is the engine's record store: every live record in its wire
// encoding (the full-record element body, typically 60-80 bytes for an IPv4
// TCP flow instead of the 264 bytes of a record.Record), appended to large
// chunks of an arena and indexed by ID, with the flags of each entry, the
// tombstones of deleted records and the counts Stats reports. The index
// then holds small values without pointers, which the garbage collector
// never scans: with a million records that is the difference between a
// bulk sync dominated by GC and one that is not. Replaced encodings leave
// garbage in their chunk; the arena is compacted when garbage outweighs the
// live bytes.
//
// It knows nothing of peers, frames or the Table: the engine decides what
// a change means and tells the store. Used under Engine.mu.
type records struct {
	store       map[record.ID]entry
	arena       arena
	tombs       map[record.ID]tomb
	node        uint32        // this node: its records count in local
	t0          time.Time     // origin of the entries' coarse clock (entry.at)
	tombTTL     time.Duration // how long a tombstone is remembered at least
	local       int           // live records created by this node
	external    int           // entries flagged fDirty (Stats.External)
	compactions uint64        // arena compactions (they move every encoding)
	enc         []byte        // encode's buffer
	log         *slog.Logger
}

func newRecords(node uint32, t0 time.Time, tombTTL time.Duration, log *slog.Logger) records {
	return records{
		store:   make(map[record.ID]entry),
		tombs:   make(map[record.ID]tomb),
		node:    node,
		t0:      t0,
		tombTTL: tombTTL,
		log:     log,
	}
}

// entry is a record held by the store, stored in its wire encoding.
type entry struct {
	ref   uint64 // the encoding in the arena
	ver   uint64
	n     uint32 // its length
	at    uint32 // when the stored Expire was current: records.clock seconds
	peer  uint16 // when a peer's change was last applied (fPeer): records.clock seconds, low 16 bits
	flags eflag
}

type eflag uint8

const (
	fAnnounced eflag = 1 << iota // peers may know the record
	fCommitted                   // the Table holds some version of it
	fDirty                       // the Table's copy is older than data, or the last Table call failed
	fLocal                       // upserted by the embedder in this life (the dataplane is its home)
	fFull                        // creator-owned fields changed since the last send: no compressed update
	fPeer                        // entry.peer is set
)

// tomb remembers that a record was deleted at version ver, so that a copy
// of that version or older, delivered late or retransmitted, cannot
// resurrect it (the gap pfsync leaves open: a late update of a deleted
// state is an insert); a newer version — the owner kept the record alive —
// is not suppressed. It lives at least Config.TombstoneTTL, which covers
// retransmissions and reordering; after that a late copy can only come
// from a bulk, which carries the current state anyway. 16 bytes, no
// pointer, and iterable: bulk transfers send the tombstones too.
type tomb struct {
	ver     uint64
	expires int64 // unix nanoseconds
}

// covers reports whether the tombstone suppresses a copy with version v: a
// delete with version t.ver beats every copy with version ≤ t.ver.
func (t tomb) covers(v uint64) bool { return v <= t.ver }

// peerRecent is how long after a peer's change the embedder's next change
// of the same record leaves at once instead of after FlushDelay: both nodes
// are seeing the flow (active/active, or just after a takeover), and the
// sooner each hears the other the sooner they agree (pfsync flushes a
// state updated less than 2 seconds after it applied a peer's update).
const peerRecent = 2 // seconds

// peerChanged notes that a peer's change of ent was applied now.
func (s *records) peerChanged(ent *entry, now time.Time) {
	ent.peer = uint16(s.clock(now))
	ent.flags |= fPeer
}

// peerRecently reports whether a peer's change of ent was applied less
// than peerRecent seconds ago (to within the clock's second).
func (s *records) peerRecently(ent entry, now time.Time) bool {
	return ent.flags&fPeer != 0 && uint16(s.clock(now))-ent.peer < peerRecent
}

// clock returns the store's coarse clock: whole seconds since t0. An
// entry remembers when its lifetime (Expire, the remaining seconds as
// reported or received) was current in 4 bytes; the lifetime is aged by
// the clock's difference when the record is committed to the Table or
// sent, so a record that waited in the engine leaves with what remains of
// its life. Whole seconds make the age exact to within one second.
func (s *records) clock(now time.Time) uint32 {
	d := now.Sub(s.t0)
	if d <= 0 {
		return 0
	}
	return uint32(d / time.Second)
}

// elapsed returns the whole seconds since ent's lifetime was current.
func (s *records) elapsed(ent entry, now time.Time) uint32 {
	c := s.clock(now)
	if c <= ent.at {
		return 0
	}
	return c - ent.at
}

// aged returns expire reduced by elapsed seconds, not below 1; 0 (no
// lifetime) stays 0.
func aged(expire, elapsed uint32) uint32 {
	switch {
	case expire == 0 || elapsed == 0:
		return expire
	case expire > elapsed:
		return expire - elapsed
	}
	return 1
}

// lifeFrom sets ent.at to now when the stored lifetime changed from old's
// (a newer version, or another Expire or Timeout won the merge), and keeps
// it when the same lifetime was merely confirmed.
func (s *records) lifeFrom(ent *entry, old, merged *record.Record, now time.Time) {
	if old == nil || merged.Version != old.Version || merged.Expire != old.Expire || merged.Timeout != old.Timeout {
		ent.at = s.clock(now)
	}
}

// data returns the encoding of ent. It stays valid (the chunk is never
// overwritten), but the caller must not keep it across a compaction if it
// wants the memory back.
func (s *records) data(ent entry) []byte { return s.arena.get(ent.ref, ent.n) }

// setData stores b as the encoding of ent, releasing the previous one.
func (s *records) setData(ent *entry, b []byte) {
	if ent.n > 0 {
		s.arena.live -= int(ent.n)
	}
	ent.ref, ent.n = s.arena.add(b), uint32(len(b))
}

// created counts a new entry of id in local if this node created it.
func (s *records) created(id record.ID) {
	if id.Creator == s.node {
		s.local++
	}
}

// remove forgets the entry ent of id: its index slot, its encoding and its
// place in the counts. The caller decides what the removal means (a
// tombstone, a delete sent or a Table call).
func (s *records) remove(id record.ID, ent entry) {
	delete(s.store, id)
	s.dirtied(ent.flags, 0)
	if id.Creator == s.node {
		s.local--
	}
	s.arena.live -= int(ent.n)
	s.maybeCompact()
}

// dirtied keeps the count of dirty entries (Stats.External) as an entry's
// flags change from was to now (0 for an entry added or removed).
func (s *records) dirtied(was, now eflag) {
	switch {
	case was&fDirty == 0 && now&fDirty != 0:
		s.external++
	case was&fDirty != 0 && now&fDirty == 0:
		s.external--
	}
}

// maybeCompact copies the live encodings to fresh chunks once garbage
// outweighs them (and is worth the copy).
func (s *records) maybeCompact() {
	garbage := s.arena.total - s.arena.live
	if garbage < 4*chunkSize || garbage < s.arena.live {
		return
	}
	old := s.arena
	s.arena = arena{}
	s.compactions++
	for id, ent := range s.store {
		ent.ref = s.arena.add(old.get(ent.ref, ent.n))
		s.store[id] = ent
	}
}

// encode encodes r (validated) into the store's scratch buffer.
func (s *records) encode(r *record.Record) []byte {
	s.enc = s.enc[:0]
	b, err := wire.AppendRecord(s.enc, r)
	if err != nil {
		s.log.Error("pfsync: encoding a record", "id", r.ID.String(), "err", err)
	}
	s.enc = b
	return b
}

// addTomb remembers the delete of id at ver for tombTTL after now. A second
// delete of the same id keeps the higher version and the later expiry.
func (s *records) addTomb(id record.ID, ver uint64, now time.Time) {
	exp := now.Add(s.tombTTL).UnixNano()
	if t, ok := s.tombs[id]; ok {
		ver = max(ver, t.ver)
		exp = max(exp, t.expires)
	}
	s.tombs[id] = tomb{ver: ver, expires: exp}
}

// expireTombs forgets the tombstones whose time has come. A tombstone is
// honoured until it is forgotten here, so it lives between TombstoneTTL and
// the scan interval more.
func (s *records) expireTombs(now time.Time) {
	n := now.UnixNano()
	for id, t := range s.tombs {
		if t.expires <= n {
			delete(s.tombs, id)
		}
	}
}

// creatorSums adds the digest of creator's records into len(sums) buckets
// (record.Bucket) to sums.
func (s *records) creatorSums(creator uint32, sums []uint64) {
	for id, ent := range s.store {
		if id.Creator == creator {
			sums[record.Bucket(id, len(sums))] += record.Hash(id, ent.ver)
		}
	}
}

// tableSums returns the sums of every record held, in wire.Buckets
// buckets.
func (s *records) tableSums() []uint64 {
	sums := make([]uint64, wire.Buckets)
	for id, ent := range s.store {
		sums[wire.BucketOf(id)] += record.Hash(id, ent.ver)
	}
	return sums
}

const chunkSize = 1 << 20

type arena struct {
	chunks [][]byte
	live   int // bytes referenced by entries
	total  int // bytes appended since the last compaction
}

// add appends b and returns its reference.
func (a *arena) add(b []byte) uint64 {
	n := len(a.chunks)
	if n == 0 || len(a.chunks[n-1])+len(b) > cap(a.chunks[n-1]) {
		a.chunks = append(a.chunks, make([]byte, 0, max(chunkSize, len(b))))
		n++
	}
	c := &a.chunks[n-1]
	off := len(*c)
	*c = append(*c, b...)
	a.live += len(b)
	a.total += len(b)
	return uint64(n-1)<<32 | uint64(off)
}

func (a *arena) get(ref uint64, n uint32) []byte {
	c := a.chunks[ref>>32]
	off := uint32(ref)
	return c[off : off+n : off+n]
}

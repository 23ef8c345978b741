package pfsync

import "github.com/gocarp/gocarp/pfsync/record"

// The engine stores every record in its wire encoding (the full-record
// element body, typically 60-80 bytes for an IPv4 TCP flow instead of the
// 264 bytes of a record.Record), appended to large chunks. The store map
// then holds small values without pointers, which the garbage collector
// never scans: with a million records that is the difference between a
// bulk sync dominated by GC and one that is not. Replaced encodings leave
// garbage in their chunk; the arena is compacted when garbage outweighs the
// live bytes.

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

// data returns the encoding of ent. It stays valid (the chunk is never
// overwritten), but the caller must not keep it across a compaction if it
// wants the memory back.
func (e *Engine) data(ent entry) []byte { return e.arena.get(ent.ref, ent.n) }

// setData stores b as the encoding of ent, releasing the previous one.
func (e *Engine) setData(ent *entry, b []byte) {
	if ent.n > 0 {
		e.arena.live -= int(ent.n)
	}
	ent.ref, ent.n = e.arena.add(b), uint32(len(b))
}

// freeData releases the encoding of a removed entry.
func (e *Engine) freeData(ent entry) {
	e.arena.live -= int(ent.n)
	e.maybeCompact()
}

// maybeCompact copies the live encodings to fresh chunks once garbage
// outweighs them (and is worth the copy).
func (e *Engine) maybeCompact() {
	garbage := e.arena.total - e.arena.live
	if garbage < 4*chunkSize || garbage < e.arena.live {
		return
	}
	old := e.arena
	e.arena = arena{}
	e.compactions++
	for id, ent := range e.store {
		ent.ref = e.arena.add(old.get(ent.ref, ent.n))
		e.store[id] = ent
	}
}

// changed notes that the encoding of id changed or that it was removed,
// while bulk transfers read their snapshots (bulkJob.entry).
func (e *Engine) changed(id record.ID) {
	if e.bulkDirty != nil {
		e.bulkDirty[id] = struct{}{}
	}
}

// encode encodes r (validated) into the engine's scratch buffer.
func (e *Engine) encode(r *record.Record) []byte {
	e.enc = e.enc[:0]
	b, err := appendRecord(e.enc, r)
	if err != nil {
		e.log.Error("pfsync: encoding a record", "id", r.ID.String(), "err", err)
	}
	e.enc = b
	return b
}

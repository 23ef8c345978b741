package record

import "fmt"

// Fields selects the dynamic parts of a record a Delta carries.
type Fields uint8

// Dynamic fields. Everything else (Key, Ext) belongs to the creator and only
// travels in full records.
const (
	FieldOrig     Fields = 1 << iota // Peers[Orig]
	FieldReply                       // Peers[Reply]
	FieldLifetime                    // Expire and Timeout
	FieldCounters                    // Packets and Bytes
	FieldFlags                       // Flags

	// FieldsAll is every dynamic field.
	FieldsAll = FieldOrig | FieldReply | FieldLifetime | FieldCounters | FieldFlags
)

// Has reports whether f includes every field of g.
func (f Fields) Has(g Fields) bool { return f&g == g }

// Delta is a compressed update: the id, the version and the changed dynamic
// fields of a record, without its key — pfsync's UPD_C, which works because
// keys never change after creation. Fields not selected are zero.
//
// A receiver that does not hold the record cannot apply a Delta; it asks the
// owner for the full record (pfsync's UPD_REQ).
type Delta struct {
	ID      ID
	Version uint64
	Fields  Fields

	Peers   [2]Peer // with FieldOrig / FieldReply
	Expire  uint32  // with FieldLifetime
	Timeout uint8   // with FieldLifetime
	Packets [2]uint64
	Bytes   [2]uint64 // Packets and Bytes with FieldCounters
	Flags   uint32    // with FieldFlags
}

// Delta returns the compressed update of r carrying the fields f (bits
// outside FieldsAll are ignored); unselected fields are zero.
func (r *Record) Delta(f Fields) Delta {
	f &= FieldsAll
	d := Delta{ID: r.ID, Version: r.Version, Fields: f}
	if f.Has(FieldOrig) {
		d.Peers[Orig] = r.Peers[Orig]
	}
	if f.Has(FieldReply) {
		d.Peers[Reply] = r.Peers[Reply]
	}
	if f.Has(FieldLifetime) {
		d.Expire, d.Timeout = r.Expire, r.Timeout
	}
	if f.Has(FieldCounters) {
		d.Packets, d.Bytes = r.Packets, r.Bytes
	}
	if f.Has(FieldFlags) {
		d.Flags = r.Flags
	}
	return d
}

// Outcome describes what a merge did. It is a bit set.
type Outcome uint8

// Merge outcomes.
const (
	// Changed: the result differs from the local copy; store it.
	Changed Outcome = 1 << iota
	// StaleOrig: the local orig direction was ahead of the remote one and
	// was kept (pfsync's "stale" counter).
	StaleOrig
	// StaleReply: the same for the reply direction.
	StaleReply
	// Older: the remote copy carried a lower Version than the local one.
	Older
	// Mismatch: the two copies have different IDs; nothing was merged.
	Mismatch
)

// Has reports whether o includes every bit of p.
func (o Outcome) Has(p Outcome) bool { return o&p == p }

// Stale reports whether the local copy was better in at least one direction.
// The engine then sends its merged copy back to the sender, as pfsync does
// with a stale update, so the pair converges (rate-limited per record).
func (o Outcome) Stale() bool { return o&(StaleOrig|StaleReply) != 0 }

// String lists the bits, e.g. "changed|stale-reply".
func (o Outcome) String() string {
	if o == 0 {
		return "none"
	}
	names := [...]string{"changed", "stale-orig", "stale-reply", "older", "mismatch"}
	s := ""
	for i, n := range names {
		if o&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	if rest := o &^ (1<<len(names) - 1); rest != 0 {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", uint8(rest))
	}
	return s
}

// SeqAfter reports whether the 32-bit sequence number a comes after b in
// serial-number arithmetic (RFC 1982 §3.2, as TCP's SEQ_GT). For the one
// undefined case, a and b exactly 2^31 apart, the numerically larger one is
// taken as after, so that SeqAfter is total and antisymmetric.
func SeqAfter(a, b uint32) bool {
	d := a - b
	if d == 1<<31 {
		return a > b
	}
	return int32(d) > 0
}

// seqMax returns the later of a and b in serial arithmetic.
func seqMax(a, b uint32) uint32 {
	if SeqAfter(b, a) {
		return b
	}
	return a
}

// joinPeer merges one direction. The direction whose (Level, SeqLo) is ahead
// wins as a whole — SeqLo compared in serial arithmetic and only for TCP,
// as pfsync does; on a tie every field takes its maximum, so the result does
// not depend on which copy is local. It is a join: commutative, associative
// and idempotent for sequence numbers within 2^31 of each other.
func joinPeer(a, b Peer, tcp bool) Peer {
	if a.Level != b.Level {
		if a.Level > b.Level {
			return a
		}
		return b
	}
	if tcp && a.SeqLo != b.SeqLo {
		if SeqAfter(a.SeqLo, b.SeqLo) {
			return a
		}
		return b
	}
	return Peer{
		Level:  a.Level,
		SeqLo:  seqMax(a.SeqLo, b.SeqLo),
		SeqHi:  seqMax(a.SeqHi, b.SeqHi),
		MaxWin: max(a.MaxWin, b.MaxWin),
		WScale: max(a.WScale, b.WScale),
		Scaled: a.Scaled || b.Scaled,
	}
}

// laterLife reports whether the lifetime (version, expire, timeout) of b is
// preferred over that of a: the higher version, then the longer remaining
// lifetime, then the higher timeout class. A total order, so the choice does
// not depend on delivery order.
func laterLife(av uint64, ae uint32, at uint8, bv uint64, be uint32, bt uint8) bool {
	if av != bv {
		return bv > av
	}
	if ae != be {
		return be > ae
	}
	return bt > at
}

// Merge combines the local copy of a record with a copy received from a peer
// and returns the result and what happened. Neither argument is modified;
// the result shares Ext with whichever copy supplied it.
//
// The rule, field by field:
//
//   - Peers: each direction independently; the one whose (Level, SeqLo) is
//     ahead wins (SeqLo compared with SeqAfter, only for TCP), so a state
//     never goes backwards and a sequence number never rolls back. A
//     direction judged stale is never overwritten, whatever happens to the
//     other one — FreeBSD 14's merge copied the dst peer unconditionally and
//     stalled long transfers (opnsense/src #327). On a tie each field takes
//     its maximum.
//   - Version, Key, Flags, Ext: from the copy with the higher Version (the
//     creator increments it on every change); on equal versions the local
//     copy is kept, as the creator's copies of one version are identical.
//   - Expire and Timeout: from the copy with the higher Version, then the
//     longer remaining lifetime, then the higher class.
//   - Packets, Bytes and Age: the maximum per field (they only grow).
//
// The result is therefore independent of the order in which copies arrive:
// Merge is idempotent, commutative and associative on every field when equal
// versions carry equal creator-owned fields. Deletes are not records: the
// caller keeps its own tombstones and checks them before merging.
//
// StaleOrig/StaleReply report that local was ahead in that direction (the
// caller echoes its copy back), Older that remote had a lower Version,
// Changed that the result differs from local. Different IDs yield local
// unchanged and Mismatch.
func Merge(local, remote *Record) (Record, Outcome) {
	res := *local
	if local.ID != remote.ID {
		return res, Mismatch
	}
	var out Outcome
	switch {
	case remote.Version > local.Version:
		res.Version, res.Key, res.Flags, res.Ext = remote.Version, remote.Key, remote.Flags, remote.Ext
		out |= Changed
	case remote.Version < local.Version:
		out |= Older
	}
	tcp := res.Key.Proto == ProtoTCP
	for d := range res.Peers {
		p := joinPeer(local.Peers[d], remote.Peers[d], tcp)
		res.Peers[d] = p
		if p != remote.Peers[d] {
			out |= StaleOrig << d
		}
		if p != local.Peers[d] {
			out |= Changed
		}
	}
	if laterLife(local.Version, local.Expire, local.Timeout, remote.Version, remote.Expire, remote.Timeout) {
		res.Expire, res.Timeout = remote.Expire, remote.Timeout
	}
	res.Age = max(local.Age, remote.Age)
	for d := range 2 {
		res.Packets[d] = max(local.Packets[d], remote.Packets[d])
		res.Bytes[d] = max(local.Bytes[d], remote.Bytes[d])
	}
	if res.Expire != local.Expire || res.Timeout != local.Timeout || res.Age != local.Age ||
		res.Packets != local.Packets || res.Bytes != local.Bytes {
		out |= Changed
	}
	return res, out
}

// MergeDelta applies a compressed update to the local copy with the same
// rules as Merge, restricted to the fields d carries: a Delta with a higher
// Version raises the local Version (and sets Flags if it carries them), its
// peers are joined per direction, its lifetime wins under the same order,
// its counters take the maximum. Key and Ext never change.
//
// StaleOrig/StaleReply are reported only for directions d carries.
func MergeDelta(local *Record, d *Delta) (Record, Outcome) {
	res := *local
	if local.ID != d.ID {
		return res, Mismatch
	}
	var out Outcome
	switch {
	case d.Version > local.Version:
		res.Version = d.Version
		if d.Fields.Has(FieldFlags) {
			res.Flags = d.Flags
		}
		out |= Changed
	case d.Version < local.Version:
		out |= Older
	}
	tcp := res.Key.Proto == ProtoTCP
	for dir, f := range [2]Fields{FieldOrig, FieldReply} {
		if !d.Fields.Has(f) {
			continue
		}
		p := joinPeer(local.Peers[dir], d.Peers[dir], tcp)
		res.Peers[dir] = p
		if p != d.Peers[dir] {
			out |= StaleOrig << dir
		}
		if p != local.Peers[dir] {
			out |= Changed
		}
	}
	if d.Fields.Has(FieldLifetime) &&
		laterLife(local.Version, local.Expire, local.Timeout, d.Version, d.Expire, d.Timeout) {
		res.Expire, res.Timeout = d.Expire, d.Timeout
	}
	if d.Fields.Has(FieldCounters) {
		for i := range 2 {
			res.Packets[i] = max(local.Packets[i], d.Packets[i])
			res.Bytes[i] = max(local.Bytes[i], d.Bytes[i])
		}
	}
	if res.Expire != local.Expire || res.Timeout != local.Timeout ||
		res.Packets != local.Packets || res.Bytes != local.Bytes {
		out |= Changed
	}
	return res, out
}

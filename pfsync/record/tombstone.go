package record

import "time"

// Tombstone remembers that a record was deleted at a given Version, so that an
// update of that version or older, delivered late or retransmitted, cannot
// resurrect the record (the gap pfsync leaves open: a late UPD for a deleted
// state is an insert). A newer version — the owner kept the record alive —
// is not suppressed.
type Tombstone struct {
	ID      ID
	Version uint64    // the version the delete was issued for
	Expires time.Time // when the tombstone may be forgotten (caller's clock)
}

// Covers reports whether the tombstone suppresses a copy with this version:
// a delete with version v beats every update with version ≤ v.
func (t Tombstone) Covers(version uint64) bool { return version <= t.Version }

// Tombstones is a set of recent deletes with a fixed time to live. It has no
// clock: every method that needs the time takes it, so tests and
// testing/synctest drive it. It is not safe for concurrent use.
//
// A TTL of about 30 s covers retransmissions and reordering of the sync
// protocol; after that a late copy is only possible from a bulk, which
// carries current state anyway.
type Tombstones struct {
	ttl time.Duration
	m   map[ID]Tombstone
}

// NewTombstones returns an empty set whose entries live for ttl (must be
// positive; a non-positive ttl means 30 seconds).
func NewTombstones(ttl time.Duration) *Tombstones {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Tombstones{ttl: ttl, m: make(map[ID]Tombstone)}
}

// TTL returns the time to live of new entries.
func (s *Tombstones) TTL() time.Duration { return s.ttl }

// Add records the delete of id at version, expiring ttl after now. A second
// delete of the same id keeps the higher version and the later expiry.
func (s *Tombstones) Add(id ID, version uint64, now time.Time) Tombstone {
	t := Tombstone{ID: id, Version: version, Expires: now.Add(s.ttl)}
	if old, ok := s.m[id]; ok {
		t.Version = max(t.Version, old.Version)
		if old.Expires.After(t.Expires) {
			t.Expires = old.Expires
		}
	}
	s.m[id] = t
	return t
}

// Get returns the live tombstone of id, if any.
func (s *Tombstones) Get(id ID, now time.Time) (Tombstone, bool) {
	t, ok := s.m[id]
	if !ok || !now.Before(t.Expires) {
		return Tombstone{}, false
	}
	return t, true
}

// Suppresses reports whether a copy of id with this version must be dropped
// because a live tombstone covers it.
func (s *Tombstones) Suppresses(id ID, version uint64, now time.Time) bool {
	t, ok := s.Get(id, now)
	return ok && t.Covers(version)
}

// Remove forgets the tombstone of id (for example when the creator's newer
// version re-created the record).
func (s *Tombstones) Remove(id ID) { delete(s.m, id) }

// Expire forgets every tombstone whose time has come and returns how many it
// removed. Call it periodically.
func (s *Tombstones) Expire(now time.Time) int {
	n := 0
	for id, t := range s.m {
		if !now.Before(t.Expires) {
			delete(s.m, id)
			n++
		}
	}
	return n
}

// Len returns the number of tombstones held, expired or not.
func (s *Tombstones) Len() int { return len(s.m) }

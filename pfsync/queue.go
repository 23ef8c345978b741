package pfsync

import "github.com/gocarp/gocarp/pfsync/record"

// slot is a record's place in the send queue, pfsync's per-state
// "sync_state" reduced to what the engine needs: whether a live copy or a
// delete is due. Which element a live copy becomes (INSERT for a record peers
// never heard of, UPDATE otherwise) is decided at flush time from the
// entry's announced flag, and the record is encoded from the store at flush
// time, so the newest state always leaves and repeated changes collapse into
// one element.
type slot uint8

const (
	slotNone   slot = iota // not queued
	slotUpsert             // send the current live copy
	slotDelete             // send the delete (version from the tombstone)
)

// op is a change reported for a record.
type op uint8

const (
	opUpsert op = iota // created or changed (locally, or queued for a resend / answer / echo)
	opDelete           // deleted
)

// coalesce returns the slot of a record after op, given its current slot
// and whether any peer may have heard of the record (announced). The rules
// follow pfsync's queue transitions (docs/interop.md, "Queue transitions"):
//
//   - any change of a live record leaves one upsert in the queue: the
//     element is encoded at flush time, so it carries the latest state;
//   - a delete replaces a queued upsert;
//   - a delete of a record never announced cancels everything: peers never
//     heard of it, so nothing is sent (pfsync drops a state still in the
//     INS queue).
func coalesce(s slot, o op, announced bool) slot {
	if o == opUpsert {
		return slotUpsert
	}
	if !announced {
		return slotNone
	}
	return slotDelete
}

// queue holds the records waiting for the next frame: one slot per record
// in pend, and their first-queued order in order (entries whose slot was
// cleared or that were queued again stay in order and are skipped).
type queue struct {
	pend  map[record.ID]slot
	order []record.ID
	pos   int // order[:pos] was sent in this flush
	bytes int // estimate of the encoded size of everything queued
}

func newQueue() queue { return queue{pend: make(map[record.ID]slot)} }

// set moves id to slot s; size is the encoded size estimate of its element.
func (q *queue) set(id record.ID, s slot, size int) {
	old, queued := q.pend[id]
	if s == slotNone {
		if queued {
			delete(q.pend, id)
		}
		return
	}
	q.pend[id] = s
	if !queued {
		q.order = append(q.order, id)
		q.bytes += size
	} else if old != s {
		q.bytes += size
	}
}

func (q *queue) len() int { return len(q.pend) }

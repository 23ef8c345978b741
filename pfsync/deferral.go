package pfsync

import (
	"context"
	"fmt"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
)

// UpsertSync reports rec like Upsert, sends it at once, and waits until
// every peer that is up has acknowledged the frame that carried it — the
// peer holds the record (and with CommitDirect has handed it to its Table)
// — or until ctx ends. It is pfsync's deferral: a dataplane holds the
// first packet of a new flow until the peers know the flow, so that a
// reply which comes back through another node (active-active, asymmetric
// routing) finds the state there; pfsync holds the packet at most 20 ms.
//
// The record is queued whatever the outcome: an error wrapping ctx.Err()
// says only that some peer had not acknowledged it in time. With no peer
// up, or before Start, it returns at once. A peer not confirmed yet
// (PeerStats.Confirmed) is not waited for: it takes a bulk sync once it is.
func (e *Engine) UpsertSync(ctx context.Context, rec record.Record) error {
	if err := e.Upsert(rec); err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if !e.started {
		e.mu.Unlock()
		return nil // no peer yet: queued like Upsert's, sent after Start
	}
	e.ackRequested = true
	e.flushLocked(time.Now())
	e.ackRequested = false
	seq := e.nextSeq - 1
	e.mu.Unlock()
	for {
		e.mu.Lock()
		waiting := e.peers.unacked(seq)
		var signal <-chan struct{}
		if waiting > 0 {
			signal = e.ackWait()
		}
		e.mu.Unlock()
		if waiting == 0 {
			return nil
		}
		select {
		case <-signal:
		case <-ctx.Done():
			return fmt.Errorf("pfsync: upsert %v: %d peers did not acknowledge it: %w", rec.ID, waiting, ctx.Err())
		case <-e.done:
			return ErrClosed
		}
	}
}

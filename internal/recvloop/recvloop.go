// Package recvloop is the receive loop the library's protocol engines
// share: read from a transport until its owner closes, hand each result
// on, and neither spin on a transport that keeps failing nor mistake the
// owner's Close for a failure.
package recvloop

import (
	"errors"
	"net"
	"time"
)

// Loop describes one receive loop. Every field but Failed and Closed must
// be set.
type Loop[T any] struct {
	// Done is closed by the owner when it closes; the owner then closes
	// the transport too, which unblocks Receive.
	Done <-chan struct{}
	// Receive blocks until something arrives or the transport fails.
	Receive func() (T, error)
	// Handle takes what arrived; false ends the loop.
	Handle func(T) bool
	// Retry is how long the loop waits after a failed Receive before it
	// tries again.
	Retry time.Duration
	// Failed, if set, is told of a failed Receive (the loop goes on).
	Failed func(error)
	// Closed, if set, is told that the transport was closed under the
	// owner (net.ErrClosed while Done is open): nothing will arrive again,
	// and the loop ends.
	Closed func(error)
}

// Run runs the loop until Done is closed, Handle returns false or the
// transport is closed under the owner. An error of Receive after Done was
// closed is the owner's Close at work and ends the loop silently.
func (l Loop[T]) Run() {
	var retry *time.Timer
	for {
		v, err := l.Receive()
		if err == nil {
			if !l.Handle(v) {
				return
			}
			continue
		}
		select {
		case <-l.Done:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			if l.Closed != nil {
				l.Closed(err)
			}
			return
		}
		if l.Failed != nil {
			l.Failed(err)
		}
		if retry == nil {
			retry = time.NewTimer(l.Retry)
		} else {
			retry.Reset(l.Retry)
		}
		select {
		case <-retry.C:
		case <-l.Done:
			retry.Stop()
			return
		}
	}
}

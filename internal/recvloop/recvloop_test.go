package recvloop

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// script is a transport that returns its results in order, then blocks
// until done closes and fails as a closed transport does.
type script struct {
	results []error
	done    chan struct{}
	calls   atomic.Int32
}

func (s *script) receive() (int, error) {
	n := int(s.calls.Add(1))
	if len(s.results) == 0 {
		<-s.done
		return 0, net.ErrClosed
	}
	err := s.results[0]
	s.results = s.results[1:]
	return n, err
}

func TestLoop(t *testing.T) {
	errBusy := errors.New("busy")
	for _, tt := range []struct {
		name    string
		results []error
		stopAt  int // Handle returns false for this value; 0: never
		close   bool
		want    []string
	}{
		{name: "values until Handle stops", results: []error{nil, nil, nil}, stopAt: 2, want: []string{"got 1", "got 2"}},
		{name: "a failure is told and retried", results: []error{errBusy, nil}, stopAt: 2, want: []string{"failed busy", "got 2"}},
		{name: "closed under the owner", results: []error{nil, fmt.Errorf("read: %w", net.ErrClosed)}, want: []string{"got 1", "closed"}},
		{name: "owner's Close is silent", results: []error{nil}, close: true, want: []string{"got 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{results: tt.results, done: make(chan struct{})}
				var got []string
				ended := make(chan struct{})
				go func() {
					defer close(ended)
					Loop[int]{
						Done:    s.done,
						Receive: s.receive,
						Handle: func(v int) bool {
							got = append(got, fmt.Sprintf("got %d", v))
							return v != tt.stopAt
						},
						Retry:  time.Second,
						Failed: func(err error) { got = append(got, "failed "+err.Error()) },
						Closed: func(error) { got = append(got, "closed") },
					}.Run()
				}()
				synctest.Wait()
				if tt.close {
					close(s.done)
				}
				<-ended
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		})
	}
}

// TestLoopRetryWaits: after a failure the loop waits Retry before reading
// again, and Done ends the wait.
func TestLoopRetryWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{results: []error{errors.New("down"), errors.New("down")}, done: make(chan struct{})}
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			Loop[int]{Done: s.done, Receive: s.receive, Handle: func(int) bool { return true }, Retry: time.Minute}.Run()
		}()
		synctest.Wait()
		if s.calls.Load() != 1 {
			t.Fatalf("%d reads before the retry interval, want 1", s.calls.Load())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if s.calls.Load() != 2 {
			t.Fatalf("%d reads after one interval, want 2", s.calls.Load())
		}
		close(s.done)
		<-ended
	})
}

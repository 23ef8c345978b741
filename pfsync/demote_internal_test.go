package pfsync

import (
	"net"
	"runtime"
	"sync"
	"testing"
)

// nullTransport is a Transport that sends nowhere; Receive blocks until Close.
type nullTransport struct {
	once   sync.Once
	closed chan struct{}
}

func newNullTransport() *nullTransport { return &nullTransport{closed: make(chan struct{})} }

func (t *nullTransport) MTU() int                  { return 1500 }
func (t *nullTransport) Send(NodeID, []byte) error { return nil }
func (t *nullTransport) Receive() (Datagram, error) {
	<-t.closed
	return Datagram{}, net.ErrClosed
}
func (t *nullTransport) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

// lastDemoter remembers the last value given for each source.
type lastDemoter struct {
	mu   sync.Mutex
	last map[string]int
}

func (d *lastDemoter) SetDemotion(source string, n int) {
	d.mu.Lock()
	d.last[source] = n
	d.mu.Unlock()
	runtime.Gosched() // a real Demoter (carp.Group) takes locks and sends adverts
}

// TestDemotionOrdering checks that the demotion the Demoter holds in the end
// is the engine's current one however updates race: a value computed before
// a change must never be applied after the value computed after it (the
// demo saw "cleared", then a stale "demoted 32", then "cleared" again).
func TestDemotionOrdering(t *testing.T) {
	const goroutines, rounds = 8, 200
	for run := range 50 {
		dem := &lastDemoter{last: map[string]int{}}
		e, err := New(Config{Node: 1, Transport: newNullTransport(), Insecure: true, Demoter: dem})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					e.mu.Lock()
					e.inSync = (g+i)%2 == 0
					e.mu.Unlock()
					e.updateDemotion()
				}
			}()
		}
		wg.Wait()
		want := e.demotionLocked()
		dem.mu.Lock()
		got := dem.last[DemoteSourceBulk]
		dem.mu.Unlock()
		if got != want {
			t.Fatalf("run %d: the Demoter was left with bulk demotion %d, the engine computes %d: a stale value landed last", run, got, want)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

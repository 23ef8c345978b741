package pfsync

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestRemovePeerEndsTheWaitForItsBulk: a node that heard a live peer and
// got no table from it stays demoted while the peer is silent (the sync
// link may have failed mid-bulk); once that peer is removed from the
// cluster there is nothing left to wait for, and the demotion is lifted
// at once.
func TestRemovePeerEndsTheWaitForItsBulk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dem := &lastDemoter{last: map[string]int{}}
		e, err := New(Config{Node: 1, Transport: newNullTransport(), Insecure: true, Demoter: dem})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		confirm(t, e, 2, 9, time.Now()) // node 2 is live; our bulk request goes nowhere
		time.Sleep(10 * time.Second)    // past the discovery window; node 2 down
		synctest.Wait()
		if got := e.Demotion(); got != e.cfg.DemoteInit {
			t.Fatalf("waiting for the silent peer's bulk: demotion %d, want %d", got, e.cfg.DemoteInit)
		}
		if known, err := e.RemovePeer(2); err != nil || !known {
			t.Fatalf("RemovePeer(2) = %v, %v", known, err)
		}
		dem.mu.Lock()
		got := dem.last[DemoteSourceBulk]
		dem.mu.Unlock()
		if got != 0 || e.Demotion() != 0 {
			t.Errorf("after RemovePeer: Demoter holds %d, Demotion() %d; want 0", got, e.Demotion())
		}
	})
}

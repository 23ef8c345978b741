package pfsync_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/google/go-cmp/cmp"
)

// watchDemoter hands the engine's demotion to a CARP group and remembers
// every value it was given once armed.
type watchDemoter struct {
	g     *carp.Group
	mu    sync.Mutex
	armed bool
	seen  []string
}

func (w *watchDemoter) SetDemotion(source string, n int) {
	w.g.SetDemotion(source, n)
	w.mu.Lock()
	if w.armed {
		w.seen = append(w.seen, fmt.Sprintf("%s=%d", source, n))
	}
	w.mu.Unlock()
}

func (w *watchDemoter) arm() {
	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
}

func (w *watchDemoter) values() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// transitions records a group's state changes.
type transitions struct {
	mu  sync.Mutex
	all []carp.Transition
}

func (r *transitions) add(tr carp.Transition) {
	r.mu.Lock()
	r.all = append(r.all, tr)
	r.mu.Unlock()
}

func (r *transitions) since(n int) []carp.Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]carp.Transition(nil), r.all[n:]...)
}

func (r *transitions) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

// TestSyncOutageKeepsMaster: two firewalls, each a CARP group on a LAN
// that stays up and a sync engine on a link that fails for 15 s. Both
// ends see the other go silent; the one that notices first must not be
// the one that loses the group. The order is forced both ways (the master
// notices first: the backup's frames stop first; and the reverse), over
// many seeds that move the outage against the advert and heartbeat
// phases. Across the outage and the resynchronisation after it the master
// keeps its role, neither group changes state, neither engine raises a
// demotion, and the backup ends with what the master created meanwhile.
func TestSyncOutageKeepsMaster(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		for _, masterFirst := range []bool{true, false} {
			name := fmt.Sprintf("seed=%d/backup-notices-first", seed)
			if masterFirst {
				name = fmt.Sprintf("seed=%d/master-notices-first", seed)
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { syncOutage(t, seed, masterFirst) })
			})
		}
	}
}

func syncOutage(t *testing.T, seed uint64, masterFirst bool) {
	rng := rand.New(rand.NewPCG(seed, 0x0a7a6e))
	lan := carptest.NewSegment(seed)
	network, err := pfsynctest.New(&pfsynctest.Config{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		g     *carp.Group
		dem   *watchDemoter
		trans *transitions
		tap   *tapTransport
		e     *pfsync.Engine
	}
	var nodes [2]*node
	for i := range nodes {
		n := &node{trans: &transitions{}, tap: &tapTransport{Transport: network.Attach(pfsync.NodeID(i + 1))}}
		g, err := carp.NewGroup(carp.Config{
			VHID:          1,
			AdvSkew:       uint8(100 * i), // node 1 is the preferred master
			Addrs:         []netip.Addr{netip.MustParseAddr("192.0.2.254")},
			Preempt:       true,
			StartAsMaster: i == 0,
			Transport:     lan.Join(carp.IPv4),
			OnTransition:  n.trans.add,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.g = g
		n.dem = &watchDemoter{g: g}
		n.e = mustEngine(t, pfsync.Config{Node: pfsync.NodeID(i + 1), Transport: n.tap, Insecure: true, Demoter: n.dem})
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		nodes[i] = n
	}
	master, backup := nodes[0], nodes[1]
	for i := range 20 + rng.IntN(100) {
		if err := master.e.Upsert(testRecord(master.e.NewID(), uint16(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10*time.Second + time.Duration(rng.Int64N(int64(2*time.Second))))
	synctest.Wait()
	if master.g.State() != carp.Master || backup.g.State() != carp.Backup {
		t.Fatalf("before the outage: states %v, %v; want MASTER, BACKUP", master.g.State(), backup.g.State())
	}
	if d1, d2 := master.e.Demotion(), backup.e.Demotion(); d1 != 0 || d2 != 0 {
		t.Fatalf("before the outage: demotions %d, %d; want 0, 0 (both in sync)", d1, d2)
	}
	seen := [2]int{master.trans.len(), backup.trans.len()}
	master.dem.arm()
	backup.dem.arm()

	// The sync link fails, one direction first: the node whose peer's
	// frames stop first notices the silence first (3 heartbeats later).
	first, second := backup, master // the backup's frames stop: the master notices first
	if !masterFirst {
		first, second = master, backup
	}
	first.tap.cut.Store(true)
	time.Sleep(time.Second + time.Duration(rng.Int64N(int64(time.Second))))
	second.tap.cut.Store(true)
	for i := range 10 {
		// The master keeps creating flows the backup cannot hear of.
		if err := master.e.Upsert(testRecord(master.e.NewID(), uint16(1000+i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(5 * time.Second) // 15 s in all
	synctest.Wait()
	if st := master.e.Stats(); st.PeersUp != 0 {
		t.Fatalf("the master still counts %d peers up during the outage", st.PeersUp)
	}
	if st := backup.e.Stats(); st.PeersUp != 0 {
		t.Fatalf("the backup still counts %d peers up during the outage", st.PeersUp)
	}

	// The link heals; the engines resynchronise.
	first.tap.cut.Store(false)
	second.tap.cut.Store(false)
	time.Sleep(10 * time.Second)
	synctest.Wait()

	for i, n := range nodes {
		if tr := n.trans.since(seen[i]); len(tr) > 0 {
			t.Errorf("node %d changed state across a sync-link outage: %+v", i+1, tr)
		}
		if v := n.dem.values(); len(v) > 0 {
			t.Errorf("node %d's engine demoted it across a sync-link outage: %v", i+1, v)
		}
		if d := n.g.Demotion(); d != 0 {
			t.Errorf("node %d's group is demoted %d after the heal", i+1, d)
		}
	}
	if master.g.State() != carp.Master || backup.g.State() != carp.Backup {
		t.Errorf("after the outage: states %v, %v; want MASTER, BACKUP", master.g.State(), backup.g.State())
	}
	if got, want := backup.e.Len(), master.e.Len(); got != want {
		t.Errorf("after the heal the backup holds %d records, the master %d", got, want)
	}
	if st := backup.e.Stats(); st.Resyncs == 0 {
		t.Errorf("the backup did not resynchronise after the outage: %+v", st)
	}
}

// TestSyncOutageDuringJoinKeepsDemotion: a node joining a running cluster
// holds DemoteSourceBulk until it has the cluster's table. When the sync
// link fails in the middle of its bulk sync, its only peer goes silent —
// but that peer is alive behind the failed link, still master, and the
// joiner holds part of its table: the joiner stays demoted (it used to
// declare itself in sync once the peer was down, and a preferred master
// rejoining with Preempt then took the group with half the flows). Once
// the link is back the bulk sync completes and the demotion clears.
func TestSyncOutageDuringJoinKeepsDemotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		founder := mustEngine(t, pfsync.Config{Node: 1, Transport: network.Attach(1), Insecure: true, BulkRate: 20, BulkBurst: 1})
		const n = 3000 // about 90 frames at 20 frames/s: a 4 s bulk
		for i := range n {
			if err := founder.Upsert(testRecord(founder.NewID(), uint16(i+1))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second)
		var dem demoter
		joiner := mustEngine(t, pfsync.Config{Node: 2, Transport: network.Attach(2), Insecure: true, Demoter: &dem})
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := joiner.Len(); got == 0 || got == n {
			t.Fatalf("the joiner holds %d of %d records: not in the middle of its bulk sync", got, n)
		}
		network.Partition([]pfsync.NodeID{1}, []pfsync.NodeID{2})
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if st := joiner.Stats(); st.PeersUp != 0 || st.BulkDone || joiner.Demotion() != 32 {
			t.Errorf("15 s into the outage: peers up %d, in sync %v, demotion %d; want 0, false, 32 (holding %d of %d records)",
				st.PeersUp, st.BulkDone, joiner.Demotion(), joiner.Len(), n)
		}
		if diff := cmp.Diff(map[string]int{pfsync.DemoteSourceBulk: 32}, dem.get()); diff != "" {
			t.Errorf("the joiner's demotion during the outage (-want +got):\n%s", diff)
		}
		network.Heal()
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if got := joiner.Len(); got != n || joiner.Demotion() != 0 || !joiner.Stats().BulkDone {
			t.Errorf("after the heal: the joiner holds %d of %d records, demotion %d, in sync %v", got, n, joiner.Demotion(), joiner.Stats().BulkDone)
		}
	})
}

package pfsync_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
)

var seedsFlag = flag.Int("pfsync.seeds", 0, "number of deterministic simulation seeds to run (0: the default for the build)")
var seedFlag = flag.Int64("pfsync.seed", -1, "run only this simulation seed")

// simTable is a node's dataplane in the simulation: a MemTable that checks
// no update moves a TCP direction backwards, and reports records of this
// node that the dataplane no longer has (adopted back after a restart)
// so the workload expires them, as a real flow table would.
type simTable struct {
	pfsync.MemTable
	node    pfsync.NodeID
	mu      sync.Mutex
	regress []string
	ghosts  []record.ID
	deleted map[record.ID]bool // shared view of the model's deletes, guarded by mu
}

func (t *simTable) check(rec *record.Record) {
	old, ok := t.Get(rec.ID)
	if !ok {
		return
	}
	for d := range 2 {
		o, n := old.Peers[d], rec.Peers[d]
		if n.Level < o.Level || n.Level == o.Level && record.SeqAfter(o.SeqLo, n.SeqLo) {
			t.mu.Lock()
			t.regress = append(t.regress, fmt.Sprintf("node %d record %v direction %d: %+v -> %+v", t.node, rec.ID, d, o, n))
			t.mu.Unlock()
		}
	}
}

func (t *simTable) Insert(rec *record.Record) error {
	t.check(rec)
	t.mu.Lock()
	if pfsync.NodeID(rec.ID.Creator) == t.node && t.deleted[rec.ID] {
		t.ghosts = append(t.ghosts, rec.ID)
	}
	t.mu.Unlock()
	return t.MemTable.Insert(rec)
}

func (t *simTable) Update(rec *record.Record) error {
	t.check(rec)
	return t.MemTable.Update(rec)
}

// simBatchTable is a simTable that takes batches (pfsync.BatchTable),
// writing each record through the simTable's checks.
type simBatchTable struct{ *simTable }

func (t simBatchTable) CommitBatch(ctx context.Context, recs []record.Record, errs []error) {
	for i := range recs {
		errs[i] = t.Insert(&recs[i])
	}
}

type simNode struct {
	id      pfsync.NodeID
	commit  pfsync.CommitMode
	e       *pfsync.Engine
	table   *simTable
	live    map[record.ID]record.Record // the owner's truth
	deleted map[record.ID]bool
	up      bool
	started time.Time
}

type simParams struct {
	nodes    int
	faults   pfsynctest.Faults
	steps    int
	commit   pfsync.CommitMode
	restarts bool
	batch    bool // the tables take batches (odd seeds)
}

func TestSimulation(t *testing.T) {
	n := simSeeds
	if *seedsFlag > 0 {
		n = *seedsFlag
	}
	if testing.Short() {
		n = min(n, 20)
	}
	first := uint64(0)
	if *seedFlag >= 0 {
		first, n = uint64(*seedFlag), 1
	}
	for seed := first; seed < first+uint64(n); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { simulate(t, seed) })
		})
	}
}

func simulate(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	p := simParams{
		nodes: 2 + rng.IntN(4),
		faults: pfsynctest.Faults{
			Loss:      rng.Float64() * 0.3,
			Duplicate: rng.Float64() * 0.1,
			Reorder:   rng.Float64() * 0.2,
			Delay:     time.Duration(rng.IntN(5)) * time.Millisecond,
			Jitter:    time.Duration(rng.IntN(5)) * time.Millisecond,
		},
		steps:    100 + rng.IntN(200),
		commit:   pfsync.CommitMode(rng.IntN(2)),
		restarts: rng.IntN(2) == 0,
		batch:    seed%2 == 1,
	}
	t.Logf("seed %d: %+v", seed, p)
	network, err := pfsynctest.New(&pfsynctest.Config{Seed: seed, Faults: p.faults})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(n *simNode) pfsync.Config {
		var table pfsync.Table = n.table
		if p.batch {
			table = simBatchTable{n.table}
		}
		return pfsync.Config{
			Node: n.id, Transport: network.Attach(n.id), Insecure: true,
			Table: table, Commit: p.commit,
			AntiEntropy: 5 * time.Second, BulkRate: 500,
		}
	}
	nodes := make([]*simNode, p.nodes)
	for i := range nodes {
		n := &simNode{id: pfsync.NodeID(i + 1), commit: p.commit, live: map[record.ID]record.Record{}, deleted: map[record.ID]bool{}, up: true}
		n.table = &simTable{node: n.id, deleted: n.deleted}
		e, err := pfsync.New(cfg(n))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		n.e, n.started = e, time.Now()
		nodes[i] = n
	}
	defer func() {
		for _, n := range nodes {
			if n.up {
				n.e.Close()
			}
		}
	}()
	expireGhosts := func(n *simNode) {
		n.table.mu.Lock()
		g := n.table.ghosts
		n.table.ghosts = nil
		n.table.mu.Unlock()
		for _, id := range g {
			if err := n.e.Delete(id); err != nil {
				t.Error(err)
			}
			if err := n.table.MemTable.Delete(id); err != nil {
				t.Error(err)
			}
		}
	}
	port := uint16(1)
	partitioned := false
	for step := 0; step < p.steps; step++ {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		n := nodes[rng.IntN(len(nodes))]
		if !n.up {
			continue
		}
		expireGhosts(n)
		switch x := rng.IntN(100); {
		case x < 35 || len(n.live) == 0:
			r := testRecord(n.e.NewID(), port)
			port++
			n.live[r.ID] = r
			upsert(t, n, r)
		case x < 80:
			r := n.live[pickID(rng, n.live)]
			for d := range 2 {
				pr := &r.Peers[d]
				if pr.Level < record.TCPTimeWait && rng.IntN(4) == 0 {
					pr.Level++
				}
				pr.SeqLo += uint32(1 + rng.IntN(5000))
				pr.SeqHi = pr.SeqLo + 65535
				pr.MaxWin = max(pr.MaxWin, uint16(rng.IntN(65535)))
			}
			r.Expire = uint32(rng.IntN(86400))
			r.Packets[0] += uint64(rng.IntN(100))
			n.live[r.ID] = r
			upsert(t, n, r)
		case x < 95:
			id := pickID(rng, n.live)
			delete(n.live, id)
			n.table.mu.Lock()
			n.deleted[id] = true
			n.table.mu.Unlock()
			// The flow is gone from the dataplane, including a copy the
			// engine wrote there (a record of ours a peer had changed).
			if err := n.table.MemTable.Delete(id); err != nil {
				t.Fatal(err)
			}
			if err := n.e.Delete(id); err != nil {
				t.Fatal(err)
			}
		case x < 98:
			if partitioned {
				network.Heal()
				partitioned = false
				break
			}
			var a, b []pfsync.NodeID
			for _, m := range nodes {
				if rng.IntN(2) == 0 {
					a = append(a, m.id)
				} else {
					b = append(b, m.id)
				}
			}
			network.Partition(a, b)
			partitioned = true
		default:
			if !p.restarts {
				break
			}
			// Crash: no flush, the transport vanishes first.
			n.up = false
			crash(t, network, n)
			time.Sleep(time.Duration(100+rng.IntN(2000)) * time.Millisecond)
			restart(t, n, cfg(n))
		}
	}
	network.Heal()
	// Quiescence: faults go on, the protocol must converge on its own.
	for range 12 {
		time.Sleep(5 * time.Second)
		for _, n := range nodes {
			expireGhosts(n)
		}
	}
	synctest.Wait()
	check(t, nodes)
}

func upsert(t *testing.T, n *simNode, r record.Record) {
	t.Helper()
	if err := n.e.Upsert(r); err != nil {
		t.Fatal(err)
	}
}

func pickID(rng *rand.Rand, m map[record.ID]record.Record) record.ID {
	ids := make([]record.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b record.ID) int {
		if a.Num < b.Num {
			return -1
		}
		if a.Num > b.Num {
			return 1
		}
		return 0
	})
	return ids[rng.IntN(len(ids))]
}

func crash(t *testing.T, network *pfsynctest.Network, n *simNode) {
	// Re-attaching the id closes the old endpoint under the engine: its
	// queued and unacknowledged frames are lost, as in a crash.
	tr := network.Attach(n.id)
	if err := n.e.Close(); err != nil {
		t.Logf("close after crash: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func restart(t *testing.T, n *simNode, cfg pfsync.Config) {
	// record.IDAllocator seeds ids with the start time in seconds (as pf
	// does): a node must not restart within the second it last started,
	// or it would hand out its previous life's ids again.
	if next := n.started.Truncate(time.Second).Add(time.Second); time.Now().Before(next) {
		time.Sleep(time.Until(next))
	}
	n.started = time.Now()
	e, err := pfsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.e = e
	n.up = true
	// The dataplane survived the crash: re-announce its records, its own
	// and those it holds of other nodes (with their versions), so the new
	// engine never takes them back to an older state.
	for _, r := range n.live {
		upsert(t, n, r)
	}
	for _, r := range n.table.Records() {
		if pfsync.NodeID(r.ID.Creator) != n.id {
			upsert(t, n, r)
		}
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, nodes []*simNode) {
	t.Helper()
	for _, n := range nodes {
		n.table.mu.Lock()
		for _, r := range n.table.regress {
			t.Error("TCP direction regressed: ", r)
		}
		n.table.mu.Unlock()
		if n.up {
			if counted, actual := pfsync.DirtyCounts(n.e); counted != actual {
				t.Errorf("node %d: Stats.External counts %d records, %d wait for the Table", n.id, counted, actual)
			}
		}
	}
	views := make([]map[record.ID]record.Record, len(nodes))
	for i, n := range nodes {
		views[i] = map[record.ID]record.Record{}
		for _, r := range n.e.Records() {
			views[i][r.ID] = r
		}
	}
	fails := 0
	for i, n := range nodes {
		// With CommitDirect the dataplane holds every remote record the
		// engine holds, at the engine's version, and no other.
		if !n.up || n.commit != pfsync.CommitDirect {
			continue
		}
		if ext := n.e.Stats().External; ext > 0 {
			t.Errorf("node %d: %d remote records never reached its table (CommitDirect, a table that refuses nothing)", n.id, ext)
			fails++
		}
		for id, want := range views[i] {
			if id.Creator == uint32(n.id) {
				continue
			}
			if got, ok := n.table.Get(id); !ok || got.Version != want.Version {
				t.Errorf("node %d's table holds record %v at version %d (present %v), its engine %d", n.id, id, got.Version, ok, want.Version)
				fails++
			}
		}
		for _, r := range n.table.Records() {
			if _, ok := views[i][r.ID]; !ok && r.ID.Creator != uint32(n.id) {
				t.Errorf("node %d's table holds record %v its engine does not", n.id, r.ID)
				fails++
			}
		}
	}
	for oi, owner := range nodes {
		// The owner's engine holds its dataplane's records.
		for id, want := range owner.live {
			got, ok := views[oi][id]
			if !ok {
				t.Errorf("owner %d lost its record %v", owner.id, id)
				fails++
				continue
			}
			if got.Key != want.Key || got.Peers != want.Peers || got.Expire != want.Expire || got.Packets != want.Packets {
				t.Errorf("owner %d record %v:\n engine    %+v\n dataplane %+v", owner.id, id, got, want)
				fails++
			}
		}
		for vi, viewer := range nodes {
			for id := range owner.deleted {
				if _, ok := views[vi][id]; ok {
					t.Errorf("node %d still holds record %v that owner %d deleted", viewer.id, id, owner.id)
					fails++
				}
			}
			if vi == oi {
				continue
			}
			for id, want := range views[oi] {
				if id.Creator != uint32(owner.id) {
					continue
				}
				got, ok := views[vi][id]
				// A copy received from a third node carries the lifetime
				// that remained when it was sent: never more than the
				// owner's.
				if ok && got.Expire <= want.Expire {
					got.Expire = want.Expire
				}
				if !ok {
					t.Errorf("node %d misses record %v of node %d", viewer.id, id, owner.id)
					fails++
				} else if !got.Equal(&want) {
					t.Errorf("node %d record %v differs from owner %d:\n got %+v\nwant %+v", viewer.id, id, owner.id, got, want)
					fails++
				}
			}
			for id := range views[vi] {
				if id.Creator == uint32(owner.id) {
					if _, ok := views[oi][id]; !ok {
						t.Errorf("node %d holds record %v unknown to its owner %d", viewer.id, id, owner.id)
						fails++
					}
				}
			}
			if fails > 20 {
				t.Fatalf("too many differences; stats of owner %d: %+v", owner.id, owner.e.Stats())
			}
		}
	}
	if t.Failed() {
		for _, n := range nodes {
			s := n.e.Stats()
			s.Peers = nil
			t.Logf("node %d: %+v", n.id, s)
		}
	}
}

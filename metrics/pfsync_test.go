package metrics_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/metrics"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/conntrack"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// flow is a TCP flow record with id, distinct per port.
func flow(id record.ID, port uint16) record.Record {
	orig := record.Tuple{
		Src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), port),
		Dst: netip.MustParseAddrPort("192.0.2.10:443"),
	}
	return record.Record{
		ID:  id,
		Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
		Peers: [2]record.Peer{
			{Level: record.TCPEstablished, SeqLo: 1000, SeqHi: 66535, MaxWin: 64240},
			{Level: record.TCPEstablished, SeqLo: 5000, SeqHi: 70535, MaxWin: 65535},
		},
		Expire: 86400,
	}
}

// newEngines starts n engines on one in-memory network; node 1 keeps
// remote records until a takeover (CommitOnTakeover). Close runs at
// cleanup.
func newEngines(t testing.TB, n int) []*pfsync.Engine {
	t.Helper()
	network, err := pfsynctest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var es []*pfsync.Engine
	for i := 1; i <= n; i++ {
		cfg := pfsync.Config{Node: pfsync.NodeID(i), Transport: network.Attach(pfsync.NodeID(i)), Table: &pfsync.MemTable{}, Insecure: true}
		if i == 1 {
			cfg.Commit = pfsync.CommitOnTakeover
		}
		e, err := pfsync.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		es = append(es, e)
	}
	return es
}

// TestEngine runs a node with three sync peers, each of which reports two
// flows, then commits them in a takeover through the collector.
func TestEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		es := newEngines(t, 4)
		c := metrics.NewEngine(es[0])
		for i, e := range es[1:] {
			for k := range 2 {
				if err := e.Upsert(flow(e.NewID(), uint16(1000*i+k))); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		peers := ""
		for _, p := range []string{"2", "3", "4"} {
			peers += fmt.Sprintf("gocarp_pfsync_peer_up{peer=%q} 1\n", p)
		}
		compare(t, c, `
# HELP gocarp_pfsync_peer_up 1 if the peer was heard within DeadAfter heartbeats.
# TYPE gocarp_pfsync_peer_up gauge
`+peers+`# HELP gocarp_pfsync_peers_up Peers heard within DeadAfter heartbeats.
# TYPE gocarp_pfsync_peers_up gauge
gocarp_pfsync_peers_up 3
# HELP gocarp_pfsync_records Live records held by the engine.
# TYPE gocarp_pfsync_records gauge
gocarp_pfsync_records 6
# HELP gocarp_pfsync_external_records Remote records not yet committed to the table (CommitOnTakeover).
# TYPE gocarp_pfsync_external_records gauge
gocarp_pfsync_external_records 6
# HELP gocarp_pfsync_in_sync 1 when the node is in sync: a bulk sync from every peer up, or it founded the cluster.
# TYPE gocarp_pfsync_in_sync gauge
gocarp_pfsync_in_sync 1
`, "gocarp_pfsync_peer_up", "gocarp_pfsync_peers_up", "gocarp_pfsync_records", "gocarp_pfsync_external_records", "gocarp_pfsync_in_sync")

		// Per-peer counters follow the engine's PeerStats.
		ps := es[0].Stats().Peers[3]
		compare(t, c, fmt.Sprintf(`
# HELP gocarp_pfsync_peer_frames_received_total Frames received from the peer.
# TYPE gocarp_pfsync_peer_frames_received_total counter
gocarp_pfsync_peer_frames_received_total{peer="2"} %d
gocarp_pfsync_peer_frames_received_total{peer="3"} %d
gocarp_pfsync_peer_frames_received_total{peer="4"} %d
# HELP gocarp_pfsync_peer_last_heard_timestamp_seconds When the peer was last heard, in Unix seconds (0 if never): time() minus it is the peer's silence.
# TYPE gocarp_pfsync_peer_last_heard_timestamp_seconds gauge
gocarp_pfsync_peer_last_heard_timestamp_seconds{peer="2"} %v
gocarp_pfsync_peer_last_heard_timestamp_seconds{peer="3"} %v
gocarp_pfsync_peer_last_heard_timestamp_seconds{peer="4"} %v
`, es[0].Stats().Peers[2].FramesIn, ps.FramesIn, es[0].Stats().Peers[4].FramesIn,
			float64(es[0].Stats().Peers[2].LastHeard.UnixNano())/1e9, float64(ps.LastHeard.UnixNano())/1e9, float64(es[0].Stats().Peers[4].LastHeard.UnixNano())/1e9),
			"gocarp_pfsync_peer_frames_received_total", "gocarp_pfsync_peer_last_heard_timestamp_seconds")
		if ps.FramesIn == 0 || ps.LastHeard.IsZero() {
			t.Errorf("peer 3: %+v, want frames and a time heard", ps)
		}

		n, err := c.PrepareTakeover(context.Background())
		if n != 6 || err != nil {
			t.Fatalf("PrepareTakeover = %d, %v; want 6, nil", n, err)
		}
		// No time passes in the bubble while nothing blocks: the commit
		// takes 0 s, which lands in every bucket.
		buckets := ""
		for _, le := range []string{"0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024", "2.048", "4.096", "8.192", "+Inf"} {
			buckets += fmt.Sprintf("gocarp_pfsync_takeover_commit_duration_seconds_bucket{le=%q} 1\n", le)
		}
		compare(t, c, `
# HELP gocarp_pfsync_takeover_commit_duration_seconds Duration of PrepareTakeover calls made through the collector: committing replicated records before the addresses move.
# TYPE gocarp_pfsync_takeover_commit_duration_seconds histogram
`+buckets+`gocarp_pfsync_takeover_commit_duration_seconds_sum 0
gocarp_pfsync_takeover_commit_duration_seconds_count 1
# HELP gocarp_pfsync_takeover_committed_records_total Records committed to the table by PrepareTakeover calls made through the collector.
# TYPE gocarp_pfsync_takeover_committed_records_total counter
gocarp_pfsync_takeover_committed_records_total 6
# HELP gocarp_pfsync_takeover_errors_total PrepareTakeover calls made through the collector that returned an error.
# TYPE gocarp_pfsync_takeover_errors_total counter
gocarp_pfsync_takeover_errors_total 0
# HELP gocarp_pfsync_external_records Remote records not yet committed to the table (CommitOnTakeover).
# TYPE gocarp_pfsync_external_records gauge
gocarp_pfsync_external_records 0
`, "gocarp_pfsync_takeover_commit_duration_seconds", "gocarp_pfsync_takeover_committed_records_total",
			"gocarp_pfsync_takeover_errors_total", "gocarp_pfsync_external_records")
	})
}

// TestSealer seals a frame, opens it and opens it again (a replay).
func TestSealer(t *testing.T) {
	psk, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := []seal.Key{{ID: 1, Secret: psk}}
	a, err := seal.New(seal.Config{Node: 1, Boot: 1, Keys: keys, SendKeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.New(seal.Config{Node: 2, Boot: 1, Keys: keys, SendKeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := a.Seal(nil, []byte("state updates"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(nil, frame); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(nil, frame); err == nil {
		t.Fatal("replayed frame opened")
	}
	compare(t, metrics.NewSealer(b), `
# HELP gocarp_seal_frames_sealed_total Frames sealed for sending.
# TYPE gocarp_seal_frames_sealed_total counter
gocarp_seal_frames_sealed_total 0
# HELP gocarp_seal_frames_opened_total Frames authenticated and accepted.
# TYPE gocarp_seal_frames_opened_total counter
gocarp_seal_frames_opened_total 1
# HELP gocarp_seal_rejected_frames_total Frames refused, by the sealer's error.
# TYPE gocarp_seal_rejected_frames_total counter
gocarp_seal_rejected_frames_total{reason="bad_auth"} 0
gocarp_seal_rejected_frames_total{reason="replay"} 1
gocarp_seal_rejected_frames_total{reason="stale_epoch"} 0
gocarp_seal_rejected_frames_total{reason="truncated"} 0
gocarp_seal_rejected_frames_total{reason="unknown_key"} 0
`, "gocarp_seal_frames_sealed_total", "gocarp_seal_frames_opened_total", "gocarp_seal_rejected_frames_total")
}

// fakeConntrack stands in for a conntrack.Backend, which needs a kernel.
type fakeConntrack conntrack.Stats

func (f *fakeConntrack) Stats() conntrack.Stats { return conntrack.Stats(*f) }

func TestConntrack(t *testing.T) {
	f := &fakeConntrack{Events: 10, Injected: 3, TableFull: 1, InjectErrors: 1, Liberalized: 2, Tracked: 42}
	compare(t, metrics.NewConntrack(f), `
# HELP gocarp_conntrack_events_total Kernel conntrack events received (new, update, destroy).
# TYPE gocarp_conntrack_events_total counter
gocarp_conntrack_events_total 10
# HELP gocarp_conntrack_injected_total Remote records created in the kernel.
# TYPE gocarp_conntrack_injected_total counter
gocarp_conntrack_injected_total 3
# HELP gocarp_conntrack_table_full_total Remote records the kernel refused because its table was full (also in inject errors).
# TYPE gocarp_conntrack_table_full_total counter
gocarp_conntrack_table_full_total 1
# HELP gocarp_conntrack_inject_errors_total Remote records that could not be written.
# TYPE gocarp_conntrack_inject_errors_total counter
gocarp_conntrack_inject_errors_total 1
# HELP gocarp_conntrack_liberalized_total This node's TCP flows set to liberal window tracking.
# TYPE gocarp_conntrack_liberalized_total counter
gocarp_conntrack_liberalized_total 2
# HELP gocarp_conntrack_tracked_flows Flows the backend currently knows, local and injected.
# TYPE gocarp_conntrack_tracked_flows gauge
gocarp_conntrack_tracked_flows 42
# HELP gocarp_conntrack_deletes_total Deletes reported to the sync engine.
# TYPE gocarp_conntrack_deletes_total counter
gocarp_conntrack_deletes_total 0
`, "gocarp_conntrack_events_total", "gocarp_conntrack_injected_total", "gocarp_conntrack_table_full_total",
		"gocarp_conntrack_inject_errors_total", "gocarp_conntrack_liberalized_total", "gocarp_conntrack_tracked_flows",
		"gocarp_conntrack_deletes_total")
}

package metrics_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/metrics"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
)

// TestEnginePeerReliability: on a lossy sync link the per-peer
// retransmission, nack and gap counters, labelled by peer, are the
// engine's PeerStats; and a bulk sync in progress shows per peer.
func TestEnginePeerReliability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network, err := pfsynctest.New(&pfsynctest.Config{Seed: 5, Faults: pfsynctest.Faults{Loss: 0.2}})
		if err != nil {
			t.Fatal(err)
		}
		var es []*pfsync.Engine
		for i := 1; i <= 2; i++ {
			e, err := pfsync.New(pfsync.Config{Node: pfsync.NodeID(i), Transport: network.Attach(pfsync.NodeID(i)),
				Table: &pfsync.MemTable{}, Insecure: true, BulkRate: 200, BulkBurst: 1})
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				for k := range 2000 {
					if err := e.Upsert(flow(e.NewID(), uint16(k+1))); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			es = append(es, e)
			if i == 1 {
				time.Sleep(10 * time.Second) // node 1 founds the cluster
			}
		}
		c := metrics.NewEngine(es[1])
		// Halfway through node 2's bulk sync from node 1.
		for es[1].Stats().BulkReceived < 500 {
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		ps := es[1].Stats().Peers[1]
		if ps.BulkExpected != 2000 || ps.BulkReceived == 0 || ps.BulkRanges == 0 {
			t.Fatalf("node 2's view of node 1 during the bulk: %+v", ps)
		}
		compare(t, c, fmt.Sprintf(`
# HELP gocarp_pfsync_peer_bulk_expected_records Records the running bulk sync from the peer announced (0 when none runs).
# TYPE gocarp_pfsync_peer_bulk_expected_records gauge
gocarp_pfsync_peer_bulk_expected_records{peer="1"} %d
# HELP gocarp_pfsync_peer_bulk_received_records Distinct records received so far in the running bulk sync from the peer.
# TYPE gocarp_pfsync_peer_bulk_received_records gauge
gocarp_pfsync_peer_bulk_received_records{peer="1"} %d
# HELP gocarp_pfsync_peer_bulk_ranges Ranges (digest buckets) the running bulk sync from the peer must settle (0 when none runs).
# TYPE gocarp_pfsync_peer_bulk_ranges gauge
gocarp_pfsync_peer_bulk_ranges{peer="1"} %d
# HELP gocarp_pfsync_peer_bulk_ranges_done Ranges of the running bulk sync from the peer settled so far.
# TYPE gocarp_pfsync_peer_bulk_ranges_done gauge
gocarp_pfsync_peer_bulk_ranges_done{peer="1"} %d
`, ps.BulkExpected, ps.BulkReceived, ps.BulkRanges, ps.BulkRangesDone),
			"gocarp_pfsync_peer_bulk_expected_records", "gocarp_pfsync_peer_bulk_received_records",
			"gocarp_pfsync_peer_bulk_ranges", "gocarp_pfsync_peer_bulk_ranges_done")

		// Updates on the lossy link until the bulk is done and losses
		// were repaired.
		for k := 0; !es[1].Stats().BulkDone || k < 200; k++ {
			if err := es[0].Upsert(flow(es[0].NewID(), uint16(5000+k))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		ps, sender := es[1].Stats().Peers[1], metrics.NewEngine(es[0])
		if ps.Gaps == 0 || ps.NacksSent == 0 {
			t.Fatalf("a 20%% lossy link opened no gap or sent no nack: %+v", ps)
		}
		compare(t, c, fmt.Sprintf(`
# HELP gocarp_pfsync_peer_gaps_total Sequence gaps that opened in the peer's stream (frames missing, usually resent).
# TYPE gocarp_pfsync_peer_gaps_total counter
gocarp_pfsync_peer_gaps_total{peer="1"} %d
# HELP gocarp_pfsync_peer_gaps_given_up_total Sequence gaps in the peer's stream given up for good, then resynchronised.
# TYPE gocarp_pfsync_peer_gaps_given_up_total counter
gocarp_pfsync_peer_gaps_given_up_total{peer="1"} %d
# HELP gocarp_pfsync_peer_nacks_sent_total Reports of lost frames sent to the peer.
# TYPE gocarp_pfsync_peer_nacks_sent_total counter
gocarp_pfsync_peer_nacks_sent_total{peer="1"} %d
`, ps.Gaps, ps.GapsGivenUp, ps.NacksSent),
			"gocarp_pfsync_peer_gaps_total", "gocarp_pfsync_peer_gaps_given_up_total", "gocarp_pfsync_peer_nacks_sent_total")
		fp := es[0].Stats().Peers[2]
		if fp.Retransmits == 0 || fp.NacksReceived == 0 {
			t.Fatalf("node 1 retransmitted nothing to node 2: %+v", fp)
		}
		compare(t, sender, fmt.Sprintf(`
# HELP gocarp_pfsync_peer_retransmits_total Records sent to the peer again because it reported their frame lost.
# TYPE gocarp_pfsync_peer_retransmits_total counter
gocarp_pfsync_peer_retransmits_total{peer="2"} %d
# HELP gocarp_pfsync_peer_nacks_received_total Reports of lost frames received from the peer.
# TYPE gocarp_pfsync_peer_nacks_received_total counter
gocarp_pfsync_peer_nacks_received_total{peer="2"} %d
`, fp.Retransmits, fp.NacksReceived), "gocarp_pfsync_peer_retransmits_total", "gocarp_pfsync_peer_nacks_received_total")
	})
}

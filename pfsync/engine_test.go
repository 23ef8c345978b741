package pfsync_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/pfsynctest"
	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/google/go-cmp/cmp"
)

// testRecord returns a valid TCP record with the given id.
func testRecord(id record.ID, port uint16) record.Record {
	orig := record.Tuple{
		Src: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port),
		Dst: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 80),
	}
	return record.Record{
		ID:  id,
		Key: record.Key{Family: record.IPv4, Proto: record.ProtoTCP, Orig: orig, Reply: orig.Reverse()},
	}
}

func TestTwoNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := pfsynctest.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		var tabA, tabB pfsync.MemTable
		a := mustEngine(t, pfsync.Config{Node: 1, Transport: net.Attach(1), Insecure: true, Table: &tabA})
		b := mustEngine(t, pfsync.Config{Node: 2, Transport: net.Attach(2), Insecure: true, Table: &tabB})
		id := a.NewID()
		r := testRecord(id, 1000)
		if err := a.Upsert(r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, ok := tabB.Get(id)
		if !ok {
			t.Fatalf("record not replicated; stats A %+v\nB %+v", a.Stats(), b.Stats())
		}
		if diff := cmp.Diff(r.Key, got.Key, recordOpts); diff != "" {
			t.Errorf("key (-want +got):\n%s", diff)
		}
	})
}

func mustEngine(t *testing.T, cfg pfsync.Config) *pfsync.Engine {
	t.Helper()
	e, err := pfsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// recordOpts lets cmp compare records (netip values have unexported fields).
var recordOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

package viptest_test

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/vip/viptest"
	"github.com/google/go-cmp/cmp"
)

func TestFakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &viptest.Recorder{}
		m := viptest.NewAddrManager(rec, netip.MustParsePrefix("192.0.2.1/24"))
		a := viptest.NewAnnouncer(rec)
		p := netip.MustParsePrefix("192.0.2.10/32")
		t0 := time.Now()
		if err := m.Add(p); err != nil {
			t.Fatal(err)
		}
		if err := m.Add(netip.MustParsePrefix("192.0.2.10/24")); err != nil { // same address: no-op
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := a.Announce([]netip.Addr{p.Addr()}); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		m.SetError(viptest.OpRemove, boom)
		if err := m.Remove(p); !errors.Is(err, boom) {
			t.Fatalf("Remove = %v; want boom", err)
		}
		if !m.Has(p.Addr()) {
			t.Fatal("a failed Remove changed the list")
		}
		m.SetError(viptest.OpRemove, nil)
		if err := m.Remove(p); err != nil {
			t.Fatal(err)
		}
		want := []string{"add 192.0.2.10/32", "add 192.0.2.10/24", "announce [192.0.2.10]", "remove 192.0.2.10/32 (boom)", "remove 192.0.2.10/32"}
		if diff := cmp.Diff(want, rec.Strings()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		calls := rec.Calls()
		if calls[2].At.Sub(t0) != time.Second || calls[2].Seq != 3 {
			t.Errorf("announce call %+v; want Seq 3 at t0+1s", calls[2])
		}

		m.DeleteBehind(netip.MustParsePrefix("192.0.2.1/24"), true)
		select {
		case <-m.Changes():
		default:
			t.Fatal("DeleteBehind did not signal Changes")
		}
		m.AddBehind(p, false)
		select {
		case <-m.Changes():
			t.Fatal("AddBehind(notify=false) signalled")
		default:
		}
		if diff := cmp.Diff([]netip.Prefix{p}, m.Addrs(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("addrs (-want +got):\n%s", diff)
		}
	})
}

func TestFakesConcurrent(t *testing.T) {
	rec := &viptest.Recorder{}
	m := viptest.NewAddrManager(rec)
	a := viptest.NewAnnouncer(rec)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)
			m.Add(p)
			a.Announce([]netip.Addr{p.Addr()})
			m.List()
			m.Remove(p)
		})
	}
	wg.Wait()
	calls := rec.Calls()
	if len(calls) != 32 {
		t.Fatalf("%d calls; want 32", len(calls))
	}
	for i, c := range calls {
		if c.Seq != i+1 {
			t.Fatalf("call %d has Seq %d", i, c.Seq)
		}
	}
	if len(m.Addrs()) != 0 {
		t.Fatalf("addrs left: %v", m.Addrs())
	}
}

package vip_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
	"github.com/google/go-cmp/cmp"
)

var vip3 = netip.MustParseAddr("192.0.2.11")

// TestSetAddressesWhileMaster: a MASTER installs and announces an added
// address, withdraws a removed one and leaves the unchanged one alone (no
// remove, no add, no announcement), once the promotion's schedule is over
// and while it still runs.
func TestSetAddressesWhileMaster(t *testing.T) {
	for _, after := range []time.Duration{10 * time.Second, 500 * time.Millisecond} {
		t.Run(after.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newFixture(t, vip.Config{})
				fx.f.Handle(tr(carp.Master, "master timed out"))
				synctest.Wait()
				time.Sleep(after)
				synctest.Wait()
				n := len(fx.rec.Calls())
				t0 := time.Now()
				if err := fx.f.SetAddresses(vip.Host(vip4, vip3)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Second) // every round of every schedule
				synctest.Wait()
				calls := fx.rec.Calls()[n:]
				var got []string
				for _, c := range calls {
					if c.Op != viptest.OpList { // the periodic reconciliation
						got = append(got, c.String())
					}
				}
				want := []string{
					"remove 2001:db8::10/128",
					"add 192.0.2.11/32",
					"announce [192.0.2.11]", // at once
					"announce [192.0.2.11]", // the repeat, two advert intervals later
				}
				if after < 2*time.Second {
					// The promotion's repeat (at 2 s) falls in between and
					// announces every installed address, as it always has.
					want = []string{want[0], want[1], want[2], "announce [192.0.2.10 192.0.2.11]", want[3]}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("calls after SetAddresses (-want +got):\n%s", diff)
				}
				var got2 []time.Duration
				for _, c := range calls {
					if c.Op == viptest.OpAnnounce && slices.Contains(c.Addrs, vip3) {
						got2 = append(got2, c.At.Sub(t0))
					}
				}
				if got := got2; got[0] != 0 || got[len(got)-1] != 2*time.Second {
					t.Errorf("announcements at %v, want the first at once and the last after 2s", got)
				}
				if diff := cmp.Diff("[192.0.2.10/32 192.0.2.11/32]", fmt.Sprint(fx.mgr.Addrs())); diff != "" {
					t.Errorf("addresses (-want +got):\n%s", diff)
				}
				// Withdrawal on demotion covers the new set.
				n = len(fx.rec.Calls())
				fx.f.Handle(tr(carp.Backup, "more frequent advertisement received"))
				synctest.Wait()
				if diff := cmp.Diff([]string{"remove 192.0.2.10/32", "remove 192.0.2.11/32"}, fx.rec.Strings()[n:]); diff != "" {
					t.Errorf("calls on demotion (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestSetAddressesWhileBackup: a BACKUP only records the new set; the next
// promotion installs it.
func TestSetAddressesWhileBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, vip.Config{})
		fx.f.Handle(tr(carp.Backup, "start-up"))
		synctest.Wait()
		n := len(fx.rec.Calls())
		if err := fx.f.SetAddresses([]vip.VIP{{Addr: vip3, Bits: 24}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		for _, c := range fx.rec.Calls()[n:] {
			if c.Op != viptest.OpList { // the periodic reconciliation
				t.Errorf("BACKUP did %v after SetAddresses", c)
			}
		}
		n = len(fx.rec.Calls())
		fx.f.Handle(tr(carp.Master, "master timed out"))
		synctest.Wait()
		if diff := cmp.Diff([]string{"add 192.0.2.11/24", "announce [192.0.2.11]"}, fx.rec.Strings()[n:]); diff != "" {
			t.Errorf("promotion (-want +got):\n%s", diff)
		}
	})
}

// TestSetAddressesWithTransition: a change that arrives together with a
// promotion installs only the new set; together with a demotion it
// installs nothing.
func TestSetAddressesWithTransition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, vip.Config{})
		n := len(fx.rec.Calls())
		if err := fx.f.SetAddresses(vip.Host(vip3)); err != nil {
			t.Fatal(err)
		}
		fx.f.Handle(tr(carp.Master, "master timed out"))
		synctest.Wait()
		if diff := cmp.Diff([]string{"add 192.0.2.11/32", "announce [192.0.2.11]"}, fx.rec.Strings()[n:]); diff != "" {
			t.Errorf("promotion with a change (-want +got):\n%s", diff)
		}
		n = len(fx.rec.Calls())
		if err := fx.f.SetAddresses(vip.Host(vip3, vip4)); err != nil {
			t.Fatal(err)
		}
		fx.f.Handle(tr(carp.Backup, "more frequent advertisement received"))
		synctest.Wait()
		if diff := cmp.Diff([]string{"remove 192.0.2.11/32"}, fx.rec.Strings()[n:]); diff != "" {
			t.Errorf("demotion with a change (-want +got):\n%s", diff)
		}
	})
}

// TestSetAddressesRemoveFails: a removal that fails is reported and
// retried on the next withdrawal; the address is not announced meanwhile.
func TestSetAddressesRemoveFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, vip.Config{})
		fx.f.Handle(tr(carp.Master, "master timed out"))
		synctest.Wait()
		fx.mgr.SetError(viptest.OpRemove, errors.New("remove: busy"))
		if err := fx.f.SetAddresses(vip.Host(vip4)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := fx.f.Err(); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("Err = %v, want the failed removal", err)
		}
		fx.mgr.SetError(viptest.OpRemove, nil)
		n := len(fx.rec.Calls())
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, c := range fx.rec.Calls()[n:] {
			if c.Op == viptest.OpAnnounce && !slices.Equal(c.Addrs, []netip.Addr{vip4}) {
				t.Errorf("announced %v after the change, want only %v", c.Addrs, vip4)
			}
		}
		fx.f.Handle(tr(carp.Backup, "more frequent advertisement received"))
		synctest.Wait()
		if fx.mgr.Has(vip6) || fx.mgr.Has(vip4) {
			t.Errorf("addresses left after demotion: %v", fx.mgr.Addrs())
		}
	})
}

func TestSetAddressesErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, vip.Config{})
		tests := []struct {
			addrs []vip.VIP
			want  string
		}{
			{nil, "vip: Config.Addrs is empty, want at least one address"},
			{vip.Host(vip4, vip4), "vip: Config.Addrs[1].Addr 192.0.2.10 listed twice"},
			{[]vip.VIP{{Addr: vip4, Bits: 33}}, "vip: Config.Addrs[0].Bits 33 out of range 0-32 (prefix length of 192.0.2.10)"},
		}
		for _, tt := range tests {
			if err := fx.f.SetAddresses(tt.addrs); err == nil || err.Error() != tt.want {
				t.Errorf("SetAddresses(%v) = %v, want %q", tt.addrs, err, tt.want)
			}
		}
		if err := fx.f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := fx.f.SetAddresses(vip.Host(vip3)); err == nil {
			t.Error("SetAddresses after Close succeeded")
		}
	})
}

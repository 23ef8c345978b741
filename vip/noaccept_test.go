package vip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNoAcceptRuleset(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("2001:db8::10"),
		netip.MustParseAddr("192.0.2.10"),
		netip.MustParseAddr("::ffff:192.0.2.11"), // unmapped
		netip.MustParseAddr("192.0.2.10"),        // once
	}
	want := `table inet t
delete table inet t
table inet t {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		ip daddr { 192.0.2.10, 192.0.2.11 } counter drop
		ip6 daddr { 2001:db8::10 } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
		ip6 daddr { 2001:db8::10 } counter drop
	}
}
`
	if diff := cmp.Diff(want, NoAcceptRuleset("t", addrs)); diff != "" {
		t.Errorf("NoAcceptRuleset (-want +got):\n%s", diff)
	}
	// IPv4 only: no IPv6 rule, and no rule at all for no address.
	if got := NoAcceptRuleset("t", addrs[1:2]); strings.Contains(got, "ip6") || !strings.Contains(got, "ip daddr { 192.0.2.10 }") {
		t.Errorf("IPv4 only:\n%s", got)
	}
	if got := NoAcceptRuleset("t", nil); strings.Contains(got, "drop") {
		t.Errorf("no address, yet a drop rule:\n%s", got)
	}
}

// fakeNft records the scripts it is given and fails while err is set.
type fakeNft struct {
	scripts []string
	err     error
}

func (f *fakeNft) run(_ context.Context, nft, script string) error {
	if nft != "/sbin/nft" {
		return errors.New("wrong binary " + nft)
	}
	f.scripts = append(f.scripts, script)
	return f.err
}

func TestNoAcceptLifecycle(t *testing.T) {
	f := &fakeNft{}
	v4 := netip.MustParseAddr("192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	n, err := newNoAccept(10, []netip.Addr{v4}, nil, "/sbin/nft", f.run)
	if err != nil {
		t.Fatal(err)
	}
	if n.Table() != "gocarp_noaccept_10" {
		t.Errorf("Table() = %q; want gocarp_noaccept_10", n.Table())
	}
	if err := n.SetAddresses([]netip.Addr{v4, v6}); err != nil {
		t.Fatal(err)
	}
	f.err = errors.New("exit status 1")
	if err := n.SetAddresses([]netip.Addr{v6}); err == nil || !strings.Contains(err.Error(), "vip: no-accept rule gocarp_noaccept_10: install: exit status 1") {
		t.Errorf("SetAddresses with nft failing: %v", err)
	}
	f.err = nil
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.SetAddresses([]netip.Addr{v4}); err == nil {
		t.Error("SetAddresses after Close succeeded")
	}
	want := []string{
		NoAcceptRuleset("gocarp_noaccept_10", []netip.Addr{v4}),
		NoAcceptRuleset("gocarp_noaccept_10", []netip.Addr{v4, v6}),
		NoAcceptRuleset("gocarp_noaccept_10", []netip.Addr{v6}),
		"table inet gocarp_noaccept_10\ndelete table inet gocarp_noaccept_10\n",
	}
	if diff := cmp.Diff(want, f.scripts); diff != "" {
		t.Errorf("nft scripts (-want +got):\n%s", diff)
	}
}

func TestNoAcceptConfigErrors(t *testing.T) {
	f := &fakeNft{}
	for _, tc := range []struct {
		vhid uint8
		cfg  *NoAcceptConfig
		want string
	}{
		{0, nil, "vip: no-accept rule: vhid 0 out of range 1-255"},
		{1, &NoAcceptConfig{Table: "1table"}, `vip: NoAcceptConfig.Table "1table" is not an nftables name`},
		{1, &NoAcceptConfig{Table: "a b"}, `vip: NoAcceptConfig.Table "a b" is not an nftables name`},
		{1, &NoAcceptConfig{Table: strings.Repeat("a", 65)}, "is not an nftables name"},
	} {
		_, err := newNoAccept(tc.vhid, nil, tc.cfg, "/sbin/nft", f.run)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("vhid %d cfg %+v: %v; want %q", tc.vhid, tc.cfg, err, tc.want)
		}
	}
	if len(f.scripts) != 0 {
		t.Errorf("nft ran for a refused config: %q", f.scripts)
	}
}

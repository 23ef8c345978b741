//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

// TestContestReannounces: a backup that misses the master's adverts (an
// nftables rule in its namespace drops them, as a starved process would
// miss them) takes the group over and announces the VIP with its own MAC,
// while the master, which still hears it, stays MASTER: two masters. With
// --manage-vip the master re-announces the VIP each time it out-ranks the
// other's advert (carp.Config.OnContested), so once the backup hears the
// master again and yields, the neighbour entry of a third host points at
// the master's MAC. Without the re-announcement it keeps the yielded
// node's MAC (a VIP it no longer has) until the entry expires.
func TestContestReannounces(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t, "a", "b")
	a, b := tb.startPair("a", "b", tb.carpdFn(false, "--manage-vip"), tb.carpdFn(false, "--manage-vip"))
	tb.waitVIP("a", true)
	obs := tb.nodes["obs"].ns
	macA, macB := tb.mac("a"), tb.mac("b")
	// The neighbour had talked to the VIP: an entry for it exists.
	obs.IP("neigh", "replace", testVIP.String(), "lladdr", macA, "dev", "eth0", "nud", "stale")

	// b stops hearing a (table name unique to this test's namespaces).
	table := strings.ReplaceAll(tb.tp.Prefix(), "-", "_") + "_contest"
	bns := tb.nodes["b"].ns
	bns.Run("nft", "add table ip "+table+
		"; add chain ip "+table+" in { type filter hook input priority -300 ; }"+
		"; add rule ip "+table+" in ip protocol 112 ip saddr "+tb.nodes["a"].ip.String()+" drop")
	blocked := true
	unblock := func() {
		if !blocked {
			return
		}
		blocked = false
		if out, err := bns.Output("nft", "delete", "table", "ip", table); err != nil {
			t.Errorf("removing the nft table: %v: %s", err, out)
		}
	}
	t.Cleanup(unblock)
	tb.waitVIP("b", true)
	// b's first announcement went out at its takeover, its second two
	// advertisement intervals later: three of its adverts after it
	// became visible as MASTER (each out-ranked by a, which re-announces)
	// end after both.
	tb.obs.waitAdverts(t, tb.nodes["b"].ip, 3)
	if !tb.hasVIP("a") {
		t.Fatal("a lost the VIP while b missed its adverts; the test needs two masters")
	}

	unblock()
	tb.waitVIP("b", false)
	deadline := time.Now().Add(stateTimeout)
	for {
		got := tb.neighMAC(testVIP.String())
		if got == macA {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the neighbour's entry for %v is %q (a is %s, b is %s) %v after b yielded; want a's", testVIP, got, macA, macB, stateTimeout)
		}
		time.Sleep(pollEvery)
	}
	if n := atoi(t, stats(t, a), "contested"); n == 0 {
		t.Error("a: status contested=0, want at least 1")
	}
	if n := atoi(t, stats(t, b), "contested"); n != 0 {
		t.Errorf("b: status contested=%d, want 0 (it was the worse master)", n)
	}
}

// mac returns the MAC address of node name's eth0.
func (tb *testbed) mac(name string) string {
	tb.t.Helper()
	f := strings.Fields(tb.nodes[name].ns.IP("-br", "link", "show", "dev", "eth0"))
	if len(f) < 3 {
		tb.t.Fatalf("%s: no MAC in %q", name, f)
	}
	return f[2]
}

// neighMAC returns the MAC of the observer's neighbour entry for addr, or
// "" if it has none.
func (tb *testbed) neighMAC(addr string) string {
	tb.t.Helper()
	f := strings.Fields(tb.nodes["obs"].ns.IP("neigh", "show", addr, "dev", "eth0"))
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

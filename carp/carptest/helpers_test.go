package carptest_test

import (
	"net/netip"

	"github.com/google/go-cmp/cmp"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

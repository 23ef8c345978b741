//go:build tools

// Package deps pins the module's dependency set while the packages that use
// them are being written. It is never built.
package deps

import (
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/jsimonetti/rtnetlink/v2"
	_ "github.com/jsimonetti/rtnetlink/v2/driver"
	_ "github.com/mdlayher/arp"
	_ "github.com/mdlayher/ethernet"
	_ "github.com/mdlayher/ndp"
	_ "github.com/mdlayher/netlink"
	_ "github.com/mdlayher/packet"
	_ "github.com/ti-mo/conntrack"
	_ "github.com/ti-mo/netfilter"
	_ "golang.org/x/net/bpf"
	_ "golang.org/x/net/ipv4"
	_ "golang.org/x/net/ipv6"
	_ "golang.org/x/sys/unix"
)

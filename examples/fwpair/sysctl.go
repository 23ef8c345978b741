package main

import (
	"os"
	"path/filepath"
	"strings"
)

// linkdownSysctls are the host settings that make the kernel ignore routes
// through an interface without carrier. With them off (the Linux default),
// a packet routed to a next hop on a link that has just lost carrier waits
// in the neighbour queue until resolution is retried after the link came
// back, seconds later, and then reaches its destination after newer
// packets that went through the peer firewall: a flap of the master's WAN
// link reordered a UDP flow in the chaos soak. With them on, such a packet
// finds no route and is dropped at once. docs/interop.md, "Host sysctls".
var linkdownSysctls = []string{
	"net/ipv4/conf/all/ignore_routes_with_linkdown",
	"net/ipv6/conf/all/ignore_routes_with_linkdown",
}

// linkdownOff returns the linkdownSysctls that read "0" under procSys (the
// /proc/sys directory). A setting that cannot be read (an old kernel, no
// IPv6) is not reported: there is nothing the operator could set.
func linkdownOff(procSys string) []string {
	var off []string
	for _, k := range linkdownSysctls {
		b, err := os.ReadFile(filepath.Join(procSys, k))
		if err == nil && strings.TrimSpace(string(b)) == "0" {
			off = append(off, strings.ReplaceAll(k, "/", "."))
		}
	}
	return off
}

package main

import (
	"fmt"
	"net/netip"
)

// checkGroupPeers validates groups[].peers: unicast addresses, each once,
// of a family the group has an address of (the group sends nothing on
// another family).
func checkGroupPeers(where string, g *GroupConfig) error {
	has4, has6 := false, false
	for _, a := range g.Addresses {
		has4 = has4 || a.Unmap().Is4()
		has6 = has6 || !a.Unmap().Is4()
	}
	seen := map[netip.Addr]bool{}
	for i, p := range g.Peers {
		p = p.Unmap()
		if !p.IsValid() || p.IsUnspecified() || p.IsMulticast() || p.IsLoopback() {
			return fmt.Errorf("%s.peers[%d] %v is not a unicast address", where, i, p)
		}
		if seen[p] {
			return fmt.Errorf("%s.peers[%d] %v listed twice", where, i, p)
		}
		seen[p] = true
		if p.Is4() && !has4 || !p.Is4() && !has6 {
			return fmt.Errorf("%s.peers[%d] %v: no address of its family in %s.addresses", where, i, p, where)
		}
	}
	return nil
}

// groupPeers splits a group's unicast peers by family for
// carp.RawConfig.
func groupPeers(gc GroupConfig) (v4, v6 []netip.Addr) {
	for _, p := range gc.Peers {
		if p = p.Unmap(); p.Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

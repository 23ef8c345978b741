// Package vip installs, announces and withdraws the virtual addresses of a
// CARP group on Linux, and optionally gives them CARP's virtual MAC.
//
// The pieces, each usable alone:
//
//   - AddrManager (NetlinkManager on Linux, viptest.AddrManager in tests)
//     adds and removes addresses on one interface over rtnetlink: IPv6
//     without DAD (IFA_F_NODAD), idempotently (adding a present or removing
//     an absent address succeeds), with address notifications
//     (RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR) on Changes.
//   - Announcer (PacketAnnouncer, viptest.Announcer) sends one round of
//     gratuitous ARP (request and reply forms, RFC 5227 §2.3, RFC 5944 §4.6)
//     and unsolicited Neighbor Advertisements (RFC 4861 §7.2.6, Override set)
//     as raw Ethernet frames on AF_PACKET sockets, so it works on an
//     interface without an IPv4 address and while its link-local address is
//     still tentative.
//   - VirtualMAC creates a macvlan link with CARP's virtual MAC
//     00:00:5e:00:01:<vhid> (VRRPv3: VRRPVirtualMACAddr, ...:02:<vrid>
//     for IPv6), for the VIPs to live on.
//   - NoAccept is VRRPv3's accept mode off (keepalived's no_accept): an
//     nftables rule dropping packets addressed to the VIPs while still
//     answering ARP and neighbour discovery for them. Accepting is the
//     default, as in keepalived and in CARP.
//   - Follower ties them to a carp.Group: plug Follower.Handle into
//     carp.Config.OnTransition. On MASTER it runs Config.BeforeInstall
//     (pfsync's "commit state"), installs the addresses, and announces them
//     at once and on the Schedule (by default again two advertisement
//     intervals later, as OpenBSD does); on BACKUP or INIT it withdraws
//     them. It reconciles continuously, on address notifications and on a
//     periodic pass: a MASTER re-adds a VIP removed behind its back (a
//     network restart, UCarp#26) and announces again; any other state
//     removes VIPs it finds, including ones left by a crashed run.
//     Follower.SetAddresses changes the address set at run time: a MASTER
//     installs and announces the added addresses and withdraws the removed
//     ones without touching the others; any other state records the set
//     for the next promotion. Plug Follower.HandleContest into
//     carp.Config.OnContested too: when the MASTER hears another node
//     claim the group and out-ranks it (a split brain healing, a backup
//     that missed an advert), the other node has announced the addresses
//     with its own MAC meanwhile, and the neighbours keep sending there
//     until announced to again; HandleContest announces them again at
//     once (Reannounce), as keepalived does. Without a virtual MAC this
//     is what repairs the neighbour caches; with one it costs a few
//     frames.
//
// Errors name the interface and the address. Errors of the Follower's
// background work go to its logger, to Stats.Errors and to Err.
//
// A typical Linux set-up, with the virtual MAC:
//
//	parent, _ := net.InterfaceByName("eth0")
//	vmac, _ := vip.NewVirtualMAC(parent, 10, nil) // at start-up, not at promotion
//	mgr, _ := vip.NewNetlinkManager(vmac.Interface(), nil)
//	ann, _ := vip.NewPacketAnnouncer(vmac.Interface(), nil) // announces the virtual MAC
//	f, _ := vip.NewFollower(vip.Config{VHID: 10, Addrs: vip.Host(vipAddr), Manager: mgr, Announcer: ann})
//	groupConfig.OnTransition = f.Handle
//	groupConfig.OnContested = f.HandleContest
//	err = f.Start() // before group.Start
//	// ... on shutdown: group.Close(); f.Close(); ann.Close(); mgr.Close(); vmac.Close()
//
// Without a virtual MAC, open the manager and announcer on the parent.
package vip

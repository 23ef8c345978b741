// Package udp carries pfsync frames over UDP. It implements pfsync.Transport
// twice:
//
//   - Unicast sends to a static list of peers from one socket, optionally
//     bound to the sync interface (SO_BINDTODEVICE). It suits routed sync
//     links and clouds without multicast.
//   - Multicast joins a link-local group on one named interface, like BSD
//     pfsync does with IP protocol 240 to 224.0.0.240. Every datagram is sent
//     with TTL (hop limit) 255 and every received datagram must carry 255
//     and have arrived on the sync interface, or it is dropped and counted:
//     the GTSM-style on-link check of pfsync (pfsyncs_badttl,
//     pfsyncs_badif), kept as defence in depth under the seal.
//
// Neither transport authenticates anything: frames must be sealed (package
// pfsync/seal) before they are sent; Datagram.From is only the peer the
// source address belongs to, for logs and for replying.
//
// # Sources
//
// Both transports drop, and count in Stats.UnknownSource, datagrams from
// addresses that are not expected on the sync link, before anything else
// looks at them. Unicast delivers only datagrams from a configured peer
// (its address and port, or its address alone when no other peer shares
// it), so every datagram it returns has a non-zero From. Multicast
// delivers datagrams from MulticastConfig.Sources; by default from the
// addresses of MulticastConfig.Peers when they are listed (as keepalived's
// unicast_peer list does), else from the on-link prefixes of the sync
// interface's own addresses (and fe80::/10 for IPv6), read at
// construction: the dedicated sync segment BSD pfsync and conntrackd
// assume. A source address is easy to forge on the link, so this is no
// authentication either; it keeps stray traffic out and, without a Sealer,
// keeps the engine's peer set to the configured nodes.
//
// # Peers at run time
//
// Unicast.SetPeers and Multicast.SetPeers replace the peer list of a
// running transport, validated as the configuration is; the socket stays
// open. Pair them with pfsync.Engine.AddPeer and RemovePeer (see "Peers at
// run time" in package pfsync).
//
// # Multicast groups and port
//
// The defaults are the groups BSD pfsync uses, DefaultGroup4 (224.0.0.240)
// and DefaultGroup6 (ff12::f0, FreeBSD's "syncpeer ff12::f0"), with UDP port
// DefaultPort (7240, not IANA-assigned). Both groups are link-local in scope:
// 224.0.0.0/24 is never forwarded by routers (RFC 5771) and ff12::/16 is
// link-local, transient (RFC 4291), so sync traffic cannot leak off the
// link even if a router is misconfigured. A host running BSD pfsync on the
// same link sends IP protocol 240 to the same group, which a UDP socket
// never receives.
//
// # System calls
//
// Each datagram is one sendto and one recvfrom system call; a Broadcast
// frame is one sendto per peer. Sending the datagrams of a Broadcast, or
// the several frames the engine has ready at once (a bulk sync, the
// retransmissions an ack asks for), in one sendmmsg (x/net's WriteBatch)
// was measured and saved no CPU: the kernel's work per datagram dominates,
// and WriteBatch costs more than the system calls it saves (BENCHMARKS.md,
// "sendmmsg measured").
//
// # MTU
//
// MTU defaults to what fits a 1500-byte link without fragmentation: 1472
// bytes over IPv4 and 1452 over IPv6 (20 or 40 bytes of IP and 8 of UDP
// header). Send refuses larger frames; received datagrams larger than MTU are
// dropped and counted, so every node of a cluster must use the same MTU.
//
// Sockets are Linux-only where they need Linux options (SO_BINDTODEVICE,
// IP_MULTICAST_ALL); elsewhere those return errors.ErrUnsupported.
package udp

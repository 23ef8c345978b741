// Package sockopt sets the Linux socket options that golang.org/x/net does
// not wrap but that a CARP (or any link-local multicast) receiver needs:
//
//   - IP_MULTICAST_ALL / IPV6_MULTICAST_ALL = 0: by default Linux delivers a
//     multicast datagram to every raw or UDP socket bound to the protocol
//     whenever any socket on the host joined the group on any interface. A
//     receiver that joined 224.0.0.18 on eth0 would also see adverts that
//     arrived on eth1 because another process joined there.
//   - SO_BINDTODEVICE: restricts a socket to one interface, for unicast
//     traffic that multicast membership cannot scope.
//
// AddrOf reads an interface's own address out of an rtnetlink address
// dump, the one netlink detail carp and vip share.
//
// Every function goes through syscall.RawConn.Control and returns every
// error, including the setsockopt error itself; nothing is ignored.
package sockopt

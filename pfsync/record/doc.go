// Package record is the replicated state record of gocarp's state sync: one
// connection-tracking entry of any Go appliance (a Linux conntrack entry, a
// userspace NAT or load-balancer flow), its cluster-wide identity, and the
// merge rule that makes replicas converge.
//
// The model keeps what OpenBSD/FreeBSD pfsync proved necessary and cheap:
// a cluster-unique (creator, id) identity whose id is seeded with
// unix seconds << 32 so restarts never reuse ids (pf_state id allocation),
// per-direction TCP state (pf's pf_state_peer: state level, seqlo, seqhi,
// max window, window scale) merged monotonically per direction, and
// lifetimes sent as remaining seconds so clock skew never matters
// (pfsync's "expire"). It adds what pfsync lacks: an owner-maintained
// Version, against which the engine's tombstones check a late update so it
// cannot resurrect a deleted record (a delete at version v beats every copy
// at v or below), and typed extension blocks that receivers preserve even when they do not
// understand them.
//
// Everything here is a pure value: no I/O, no clock (callers pass the time),
// no goroutines. Package pfsync/wire encodes records and Deltas.
package record

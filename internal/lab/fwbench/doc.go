// Package fwbench is a test lab, not part of the library: the test bench of
// examples/fwpair, a Linux firewall pair in network namespaces (client — LAN
// bridge — fw1, fw2 — WAN bridge — server, plus a dedicated sync link),
// stateful nftables forwarding with source NAT to the WAN virtual address and
// nf_conntrack_tcp_loose=0 (Ruleset), a traffic generator of long-lived,
// sequence-numbered TCP and UDP flows that records resets, loss, disorder,
// NAT rebinding and the largest gap (StartFlows), a synthetic conntrack
// loader (Lab.InjectEstablished), and runners for the HA stacks it compares
// (Stack): gocarp's fwpair in both commit modes and keepalived + conntrackd
// (FTFW over UDP unicast, vrrp_sync_group with conntrackd's shipped
// primary-backup.sh as notify script).
//
// The end-to-end tests of examples/fwpair use the lab; the benchmarks of
// this package measure, in one run, failover survival and gaps and the
// replication of new connections for every stack:
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/lab/fwbench
//
// Environment: FWBENCH_FLOWS (long-lived TCP flows, default 1000),
// FWBENCH_EXTRA (extra established entries of BenchmarkFailoverLoaded,
// default 20000), FWBENCH_CONNS (connections of BenchmarkReplication,
// default 4000), FWBENCH_INJECT (flows of BenchmarkReplicationInject,
// default 50000), FWBENCH_TRIALS (crashes per stack of
// BenchmarkFailoverFast, interleaved, default 3).
//
// Everything needs root and runs only inside namespaces the lab creates.
package fwbench

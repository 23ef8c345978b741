// Package pfsynctest provides an in-memory network for pfsync engines: every
// node attaches with its NodeID and gets a pfsync.Transport whose frames may
// be lost, duplicated, reordered, delayed, cut by partitions and refused above
// an MTU.
//
// The network is deterministic for a given seed: the fate of the k-th frame
// sent from node a to node b (dropped, duplicated, its delay) depends only on
// the seed, a, b and k, not on how goroutines interleave. Receive blocks on a
// channel and delays use plain time timers, so tests running in a
// testing/synctest bubble see idle engines as durably blocked and simulated
// time advances instantly.
//
// Like wireguard-go's conn/bindtest, it is for tests and demos; embedders can
// use it to test their own integration of the engine.
package pfsynctest

// Package track turns health checks into CARP demotion, as keepalived's
// track_script, track_interface, track_process and its TCP_CHECK and
// HTTP_GET checkers do for VRRP.
//
// A [Tracker] runs one [Check] every Config.Interval, bounded by
// Config.Timeout, and after Config.Rise successes or Config.Fall failures
// in a row flips between healthy and failed. While failed it sets the
// demotion Config.Weight on a [Demoter] — carp.Group, or carp.FollowGroup
// to move every group of the node together — under the source
// SourcePrefix+Config.Name; while healthy it clears it. Weight 0 sets
// [FaultDemotion], carp's largest demotion, which forces the group out of
// MASTER whenever the peer is healthier (keepalived's FAULT state; carp has
// no separate fault state and needs none: the demoted node stays a backup
// that would still take over if nobody else could).
//
// The checks: [Script] (a command, killed with its process group on
// timeout), [TCP] (a connect), [HTTP] (a GET and its status), [Process]
// (by pid file or by name, from /proc) and [Interface] (up and carrier).
// Any function can be one through [CheckFunc].
//
// A demotion can never be left behind: Close stops the tracker's
// goroutine, waits for it and only then clears the source, so removing a
// tracker (closing it) always restores the group's priority. The first
// result after Start sets the state at once; hysteresis applies from the
// second.
//
// On shutdown, close the group before its trackers: a demotion cleared
// while the group still runs could let it take over from a healthier peer
// just before it leaves.
package track

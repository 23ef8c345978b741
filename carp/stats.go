package carp

import "sync/atomic"

// Stats are the packet counters of a group, named after the BSD carpstats
// fields (netstat -s -p carp) so operators can correlate them. All count
// since NewGroup.
type Stats struct {
	Ipackets  uint64 // IPv4 packets received on IP protocol 112
	Ipackets6 uint64 // IPv6 packets received on IP protocol 112
	Badif     uint64 // arrived on another interface than Config.IfIndex
	Badttl    uint64 // TTL / hop limit not 255
	Hdrops    uint64 // shorter than the 36-byte CARP header (VRRPv3: than its header and addresses)
	Badsum    uint64 // bad checksum
	Badver    uint64 // CARP version other than 2, or message type other than 1
	Badlen    uint64 // longer than 36 bytes and not VRRP
	Badauth   uint64 // HMAC mismatch (wrong password, vhid or address set); VRRPv3: other addresses listed
	Badvhid   uint64 // valid CARP advert for another vhid
	Badloop   uint64 // an advert with a counter we sent in this life: looped or replayed (OpenBSD counts loops under badauth)
	VRRP      uint64 // VRRPv2/v3 packets on protocol 112 (ignored, not an error)
	// VRRPv2 counts VRRPv2 adverts received by a VRRPv3 group: recognised
	// and ignored (a peer left at keepalived's vrrp_version 2).
	VRRPv2 uint64
	// CARP counts CARP adverts received by a VRRPv3 group (ignored, not
	// an error: the protocols share IP protocol 112).
	CARP      uint64
	Opackets  uint64 // IPv4 adverts sent
	Opackets6 uint64 // IPv6 adverts sent
	Oerrors   uint64 // adverts the transport failed to send (carpstats onomem)
	Preempt   uint64 // transitions to MASTER (OpenBSD carps_preempt)

	// Replay counts valid adverts dropped as stale: a counter the current
	// master (or an earlier incrementing master) already used, or a
	// bow-out that is not the current master's next advert from its
	// address.
	Replay uint64
	// Suppressed counts immediate answers to worse adverts not sent because
	// one had just gone out (the periodic advert still goes out).
	Suppressed uint64
	// Contested counts adverts of another, worse master this MASTER
	// answered at once (Config.OnContested was called, if set, for each):
	// a backup that missed this node's adverts and took over. The ones
	// not answered because an answer had just gone out count under
	// Suppressed only.
	Contested uint64
	// LateTimers counts master-down timers seen so late that this node's
	// protocol loop was not running when they were due (a stopped process,
	// CPU starvation): each was given a second look instead of a takeover.
	LateTimers uint64
	// Unread counts master-down timers that expired on time while received
	// packets waited unread (a stop that ended just before or after the
	// timer fell due): each was given a second look, to read them first,
	// instead of a takeover.
	Unread uint64
}

// stats holds the live counters; Group.Stats reads a snapshot.
type stats struct {
	ipackets, ipackets6, badif, badttl, hdrops, badsum, badver, badlen,
	badauth, badvhid, badloop, vrrp, opackets, opackets6, oerrors,
	preempt, replay, suppressed, contested, lateTimers, unread, vrrpv2, carp atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		Ipackets:   s.ipackets.Load(),
		Ipackets6:  s.ipackets6.Load(),
		Badif:      s.badif.Load(),
		Badttl:     s.badttl.Load(),
		Hdrops:     s.hdrops.Load(),
		Badsum:     s.badsum.Load(),
		Badver:     s.badver.Load(),
		Badlen:     s.badlen.Load(),
		Badauth:    s.badauth.Load(),
		Badvhid:    s.badvhid.Load(),
		Badloop:    s.badloop.Load(),
		VRRP:       s.vrrp.Load(),
		Opackets:   s.opackets.Load(),
		Opackets6:  s.opackets6.Load(),
		Oerrors:    s.oerrors.Load(),
		Preempt:    s.preempt.Load(),
		Replay:     s.replay.Load(),
		Suppressed: s.suppressed.Load(),
		Contested:  s.contested.Load(),
		LateTimers: s.lateTimers.Load(),
		Unread:     s.unread.Load(),
		VRRPv2:     s.vrrpv2.Load(),
		CARP:       s.carp.Load(),
	}
}

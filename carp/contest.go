package carp

import (
	"net/netip"
	"time"
)

// A Contest reports that a MASTER heard another node advertise as master
// of its group and out-ranks it: the other node is a backup that missed
// this node's adverts (a partition that healed, CPU starvation, a lost
// advert) and took over. The MASTER answers with an advert at once, and
// the other node yields to it; but while both were MASTER the other one
// announced the group's addresses, and the LAN's neighbour caches may
// still point at its MAC. Config.OnContested hands the event to the
// embedder so it can announce the addresses again
// (vip.Follower.HandleContest).
type Contest struct {
	VHID   uint8      // the group's virtual host id
	Family Family     // the family of the other master's advert
	Peer   netip.Addr // the other master's source address
	At     time.Time  // when the protocol loop heard it
}

// contested handles an advert of a worse master that this MASTER answers
// at once (see process): it counts it and queues it for
// Config.OnContested. The suppressed adverts (an answer went out less than
// a quarter interval ago) never get here, so the hook is rate-limited as
// the answer is.
func (r *run) contested(f Family, src netip.Addr, now time.Time) {
	g := r.g
	g.st.contested.Add(1)
	if g.ntf != nil {
		g.ntf.pushContest(Contest{VHID: g.cfg.VHID, Family: f, Peer: src, At: now})
	}
	if held, ok := g.contestLog.Allow(f, now); ok {
		// Info, at most one line per family per ratelog.DefaultEvery:
		// a peer that keeps missing this node's adverts (a one-way
		// link) contests every interval, and Stats.Contested counts
		// them all.
		g.log.Info("carp: another master heard; this node out-ranks it and answered", "peer", src, "held", held)
	}
}

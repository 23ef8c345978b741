package main

import (
	"context"
	"fmt"

	ct "github.com/ti-mo/conntrack"
)

// tcpBeLiberal is IP_CT_TCP_FLAG_BE_LIBERAL: conntrack skips the sequence
// window checks of that direction. ctnetlink's TCP flags attribute is
// {flags, mask}; ti-mo/conntrack sends it as flags<<8 | mask.
const tcpBeLiberal = 0x08

// liberalize sets BE_LIBERAL on both directions of every TCP flow of the
// kernel table that lacks it, and returns how many it changed.
//
// Why: a node that takes the groups back (preemption after a link came
// back, a hand-over) still holds the kernel entries of the flows it
// forwarded before, with the sequence windows it tracked then. The peer
// forwarded the flows meanwhile, so the windows are stale, and with
// nf_conntrack_tcp_be_liberal=0 the first packets — acknowledging data
// this node never saw — are INVALID and dropped: every such flow stalls.
// Replicated flows are injected with BE_LIBERAL for the same reason
// (ctnetlink cannot restore windows, conntrackd does the same); the
// conntrack backend does not overwrite flows this node created with the
// peer's newer state (Stats.Conflicts), so fwpair relaxes them here, before
// the addresses move.
func liberalize(ctx context.Context) (int, error) {
	c, err := ct.Dial(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack: %w", err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack dump: %w", err)
	}
	n := 0
	for i := range flows {
		f := &flows[i]
		tcp := f.ProtoInfo.TCP
		if f.TupleOrig.Proto.Protocol != 6 || tcp == nil {
			continue
		}
		// Dumped flags are flags<<8 (the mask byte is 0).
		if tcp.OriginalFlags>>8&tcpBeLiberal != 0 && tcp.ReplyFlags>>8&tcpBeLiberal != 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		u := ct.Flow{TupleOrig: f.TupleOrig, Zone: f.Zone, ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
			State:               tcp.State,
			OriginalWindowScale: tcp.OriginalWindowScale,
			ReplyWindowScale:    tcp.ReplyWindowScale,
			OriginalFlags:       tcpBeLiberal<<8 | tcpBeLiberal,
			ReplyFlags:          tcpBeLiberal<<8 | tcpBeLiberal,
		}}}
		if err := c.Update(u); err != nil {
			continue // the flow ended meanwhile
		}
		n++
	}
	return n, nil
}

package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/gocarp/gocarp/pfsync/record"
	ct "github.com/ti-mo/conntrack"
)

// Conntrack TCP states (enum tcp_conntrack, linux/netfilter/nf_conntrack_tcp.h).
const (
	tcpNone        uint8 = 0
	tcpSynSent     uint8 = 1
	tcpSynRecv     uint8 = 2
	tcpEstablished uint8 = 3
	tcpFinWait     uint8 = 4
	tcpCloseWait   uint8 = 5
	tcpLastAck     uint8 = 6
	tcpTimeWait    uint8 = 7
	tcpClose       uint8 = 8
	tcpSynSent2    uint8 = 9
)

// Per-direction TCP flags (IP_CT_TCP_FLAG_*, nf_conntrack_tcp.h). In
// CTA_PROTOINFO_TCP_FLAGS_* they travel as struct nf_ct_tcp_flags {flags,
// mask}, which ti-mo/conntrack exposes as one big-endian uint16: flags in the
// high byte, mask in the low byte.
const (
	tcpFlagWindowScale uint8 = 0x01
	tcpFlagSACKPerm    uint8 = 0x02
	tcpFlagCloseInit   uint8 = 0x04
	tcpFlagBeLiberal   uint8 = 0x08

	// tcpFlagsManaged are the flags an injection sets or clears; the kernel
	// keeps the others (DATA_UNACKNOWLEDGED, MAXACK_SET, ...).
	tcpFlagsManaged = tcpFlagWindowScale | tcpFlagSACKPerm | tcpFlagCloseInit | tcpFlagBeLiberal
)

// flowKey is the identity of a kernel flow: its original tuple, protocol and
// zone, which ctnetlink uses to look an entry up.
type flowKey struct {
	proto uint8
	zone  uint16
	orig  record.Tuple
}

func keyOf(k *record.Key) flowKey { return flowKey{proto: k.Proto, zone: k.Zone, orig: k.Orig} }

func (k flowKey) String() string {
	return fmt.Sprintf("proto %d zone %d %v -> %v", k.proto, k.zone, k.orig.Src, k.orig.Dst)
}

// isICMP reports whether proto carries ICMP type/code/id instead of ports.
func isICMP(proto uint8) bool { return proto == record.ProtoICMP || proto == record.ProtoICMPv6 }

// tupleToRecord converts one conntrack tuple. ICMP tuples put the identifier
// in the source port and type<<8|code in the destination port, which is how
// the kernel lays out struct nf_conntrack_tuple (src.u.icmp.id,
// dst.u.icmp.type/code).
func tupleToRecord(t *ct.Tuple) record.Tuple {
	sp, dp := t.Proto.SourcePort, t.Proto.DestinationPort
	if isICMP(t.Proto.Protocol) {
		sp, dp = t.Proto.ICMPID, uint16(t.Proto.ICMPType)<<8|uint16(t.Proto.ICMPCode)
	}
	return record.Tuple{
		Src: netip.AddrPortFrom(t.IP.SourceAddress.WithZone(""), sp),
		Dst: netip.AddrPortFrom(t.IP.DestinationAddress.WithZone(""), dp),
	}
}

func tupleToFlow(t record.Tuple, proto uint8) ct.Tuple {
	var out ct.Tuple
	out.IP.SourceAddress, out.IP.DestinationAddress = t.Src.Addr(), t.Dst.Addr()
	out.Proto.Protocol = proto
	sp, dp := t.Src.Port(), t.Dst.Port()
	switch proto {
	case record.ProtoICMP, record.ProtoICMPv6:
		out.Proto.ICMPv4, out.Proto.ICMPv6 = proto == record.ProtoICMP, proto == record.ProtoICMPv6
		out.Proto.ICMPID, out.Proto.ICMPType, out.Proto.ICMPCode = sp, uint8(dp>>8), uint8(dp)
	default:
		out.Proto.SourcePort, out.Proto.DestinationPort = sp, dp
	}
	return out
}

// tcpLevels maps a conntrack TCP state onto the two per-direction levels of
// the record model (see the table at record.Level). closerReply tells
// whether the reply direction sent the first FIN (its CLOSE_INIT flag).
func tcpLevels(state uint8, closerReply bool) [2]record.Level {
	var closer, other record.Level
	switch state {
	case tcpSynSent:
		return [2]record.Level{record.TCPSynSent, record.TCPNone}
	case tcpSynSent2, tcpSynRecv:
		return [2]record.Level{record.TCPSynSent, record.TCPSynSent}
	case tcpEstablished:
		return [2]record.Level{record.TCPEstablished, record.TCPEstablished}
	case tcpFinWait, tcpCloseWait:
		closer, other = record.TCPClosing, record.TCPEstablished
	case tcpLastAck:
		closer, other = record.TCPFinAcked, record.TCPClosing
	case tcpTimeWait:
		return [2]record.Level{record.TCPTimeWait, record.TCPTimeWait}
	case tcpClose:
		return [2]record.Level{record.TCPClosed, record.TCPClosed}
	default:
		return [2]record.Level{record.TCPNone, record.TCPNone}
	}
	if closerReply {
		return [2]record.Level{other, closer}
	}
	return [2]record.Level{closer, other}
}

// tcpState is the inverse of tcpLevels for any pair of levels, including
// pairs a merge of two copies can produce that no single conntrack state
// maps to: it picks the most advanced state the levels imply. hint, the
// conntrack state the creator saw (the record's Timeout class), decides
// between states that share levels (SYN_RECV/SYN_SENT2,
// FIN_WAIT/CLOSE_WAIT) when it is consistent with them.
func tcpState(l [2]record.Level, hint uint8) (state uint8, closerReply bool) {
	hi, lo := max(l[0], l[1]), min(l[0], l[1])
	closerReply = l[1] > l[0]
	switch {
	case hi >= record.TCPClosed:
		return tcpClose, false
	case hi >= record.TCPTimeWait:
		return tcpTimeWait, false
	case hi == record.TCPFinAcked || lo >= record.TCPClosing:
		return tcpLastAck, closerReply
	case hi == record.TCPClosing:
		if hint == tcpCloseWait {
			return tcpCloseWait, closerReply
		}
		return tcpFinWait, closerReply
	case hi == record.TCPEstablished:
		return tcpEstablished, false
	case lo == record.TCPSynSent:
		if hint == tcpSynSent2 {
			return tcpSynSent2, false
		}
		return tcpSynRecv, false
	case hi == record.TCPSynSent:
		return tcpSynSent, false
	}
	return tcpNone, false
}

// otherLevels maps the status of a flow without connection state (UDP,
// ICMP, ...) onto levels: the original direction has been seen once, the
// reply direction once SEEN_REPLY is set, both "multiple" once ASSURED.
func otherLevels(s ct.Status) [2]record.Level {
	switch {
	case s.Assured():
		return [2]record.Level{record.Multiple, record.Multiple}
	case s.SeenReply():
		return [2]record.Level{record.Single, record.Single}
	}
	return [2]record.Level{record.Single, record.NoTraffic}
}

// flowToRecord converts a kernel flow into a record with identity id and
// version. now computes Age from the flow's start timestamp, which the
// kernel only reports with net.netfilter.nf_conntrack_timestamp=1.
//
// Carried: both tuples (so NAT is included), protocol, zone, status bits
// (Flags), TCP state (as per-direction levels, the raw state in Timeout)
// and window scales, remaining lifetime (Expire), counters (with
// nf_conntrack_acct=1), mark (ExtMark), labels (ExtLabels), helper name
// (ExtHelper) and the master tuple of RELATED flows (ExtMaster). Not
// carried: sequence adjustments, synproxy data, the security context.
func flowToRecord(f *ct.Flow, id record.ID, version uint64, now time.Time) (record.Record, error) {
	r := record.Record{ID: id, Version: version, Expire: f.Timeout, Flags: uint32(f.Status)}
	src := f.TupleOrig.IP.SourceAddress
	switch {
	case src.Is4():
		r.Key.Family = record.IPv4
	case src.Is6():
		r.Key.Family = record.IPv6
	default:
		return record.Record{}, fmt.Errorf("conntrack: flow %v: no original source address", f.TupleOrig)
	}
	r.Key.Proto = f.TupleOrig.Proto.Protocol
	r.Key.Zone = f.Zone
	r.Key.Orig = tupleToRecord(&f.TupleOrig)
	r.Key.Reply = tupleToRecord(&f.TupleReply)
	if !f.TupleReply.IP.SourceAddress.IsValid() {
		r.Key.Reply = r.Key.Orig.Reverse()
	}
	if tcp := f.ProtoInfo.TCP; tcp != nil && r.Key.Proto == record.ProtoTCP {
		of, rf := uint8(tcp.OriginalFlags>>8), uint8(tcp.ReplyFlags>>8)
		lv := tcpLevels(tcp.State, rf&tcpFlagCloseInit != 0 && of&tcpFlagCloseInit == 0)
		scaled := of&tcpFlagWindowScale != 0 && rf&tcpFlagWindowScale != 0
		r.Peers[record.Orig] = record.Peer{Level: lv[0], WScale: min(tcp.OriginalWindowScale, record.MaxWScale), Scaled: scaled}
		r.Peers[record.Reply] = record.Peer{Level: lv[1], WScale: min(tcp.ReplyWindowScale, record.MaxWScale), Scaled: scaled}
		r.Timeout = tcp.State
	} else if r.Key.Proto != record.ProtoTCP {
		lv := otherLevels(f.Status)
		r.Peers[record.Orig].Level, r.Peers[record.Reply].Level = lv[0], lv[1]
	}
	r.Packets = [2]uint64{f.CountersOrig.Packets, f.CountersReply.Packets}
	r.Bytes = [2]uint64{f.CountersOrig.Bytes, f.CountersReply.Bytes}
	if !f.Timestamp.Start.IsZero() && now.After(f.Timestamp.Start) {
		r.Age = uint32(min(now.Sub(f.Timestamp.Start)/time.Second, 1<<32-1))
	}
	if f.Mark != 0 {
		r.Ext = append(r.Ext, record.Ext{Type: record.ExtMark, Data: binary.BigEndian.AppendUint32(nil, f.Mark)})
	}
	if labelsSet(f.Labels) {
		r.Ext = append(r.Ext, record.Ext{Type: record.ExtLabels, Data: append([]byte(nil), f.Labels...)})
	}
	if f.Helper.Name != "" {
		r.Ext = append(r.Ext, record.Ext{Type: record.ExtHelper, Data: []byte(f.Helper.Name)})
	}
	if f.TupleMaster.IP.SourceAddress.IsValid() {
		m := MasterTuple{Family: r.Key.Family, Proto: f.TupleMaster.Proto.Protocol, Orig: tupleToRecord(&f.TupleMaster)}
		data, err := m.AppendBinary(nil)
		if err != nil {
			return record.Record{}, fmt.Errorf("conntrack: flow %v: %w", f.TupleOrig, err)
		}
		r.Ext = append(r.Ext, record.Ext{Type: ExtMaster, Data: data})
	}
	if err := r.Validate(); err != nil {
		return record.Record{}, fmt.Errorf("conntrack: flow %v: %w", f.TupleOrig, err)
	}
	return r, nil
}

func labelsSet(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return true
		}
	}
	return false
}

// maxLabels is NF_CT_LABELS_MAX_SIZE: 128 label bits.
const maxLabels = 16

// maxHelperName is the longest helper name the kernel has: NF_CT_HELPER_NAME_LEN
// (16) with its terminating NUL.
const maxHelperName = 15

// recordToFlow converts a replicated record into the flow to write into the
// kernel. The result is what the record says; InjectStatus and the TCP
// injection flags are applied by the message builder, not here, so the
// conversion round-trips. It fails on records the kernel cannot represent:
// invalid keys, labels that are not 4-16 bytes in multiples of 4, a helper
// name longer than 15 bytes, a master extension that does not parse.
func recordToFlow(r *record.Record) (ct.Flow, error) {
	var f ct.Flow
	if err := r.Validate(); err != nil {
		return f, fmt.Errorf("conntrack: record %v: %w", r.ID, err)
	}
	k := &r.Key
	f.TupleOrig = tupleToFlow(k.Orig, k.Proto)
	f.TupleReply = tupleToFlow(k.Reply, k.Proto)
	f.Zone = k.Zone
	f.Status = ct.Status(r.Flags)
	f.Timeout = r.Expire
	f.CountersOrig = ct.Counter{Packets: r.Packets[record.Orig], Bytes: r.Bytes[record.Orig]}
	f.CountersReply = ct.Counter{Direction: true, Packets: r.Packets[record.Reply], Bytes: r.Bytes[record.Reply]}
	if k.Proto == record.ProtoTCP {
		o, p := r.Peers[record.Orig], r.Peers[record.Reply]
		state, closerReply := tcpState([2]record.Level{o.Level, p.Level}, r.Timeout)
		var of, rf uint8
		if o.Scaled && p.Scaled {
			of, rf = tcpFlagWindowScale, tcpFlagWindowScale
		}
		switch {
		case state == tcpFinWait || state == tcpCloseWait || state == tcpLastAck:
			if closerReply {
				rf |= tcpFlagCloseInit
			} else {
				of |= tcpFlagCloseInit
			}
		}
		f.ProtoInfo.TCP = &ct.ProtoInfoTCP{
			State:               state,
			OriginalWindowScale: o.WScale,
			ReplyWindowScale:    p.WScale,
			OriginalFlags:       uint16(of) << 8,
			ReplyFlags:          uint16(rf) << 8,
		}
	}
	for _, e := range r.Ext {
		switch e.Type {
		case record.ExtMark:
			if len(e.Data) != 4 {
				return ct.Flow{}, fmt.Errorf("conntrack: record %v: mark extension of %d bytes (must be 4)", r.ID, len(e.Data))
			}
			f.Mark = binary.BigEndian.Uint32(e.Data)
		case record.ExtLabels:
			if len(e.Data) == 0 || len(e.Data) > maxLabels || len(e.Data)%4 != 0 {
				return ct.Flow{}, fmt.Errorf("conntrack: record %v: labels extension of %d bytes (must be 4-16, a multiple of 4)", r.ID, len(e.Data))
			}
			f.Labels = append([]byte(nil), e.Data...)
		case record.ExtHelper:
			// Never written (the kernel attaches its own helpers), but kept
			// with the flow: no longer than a kernel helper's name.
			if len(e.Data) > maxHelperName {
				return ct.Flow{}, fmt.Errorf("conntrack: record %v: helper extension of %d bytes (must be 0-%d)", r.ID, len(e.Data), maxHelperName)
			}
			f.Helper.Name = string(e.Data)
		case ExtMaster:
			var m MasterTuple
			if err := m.UnmarshalBinary(e.Data); err != nil {
				return ct.Flow{}, fmt.Errorf("conntrack: record %v: %w", r.ID, err)
			}
			if m.Family != k.Family {
				return ct.Flow{}, fmt.Errorf("conntrack: record %v: master tuple family %v differs from the flow's %v", r.ID, m.Family, k.Family)
			}
			f.TupleMaster = tupleToFlow(m.Orig, m.Proto)
		}
	}
	return f, nil
}

package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/pfsync/record"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// ctnetlink message types and attributes (linux/netfilter/nfnetlink_conntrack.h).
// ti-mo/conntrack marshals flows itself but cannot send CTA_NAT_SRC/CTA_NAT_DST:
// without them the kernel ignores the NAT status bits (they are
// unchangeable) and an injected flow with a translated reply tuple would
// match packets without translating them. The injector therefore builds its
// own NEW messages.
const (
	ctMsgNew = 0

	ctaTupleOrig     = 1
	ctaTupleReply    = 2
	ctaStatus        = 3
	ctaProtoInfo     = 4
	ctaNATSrc        = 6
	ctaTimeout       = 7
	ctaMark          = 8
	ctaNATDst        = 13
	ctaTupleMaster   = 14
	ctaZone          = 18
	ctaLabels        = 22
	ctaLabelsMask    = 23
	ctaTupleIP       = 1
	ctaTupleProto    = 2
	ctaIPv4Src       = 1
	ctaIPv4Dst       = 2
	ctaIPv6Src       = 3
	ctaIPv6Dst       = 4
	ctaProtoNum      = 1
	ctaProtoSrcPort  = 2
	ctaProtoDstPort  = 3
	ctaProtoICMPID   = 4
	ctaProtoICMPType = 5
	ctaProtoICMPCode = 6
	ctaProtoICMP6ID  = 7
	ctaProtoICMP6Typ = 8
	ctaProtoICMP6Cod = 9
	ctaProtoInfoTCP  = 1
	ctaTCPState      = 1
	ctaTCPWScaleOrig = 2
	ctaTCPWScaleRepl = 3
	ctaTCPFlagsOrig  = 4
	ctaTCPFlagsRepl  = 5
	ctaNATV4MinIP    = 1
	ctaNATV4MaxIP    = 2
	ctaNATProto      = 3
	ctaNATV6MinIP    = 4
	ctaNATV6MaxIP    = 5
	ctaProtoNATMin   = 1
	ctaProtoNATMax   = 2
)

// injectFlags returns the per-direction TCP flags and mask an injected flow
// carries: BE_LIBERAL (no window checks: ctnetlink cannot restore the
// sequence windows, so the first packets after a failover would otherwise
// be INVALID, conntrackd does the same), SACK_PERM, the WINDOW_SCALE and
// CLOSE_INIT flags the record implies, and CLOSE_INIT on both directions for
// TIME_WAIT and CLOSE so that a new SYN may reopen the tuple (conntrackd).
func injectFlags(tcp *ct.ProtoInfoTCP) (orig, reply uint16) {
	of := uint8(tcp.OriginalFlags>>8)&(tcpFlagWindowScale|tcpFlagCloseInit) | tcpFlagBeLiberal | tcpFlagSACKPerm
	rf := uint8(tcp.ReplyFlags>>8)&(tcpFlagWindowScale|tcpFlagCloseInit) | tcpFlagBeLiberal | tcpFlagSACKPerm
	if tcp.State == tcpTimeWait || tcp.State == tcpClose {
		of |= tcpFlagCloseInit
		rf |= tcpFlagCloseInit
	}
	return uint16(of)<<8 | uint16(tcpFlagsManaged), uint16(rf)<<8 | uint16(tcpFlagsManaged)
}

// natOf derives the NAT set-up the kernel needs to rebuild f's reply tuple
// from its original tuple: source NAT when the reply goes to another address
// (or port, or ICMP id) than the original source, destination NAT when it
// comes from another address (or port) than the original destination.
func natOf(f *ct.Flow) (snat, dnat bool) {
	o, r := &f.TupleOrig, &f.TupleReply
	if isICMP(o.Proto.Protocol) {
		snat = r.IP.DestinationAddress != o.IP.SourceAddress || r.Proto.ICMPID != o.Proto.ICMPID
		dnat = r.IP.SourceAddress != o.IP.DestinationAddress
		return snat, dnat
	}
	snat = r.IP.DestinationAddress != o.IP.SourceAddress || r.Proto.DestinationPort != o.Proto.SourcePort
	dnat = r.IP.SourceAddress != o.IP.DestinationAddress || r.Proto.SourcePort != o.Proto.DestinationPort
	return snat, dnat
}

// hasPorts reports whether proto has a port (or ICMP id) the kernel's NAT can
// map: TCP, UDP, UDP-Lite, SCTP, DCCP, ICMP and ICMPv6.
func hasPorts(proto uint8) bool {
	switch proto {
	case 6, 17, 136, 132, 33, record.ProtoICMP, record.ProtoICMPv6:
		return true
	}
	return false
}

// untranslated returns the reply tuple of f without NAT: the original tuple
// reversed (for ICMP with the reply's type and code and the original id).
func untranslated(f *ct.Flow) ct.Tuple {
	o := &f.TupleOrig
	r := ct.Tuple{Zone: f.TupleReply.Zone}
	r.IP.SourceAddress, r.IP.DestinationAddress = o.IP.DestinationAddress, o.IP.SourceAddress
	r.Proto = o.Proto
	if isICMP(o.Proto.Protocol) {
		r.Proto.ICMPType, r.Proto.ICMPCode = f.TupleReply.Proto.ICMPType, f.TupleReply.Proto.ICMPCode
	} else {
		r.Proto.SourcePort, r.Proto.DestinationPort = o.Proto.DestinationPort, o.Proto.SourcePort
	}
	return r
}

// nlattr is an append-only netlink attribute writer: the header (length,
// type) in host byte order, the payload in network byte order as
// ctnetlink wants it, each attribute padded to 4 bytes. It replaces
// netlink.AttributeEncoder, whose closures cost ~70 allocations per flow.
type nlattr []byte

const nlaFNested = 0x8000

func (b nlattr) attr(typ uint16, n int) (nlattr, []byte) {
	l := 4 + n
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	start := len(b)
	b = append(b, make([]byte, (l+3)&^3-4)...)
	return b, b[start : start+n]
}

func (b nlattr) u8(typ uint16, v uint8) nlattr {
	b, p := b.attr(typ, 1)
	p[0] = v
	return b
}

func (b nlattr) u16(typ uint16, v uint16) nlattr {
	b, p := b.attr(typ, 2)
	binary.BigEndian.PutUint16(p, v)
	return b
}

func (b nlattr) u32(typ uint16, v uint32) nlattr {
	b, p := b.attr(typ, 4)
	binary.BigEndian.PutUint32(p, v)
	return b
}

func (b nlattr) bytes(typ uint16, v []byte) nlattr {
	b, p := b.attr(typ, len(v))
	copy(p, v)
	return b
}

func (b nlattr) addr(typ uint16, a netip.Addr) nlattr {
	if a.Is4() {
		v := a.As4()
		return b.bytes(typ, v[:])
	}
	v := a.As16()
	return b.bytes(typ, v[:])
}

// nest opens a nested attribute; close it with end.
func (b nlattr) nest(typ uint16) (nlattr, int) {
	start := len(b)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint16(b, typ|nlaFNested)
	return b, start
}

func (b nlattr) end(start int) nlattr {
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	return b
}

func (b nlattr) tuple(typ uint16, t *ct.Tuple) nlattr {
	b, outer := b.nest(typ)
	b, ip := b.nest(ctaTupleIP)
	if t.IP.SourceAddress.Is4() {
		b = b.addr(ctaIPv4Src, t.IP.SourceAddress).addr(ctaIPv4Dst, t.IP.DestinationAddress)
	} else {
		b = b.addr(ctaIPv6Src, t.IP.SourceAddress).addr(ctaIPv6Dst, t.IP.DestinationAddress)
	}
	b = b.end(ip)
	b, pr := b.nest(ctaTupleProto)
	p := &t.Proto
	b = b.u8(ctaProtoNum, p.Protocol)
	switch p.Protocol {
	case record.ProtoICMP:
		b = b.u16(ctaProtoICMPID, p.ICMPID).u8(ctaProtoICMPType, p.ICMPType).u8(ctaProtoICMPCode, p.ICMPCode)
	case record.ProtoICMPv6:
		b = b.u16(ctaProtoICMP6ID, p.ICMPID).u8(ctaProtoICMP6Typ, p.ICMPType).u8(ctaProtoICMP6Cod, p.ICMPCode)
	default:
		b = b.u16(ctaProtoSrcPort, p.SourcePort).u16(ctaProtoDstPort, p.DestinationPort)
	}
	return b.end(pr).end(outer)
}

// nat encodes a NAT set-up mapping to the address and port (or ICMP id) of
// the reply tuple's source (addrIsSrc, destination NAT) or destination.
func (b nlattr) nat(typ uint16, t *ct.Tuple, addrIsSrc bool) nlattr {
	addr, port := t.IP.DestinationAddress, t.Proto.DestinationPort
	if addrIsSrc {
		addr, port = t.IP.SourceAddress, t.Proto.SourcePort
	}
	if isICMP(t.Proto.Protocol) {
		port = t.Proto.ICMPID
	}
	b, n := b.nest(typ)
	if addr.Is4() {
		b = b.addr(ctaNATV4MinIP, addr).addr(ctaNATV4MaxIP, addr)
	} else {
		b = b.addr(ctaNATV6MinIP, addr).addr(ctaNATV6MaxIP, addr)
	}
	if hasPorts(t.Proto.Protocol) {
		var p int
		b, p = b.nest(ctaNATProto)
		b = b.u16(ctaProtoNATMin, port).u16(ctaProtoNATMax, port).end(p)
	}
	return b.end(n)
}

func family(f *ct.Flow) netfilter.ProtoFamily {
	if f.TupleOrig.IP.SourceAddress.Is4() {
		return netfilter.ProtoIPv4
	}
	return netfilter.ProtoIPv6
}

// buildMessage encodes the ctnetlink NEW message that creates (create) or
// updates f. A create carries both tuples, the NAT set-up, the master tuple
// and every changeable attribute; an update only the original tuple, the
// zone and the changeable attributes, because the kernel rejects NAT,
// helper and master attributes on an existing entry. Status goes through
// InjectStatus, TCP flags through injectFlags, and the timeout is at least
// one second (zero is "no timeout" to the kernel and refused on create).
func buildMessage(f *ct.Flow, create bool) (netlink.Message, error) {
	return appendMessage(make([]byte, 0, 256), f, create, true)
}

// appendMessage is buildMessage writing the message body into buf. An
// update without status leaves the kernel's status bits as they are.
func appendMessage(buf []byte, f *ct.Flow, create, status bool) (netlink.Message, error) {
	if !f.TupleOrig.IP.SourceAddress.IsValid() || !f.TupleOrig.IP.DestinationAddress.IsValid() ||
		f.TupleOrig.IP.SourceAddress.Is4() != f.TupleOrig.IP.DestinationAddress.Is4() {
		return netlink.Message{}, fmt.Errorf("conntrack: encode %v: original tuple addresses unset or of different families", f.TupleOrig)
	}
	// struct nfgenmsg: family, version NFNETLINK_V0, resource id 0.
	b := nlattr(append(buf, byte(family(f)), 0, 0, 0))
	b = b.tuple(ctaTupleOrig, &f.TupleOrig)
	snat, dnat := natOf(f)
	if create {
		reply := f.TupleReply
		if snat || dnat {
			// The kernel computes the translated reply tuple itself from
			// the NAT set-up, starting from the untranslated one; given the
			// translated tuple it sees nothing to translate and leaves the
			// NAT status bits clear, so packets would not be translated.
			reply = untranslated(f)
		}
		b = b.tuple(ctaTupleReply, &reply)
	}
	if f.Zone != 0 {
		b = b.u16(ctaZone, f.Zone)
	}
	b = b.u32(ctaTimeout, max(f.Timeout, 1))
	if create || status {
		b = b.u32(ctaStatus, InjectStatus(uint32(f.Status)))
	}
	if f.Mark != 0 || !create {
		b = b.u32(ctaMark, f.Mark)
	}
	if tcp := f.ProtoInfo.TCP; tcp != nil {
		of, rf := injectFlags(tcp)
		var pi, ti int
		b, pi = b.nest(ctaProtoInfo)
		b, ti = b.nest(ctaProtoInfoTCP)
		b = b.u8(ctaTCPState, tcp.State).u8(ctaTCPWScaleOrig, tcp.OriginalWindowScale).u8(ctaTCPWScaleRepl, tcp.ReplyWindowScale)
		b = b.u16(ctaTCPFlagsOrig, of).u16(ctaTCPFlagsRepl, rf)
		b = b.end(ti).end(pi)
	}
	if len(f.Labels) > 0 {
		b = b.bytes(ctaLabels, f.Labels)
		if !create {
			var mask []byte
			b, mask = b.attr(ctaLabelsMask, len(f.Labels))
			for i := range mask {
				mask[i] = 0xff
			}
		}
	}
	if create {
		if dnat {
			b = b.nat(ctaNATDst, &f.TupleReply, true)
		}
		if snat {
			b = b.nat(ctaNATSrc, &f.TupleReply, false)
		}
		if f.TupleMaster.IP.SourceAddress.IsValid() {
			b = b.tuple(ctaTupleMaster, &f.TupleMaster)
		}
	}
	flags := netlink.Request | netlink.Acknowledge
	if create {
		flags |= netlink.Create | netlink.Excl
	}
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(uint16(netfilter.NFSubsysCTNetlink)<<8 | ctMsgNew),
			Flags: flags,
		},
		Data: b,
	}, nil
}

// liberalMessage encodes the update that sets BE_LIBERAL and SACK_PERM on
// both directions of the TCP flow k and changes nothing else: the kernel
// (nlattr_to_tcp) applies the flags under their mask and leaves the state,
// the timeout and the status alone when their attributes are absent.
func liberalMessage(k flowKey) netlink.Message {
	t := tupleToFlow(k.orig, k.proto)
	fam := netfilter.ProtoIPv4
	if k.orig.Src.Addr().Is6() {
		fam = netfilter.ProtoIPv6
	}
	b := nlattr(append(make([]byte, 0, 96), byte(fam), 0, 0, 0))
	b = b.tuple(ctaTupleOrig, &t)
	if k.zone != 0 {
		b = b.u16(ctaZone, k.zone)
	}
	const lib = uint16(tcpFlagBeLiberal|tcpFlagSACKPerm)<<8 | uint16(tcpFlagBeLiberal|tcpFlagSACKPerm)
	var pi, ti int
	b, pi = b.nest(ctaProtoInfo)
	b, ti = b.nest(ctaProtoInfoTCP)
	b = b.u16(ctaTCPFlagsOrig, lib).u16(ctaTCPFlagsRepl, lib)
	b = b.end(ti).end(pi)
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(uint16(netfilter.NFSubsysCTNetlink)<<8 | ctMsgNew),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: b,
	}
}

package conntrack

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// decodeEvent decodes a conntrack event as ct.Event.Unmarshal does, into
// the caller's Flow, for the messages the kernel sends about flows: the
// tuples, status, timeout, mark, zone, id, use, labels, TCP protocol info,
// helper, counters, timestamps and SYN proxy. It returns false, having written
// nothing the caller may use, for any other message — an attribute it does
// not know, a length it does not expect, one attribute twice — and the
// caller then decodes it with Unmarshal, which gives the same result where
// decodeEvent gives one (FuzzDecodeEvent checks that) and its own errors
// elsewhere.
//
// Why not Unmarshal for everything: it copies every attribute and builds a
// decoder for every nested one, 38 allocations and 1.9 KB for an event of
// an established TCP flow, and the watcher reads several events per new
// connection (and one per record of a takeover commit, the echo of each
// write). decodeEvent allocates only the TCP protocol info, labels and
// helper name.
func decodeEvent(m netlink.Message, f *ct.Flow) (ct.Event, bool) {
	var ev ct.Event
	if uint16(m.Header.Type)>>8 != uint16(netfilter.NFSubsysCTNetlink) || len(m.Data) < 4 {
		return ev, false
	}
	switch uint16(m.Header.Type) & 0xff {
	case ctMsgNew:
		if m.Header.Flags&(netlink.Create|netlink.Excl) != 0 {
			ev.Type = ct.EventNew
		} else {
			ev.Type = ct.EventUpdate
		}
	case ctMsgDelete:
		ev.Type = ct.EventDestroy
	default:
		return ev, false
	}
	*f = ct.Flow{}
	if !decodeFlow(m.Data[4:], f) {
		return ev, false
	}
	ev.Flow = f
	return ev, true
}

// Attribute types of conntrack events that ctnetlink.go (message_linux.go)
// does not name already (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaHelp          = 5
	ctaCountersOrig  = 9
	ctaCountersReply = 10
	ctaUse           = 11
	ctaID            = 12
	ctaTimestamp     = 20
	ctaSynProxy      = 24
	ctaSynProxyISN   = 1
	ctaSynProxyITS   = 2
	ctaSynProxyTSOff = 3
	ctaTupleZone     = 3
	ctaHelpName      = 1
	ctaHelpInfo      = 2
	ctaCounterPkts   = 1
	ctaCounterBytes  = 2
	ctaCounterPad    = 3
	ctaTSStart       = 1
	ctaTSStop        = 2

	nlaTypeMask = 0x3fff // the attribute type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nlaNested   = 0x8000
)

// eachAttr calls fn for every netlink attribute of b in order, with its type
// (flags masked off), whether it has the nested flag, and its data, and
// reports whether b was well formed and every fn returned true. A
// zero-length attribute counts as malformed here (Unmarshal skips it).
func eachAttr(b []byte, fn func(typ uint16, nested bool, d []byte) bool) bool {
	for len(b) > 0 {
		if len(b) < unix.NLA_HDRLEN {
			return false
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4])
		if l < unix.NLA_HDRLEN || l > len(b) {
			return false
		}
		if !fn(t&nlaTypeMask, t&nlaNested != 0, b[unix.NLA_HDRLEN:l]) {
			return false
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return true
}

func be8(d []byte, v *uint8) bool {
	if len(d) != 1 {
		return false
	}
	*v = d[0]
	return true
}

func be16(d []byte, v *uint16) bool {
	if len(d) != 2 {
		return false
	}
	*v = binary.BigEndian.Uint16(d)
	return true
}

func be32(d []byte, v *uint32) bool {
	if len(d) != 4 {
		return false
	}
	*v = binary.BigEndian.Uint32(d)
	return true
}

func be64(d []byte, v *uint64) bool {
	if len(d) != 8 {
		return false
	}
	*v = binary.BigEndian.Uint64(d)
	return true
}

// decodeFlow decodes a flow's attributes into f (zero on entry).
func decodeFlow(b []byte, f *ct.Flow) bool {
	var seen uint32 // top-level types met: each at most once
	return eachAttr(b, func(t uint16, nested bool, d []byte) bool {
		if t >= 32 || seen&(1<<t) != 0 {
			return false
		}
		seen |= 1 << t
		switch t {
		case ctaTupleOrig:
			return nested && decodeTuple(d, &f.TupleOrig)
		case ctaTupleReply:
			return nested && decodeTuple(d, &f.TupleReply)
		case ctaTupleMaster:
			return nested && decodeTuple(d, &f.TupleMaster)
		case ctaProtoInfo:
			return nested && decodeProtoInfo(d, &f.ProtoInfo)
		case ctaHelp:
			return nested && decodeHelper(d, &f.Helper)
		case ctaCountersOrig:
			return nested && decodeCounter(d, &f.CountersOrig)
		case ctaCountersReply:
			f.CountersReply.Direction = true
			return nested && decodeCounter(d, &f.CountersReply)
		case ctaTimestamp:
			return nested && decodeTimestamp(d, &f.Timestamp)
		case ctaSynProxy:
			return nested && decodeSynProxy(d, &f.SynProxy)
		}
		if nested {
			return false
		}
		switch t {
		case ctaStatus:
			var s uint32
			ok := be32(d, &s)
			f.Status = ct.Status(s)
			return ok
		case ctaTimeout:
			return be32(d, &f.Timeout)
		case ctaID:
			return be32(d, &f.ID)
		case ctaUse:
			return be32(d, &f.Use)
		case ctaMark:
			return be32(d, &f.Mark)
		case ctaZone:
			return be16(d, &f.Zone)
		case ctaLabels:
			f.Labels = append(make([]byte, 0, len(d)), d...)
			return true
		case ctaLabelsMask:
			f.LabelsMask = append(make([]byte, 0, len(d)), d...)
			return true
		}
		return false
	})
}

func decodeTuple(b []byte, t *ct.Tuple) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		switch typ {
		case ctaTupleIP:
			var ip ct.IPTuple
			if !decodeIPTuple(d, &ip) {
				return false
			}
			t.IP = ip
			return true
		case ctaTupleProto:
			var p ct.ProtoTuple
			if !decodeProtoTuple(d, &p) {
				return false
			}
			t.Proto = p
			return true
		case ctaTupleZone:
			return be16(d, &t.Zone)
		}
		return false
	})
	return ok && n >= 2
}

func decodeIPTuple(b []byte, ip *ct.IPTuple) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		a, ok := netip.AddrFromSlice(d)
		if !ok {
			return false
		}
		switch typ {
		case ctaIPv4Src, ctaIPv6Src:
			ip.SourceAddress = a
		case ctaIPv4Dst, ctaIPv6Dst:
			ip.DestinationAddress = a
		default:
			return false
		}
		return true
	})
	return ok && n == 2
}

func decodeProtoTuple(b []byte, p *ct.ProtoTuple) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		switch typ {
		case ctaProtoNum:
			if !be8(d, &p.Protocol) {
				return false
			}
			switch p.Protocol {
			case unix.IPPROTO_ICMP:
				p.ICMPv4 = true
			case unix.IPPROTO_ICMPV6:
				p.ICMPv6 = true
			}
			return true
		case ctaProtoSrcPort:
			return be16(d, &p.SourcePort)
		case ctaProtoDstPort:
			return be16(d, &p.DestinationPort)
		case ctaProtoICMPID, ctaProtoICMP6ID:
			return be16(d, &p.ICMPID)
		case ctaProtoICMPType, ctaProtoICMP6Typ:
			return be8(d, &p.ICMPType)
		case ctaProtoICMPCode, ctaProtoICMP6Cod:
			return be8(d, &p.ICMPCode)
		}
		return false
	})
	return ok && n >= 1
}

// decodeProtoInfo decodes TCP's protocol info; DCCP's and SCTP's are left
// to Unmarshal.
func decodeProtoInfo(b []byte, pi *ct.ProtoInfo) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		if typ != ctaProtoInfoTCP {
			return false
		}
		var tcp ct.ProtoInfoTCP
		if !decodeTCP(d, &tcp) {
			return false
		}
		pi.TCP = &tcp
		return true
	})
	return ok && n == 1
}

func decodeTCP(b []byte, tcp *ct.ProtoInfoTCP) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		switch typ {
		case ctaTCPState:
			return be8(d, &tcp.State)
		case ctaTCPWScaleOrig:
			return be8(d, &tcp.OriginalWindowScale)
		case ctaTCPWScaleRepl:
			return be8(d, &tcp.ReplyWindowScale)
		case ctaTCPFlagsOrig:
			return be16(d, &tcp.OriginalFlags)
		case ctaTCPFlagsRepl:
			return be16(d, &tcp.ReplyFlags)
		}
		return false
	})
	return ok && n >= 1
}

func decodeHelper(b []byte, h *ct.Helper) bool {
	return eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		switch typ {
		case ctaHelpName:
			end := len(d)
			for end > 0 && d[end-1] == 0 {
				end--
			}
			h.Name = string(d[:end])
			return true
		case ctaHelpInfo:
			h.Info = append(make([]byte, 0, len(d)), d...)
			return true
		}
		return false
	})
}

func decodeCounter(b []byte, c *ct.Counter) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		switch typ {
		case ctaCounterPkts:
			return be64(d, &c.Packets)
		case ctaCounterBytes:
			return be64(d, &c.Bytes)
		case ctaCounterPad:
			return true
		}
		return false
	})
	return ok && n >= 2
}

func decodeTimestamp(b []byte, ts *ct.Timestamp) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		var v uint64
		if !be64(d, &v) {
			return false
		}
		switch typ {
		case ctaTSStart:
			ts.Start = time.Unix(0, int64(v))
		case ctaTSStop:
			ts.Stop = time.Unix(0, int64(v))
		default:
			return false
		}
		return true
	})
	return ok && n >= 1
}

func decodeSynProxy(b []byte, sp *ct.SynProxy) bool {
	n := 0
	ok := eachAttr(b, func(typ uint16, _ bool, d []byte) bool {
		n++
		switch typ {
		case ctaSynProxyISN:
			return be32(d, &sp.ISN)
		case ctaSynProxyITS:
			return be32(d, &sp.ITS)
		case ctaSynProxyTSOff:
			return be32(d, &sp.TSOff)
		}
		return false
	})
	return ok && n >= 1
}

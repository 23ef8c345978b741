package record

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrInvalid is wrapped by every error Validate returns, so callers can count
// malformed records with errors.Is (pfsync's "badval" counter).
var ErrInvalid = errors.New("record: invalid record")

// ID identifies a record in the whole cluster, like pfsync's (creatorid, id)
// pair: Creator is the node that created the record (a pfsync.NodeID, never
// 0) and Num is unique among that node's records, never reused, not even
// across restarts (see IDAllocator).
//
// ID is comparable and can be used as a map key. The zero ID is invalid.
type ID struct {
	Creator uint32 // creating node; pfsync.NodeID(id.Creator) in the engine
	Num     uint64 // per-creator number, allocated by IDAllocator
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// String formats id as "creator/num" in hexadecimal, like pfctl -ss -v.
func (id ID) String() string { return fmt.Sprintf("%08x/%016x", id.Creator, id.Num) }

// Family is the address family of a record's key. It is our own enum, never a
// host AF_* constant: AF_INET6 is 10 on Linux, 24 on OpenBSD and 28 on
// FreeBSD, which is why pfsync records do not travel between them. The values
// match carp.Family.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4", "ipv6" or "family(N)".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// IP protocol numbers the merge rule and the codecs treat specially.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Tuple is one direction of a flow as seen on the wire. Protocols without
// ports (ICMP) may put their identifier in the ports, as conntrack does with
// the ICMP id, or leave them zero.
type Tuple struct {
	Src netip.AddrPort
	Dst netip.AddrPort
}

// Reverse returns the tuple with source and destination swapped: the reply
// tuple of a flow without address translation.
func (t Tuple) Reverse() Tuple { return Tuple{Src: t.Dst, Dst: t.Src} }

// Key is the immutable identity of a flow in the dataplane: what pf calls the
// wire and stack keys and conntrack the original and reply tuples. Only the
// creator sets it; it never changes after creation (a changed Key is a new
// record).
//
// All four addresses belong to Family (IPv6 addresses may be IPv4-mapped) and
// carry no IPv6 zone. Without NAT, Reply is Orig.Reverse(); the codec then
// leaves it off the wire.
type Key struct {
	Family Family
	Proto  uint8  // IP protocol number
	Zone   uint16 // conntrack zone, VRF or rdomain; 0 is the default zone
	Orig   Tuple  // original direction, as the first packet was seen
	Reply  Tuple  // reply direction after NAT (the translated tuple)
}

// Direction indexes the per-direction arrays of a Record (Peers, Packets,
// Bytes). pfsync calls the two directions src and dst.
type Direction uint8

// Directions.
const (
	Orig  Direction = 0 // the direction of the first packet (pf "src")
	Reply Direction = 1 // the answering direction (pf "dst")
)

// String returns "orig" or "reply".
func (d Direction) String() string {
	if d == Orig {
		return "orig"
	}
	if d == Reply {
		return "reply"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Level is an ordered protocol state of one direction. Merges never move a
// direction to a lower level (pfsync's stale check), so the order of the
// constants is the protocol: a dataplane with its own states must map them
// onto levels that only grow during a flow's life.
type Level uint8

// TCP levels of one direction ("this peer has ..."). They follow the order of
// pf's per-peer TCPS_* values. Linux conntrack keeps one state per
// connection; its backend maps it onto the two directions:
//
//	conntrack        Orig            Reply
//	SYN_SENT         TCPSynSent      TCPNone
//	SYN_SENT2        TCPSynSent      TCPSynSent
//	SYN_RECV         TCPSynSent      TCPSynSent
//	ESTABLISHED      TCPEstablished  TCPEstablished
//	FIN_WAIT         TCPClosing      TCPEstablished  (the closing side's FIN seen)
//	CLOSE_WAIT       TCPFinAcked     TCPEstablished  (FIN acknowledged, other side open)
//	LAST_ACK         TCPFinAcked     TCPClosing
//	TIME_WAIT        TCPTimeWait     TCPTimeWait
//	CLOSE            TCPClosed       TCPClosed       (RST)
//
// (For FIN_WAIT, CLOSE_WAIT and LAST_ACK the backend puts the levels on
// whichever direction sent the first FIN.)
const (
	TCPNone        Level = 0 // nothing seen from this side (pf TCPS_CLOSED)
	TCPSynSent     Level = 1 // this side sent SYN or SYN|ACK (pf TCPS_SYN_SENT)
	TCPEstablished Level = 2 // handshake complete (pf TCPS_ESTABLISHED)
	TCPClosing     Level = 3 // this side sent FIN (pf TCPS_CLOSING, FIN_WAIT_1)
	TCPFinAcked    Level = 4 // this side's FIN was acknowledged (pf TCPS_FIN_WAIT_2)
	TCPTimeWait    Level = 5 // both FINs acknowledged (pf TCPS_TIME_WAIT)
	TCPClosed      Level = 6 // reset or fully closed (conntrack CLOSE)
)

// Levels of one direction of a protocol without connection state (UDP, ICMP,
// anything not TCP), as pf's PFUDPS_* / PFOTHERS_*.
const (
	NoTraffic Level = 0 // no packet seen from this side
	Single    Level = 1 // one packet seen
	Multiple  Level = 2 // more than one packet seen
)

// Peer is the protocol state of one direction, pfsync's pf_state_peer
// without the scrub and ISN-modulation data. For protocols other than TCP
// only Level is meaningful and the other fields are zero (the codec then
// sends one byte).
type Peer struct {
	Level  Level
	SeqLo  uint32 // highest sequence number sent by this side (RFC 1982 serial arithmetic)
	SeqHi  uint32 // highest acceptable sequence number: ack seen from the other side + window
	MaxWin uint16 // largest window this side announced, unscaled
	WScale uint8  // window scale shift 0-14 (RFC 7323 §2.3); meaningful only if Scaled
	Scaled bool   // both sides sent the window-scale option (pf's PF_WSCALE_FLAG)
}

// MaxWScale is the largest window-scale shift, RFC 7323 §2.3.
const MaxWScale = 14

// ExtType is the type byte of an extension block. Types 1-127 are defined by
// this package (receivers that know them may interpret them); 128-255 belong
// to the embedding application. Receivers preserve and forward every
// extension unchanged, known or not.
type ExtType uint8

// Extension types.
const (
	ExtMark    ExtType = 1   // 4 bytes, big-endian: the conntrack/netfilter mark
	ExtLabels  ExtType = 2   // 16 bytes: conntrack labels (128-bit bitmap)
	ExtHelper  ExtType = 3   // conntrack helper name, UTF-8
	ExtSecMark ExtType = 4   // 4 bytes, big-endian: conntrack secmark
	ExtMaster  ExtType = 5   // master tuple of a RELATED flow; encoded by pfsync/conntrack
	ExtApp     ExtType = 128 // first application type: opaque bytes of the embedder
)

// MaxExtLen is the largest extension payload. A whole encoded record must
// also fit one frame (pfsync/wire).
const MaxExtLen = 4096

// Ext is one extension block of a record: optional data that only some nodes
// understand. Data is opaque to this package. Records decoded by
// pfsync/wire alias the frame buffer in Data; Clone before keeping them.
type Ext struct {
	Type ExtType
	Data []byte
}

// Record is one replicated flow. The zero value is not a valid record: ID,
// Key.Family and the Key addresses must be set.
//
// Who writes what: the creator owns ID, Key, Flags and Ext and increments
// Version on every change it makes (Lamport style); any node that sees
// traffic (active/active) may advance Peers, the lifetime and the counters
// and forwards its copy with the Version it holds. See Merge.
//
// A Record holds slices (Ext): copying the struct shares them. Use Clone for
// an independent copy.
type Record struct {
	ID      ID
	Version uint64 // incremented by the creator on every change; 0 is allowed for a fresh record

	Key   Key
	Peers [2]Peer // indexed by Direction

	// Expire is the remaining lifetime in seconds at the time the record is
	// encoded — never a wall-clock time, so clock skew between nodes does not
	// matter (pfsync's "expire"). The importer re-arms its own timer.
	Expire uint32
	// Timeout is the timeout class (pf PFTM_*, or the backend's own table
	// index). Nodes must agree on the meaning of the classes.
	Timeout uint8
	// Age is the number of seconds since creation (pfsync's "creation").
	Age uint32

	// Flags are status bits opaque to gocarp, for example conntrack's IPS_*
	// status. They belong to the creator.
	Flags uint32

	Packets [2]uint64 // per Direction
	Bytes   [2]uint64 // per Direction

	// Ext holds optional extension blocks in the order they were added.
	// Duplicated types are allowed and preserved.
	Ext []Ext
}

// Clone returns a deep copy of r: the Ext slice and every Data buffer are
// new, so the copy no longer aliases a frame buffer.
func (r *Record) Clone() Record {
	c := *r
	if r.Ext != nil {
		c.Ext = make([]Ext, len(r.Ext))
		n := 0
		for _, e := range r.Ext {
			n += len(e.Data)
		}
		buf := make([]byte, 0, n)
		for i, e := range r.Ext {
			if e.Data == nil {
				c.Ext[i] = Ext{Type: e.Type}
				continue
			}
			start := len(buf)
			buf = append(buf, e.Data...)
			c.Ext[i] = Ext{Type: e.Type, Data: buf[start:len(buf):len(buf)]}
		}
	}
	return c
}

// Extension returns the data of the first extension of type t.
func (r *Record) Extension(t ExtType) ([]byte, bool) {
	for _, e := range r.Ext {
		if e.Type == t {
			return e.Data, true
		}
	}
	return nil, false
}

// Equal reports whether r and o hold the same values. A nil and an empty Ext
// (or Data) are equal.
func (r *Record) Equal(o *Record) bool {
	if r.ID != o.ID || r.Version != o.Version || r.Key != o.Key || r.Peers != o.Peers ||
		r.Expire != o.Expire || r.Timeout != o.Timeout || r.Age != o.Age || r.Flags != o.Flags ||
		r.Packets != o.Packets || r.Bytes != o.Bytes {
		return false
	}
	return slices.EqualFunc(r.Ext, o.Ext, func(a, b Ext) bool {
		return a.Type == b.Type && bytes.Equal(a.Data, b.Data)
	})
}

// Validate reports whether r can be encoded and replicated: a non-zero
// creator, a known Family, valid zone-less addresses of that family in both
// tuples, window scales within RFC 7323 and extensions no longer than
// MaxExtLen. The error wraps ErrInvalid and names the field.
func (r *Record) Validate() error {
	if r.ID.Creator == 0 {
		return fmt.Errorf("%w: creator 0 (must be 1-4294967295)", ErrInvalid)
	}
	if r.Key.Family != IPv4 && r.Key.Family != IPv6 {
		return fmt.Errorf("%w: family %d (must be 4 or 6)", ErrInvalid, uint8(r.Key.Family))
	}
	addrs := [4]struct {
		name string
		a    netip.Addr
	}{
		{"orig src", r.Key.Orig.Src.Addr()}, {"orig dst", r.Key.Orig.Dst.Addr()},
		{"reply src", r.Key.Reply.Src.Addr()}, {"reply dst", r.Key.Reply.Dst.Addr()},
	}
	for _, x := range addrs {
		if msg := checkAddr(r.Key.Family, x.a); msg != "" {
			return fmt.Errorf("%w: key %s address %v: %s", ErrInvalid, x.name, x.a, msg)
		}
	}
	for d, p := range r.Peers {
		if p.WScale > MaxWScale {
			return fmt.Errorf("%w: %v window scale %d (must be 0-%d)", ErrInvalid, Direction(d), p.WScale, MaxWScale)
		}
	}
	for i, e := range r.Ext {
		if len(e.Data) > MaxExtLen {
			return fmt.Errorf("%w: extension %d (type %d) length %d (must be 0-%d)", ErrInvalid, i, e.Type, len(e.Data), MaxExtLen)
		}
	}
	return nil
}

func checkAddr(f Family, a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unset"
	case a.Zone() != "":
		return "has an IPv6 zone"
	case f == IPv4 && !a.Is4():
		return "not IPv4"
	case f == IPv6 && !a.Is6():
		return "not IPv6"
	}
	return ""
}

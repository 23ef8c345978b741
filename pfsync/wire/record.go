package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Full record body (INSERT, UPDATE):
//
//	creator u32 | num u64 | version uvarint | family u8 (4|6) | proto u8 |
//	present u16 | orig src addr|port | orig dst addr|port |
//	[reply src addr|port | reply dst addr|port]   present bit 1
//	[zone u16]                                    present bit 0
//	[orig peer]  [reply peer]                     present bits 2-3, 4-5
//	expire uvarint | timeout u8 |
//	[age uvarint]                                 present bit 6
//	[flags uvarint]                               present bit 7
//	[packets orig, packets reply, bytes orig, bytes reply: uvarint each]  bit 8
//	extensions to the end of the body: type u8 | len uvarint | data
//
// Addresses are 4 bytes for IPv4 and 16 for IPv6, ports 2 bytes. A peer is
// encoded in mode 0 (all zero: nothing), 1 (level u8) or 2 (level u8 |
// wscale u8 | max-win u16 | seqlo u32 | seqhi u32), where wscale holds the
// shift in bits 0-3 and the "scaling negotiated" flag in bit 7. Present bits
// 9-15 are reserved and must be zero: new core fields will be new extension
// types, which older receivers preserve.
const (
	recZone     = 1 << 0
	recReply    = 1 << 1
	recOrigSh   = 2
	recReplySh  = 4
	recAge      = 1 << 6
	recFlags    = 1 << 7
	recCounters = 1 << 8
	recReserved = 0xfe00
)

// Compressed update body (UPDATE_C):
//
//	creator u32 | num u64 | version uvarint | present u8 |
//	[orig peer]            present bits 0-1: 0 absent, 1 level, 2 full
//	[reply peer]           present bits 2-3
//	[expire uvarint | timeout u8]   present bit 4
//	[4 counters uvarint]            present bit 5
//	[flags uvarint]                 present bit 6
//
// Bit 7 is reserved and must be zero; bytes after the last field are
// ignored (room for fields of a later version).
const (
	dlOrigSh   = 0
	dlReplySh  = 2
	dlLifetime = 1 << 4
	dlCounters = 1 << 5
	dlFlags    = 1 << 6
	dlReserved = 1 << 7
)

const (
	peerAbsent  = 0
	peerLevel   = 1
	peerFull    = 2
	peerFullLen = 12
	wscaleFlag  = 0x80
)

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func addrLen(f record.Family) int {
	if f == record.IPv4 {
		return 4
	}
	return 16
}

// peerMode is the encoding of p in a full record: 0 when p is all zero.
func peerMode(p *record.Peer) int {
	switch {
	case *p == record.Peer{}:
		return peerAbsent
	case p.SeqLo == 0 && p.SeqHi == 0 && p.MaxWin == 0 && p.WScale == 0 && !p.Scaled:
		return peerLevel
	}
	return peerFull
}

func peerLen(mode int) int {
	switch mode {
	case peerLevel:
		return 1
	case peerFull:
		return peerFullLen
	}
	return 0
}

func appendPeer(b []byte, p *record.Peer, mode int) []byte {
	switch mode {
	case peerLevel:
		b = append(b, byte(p.Level))
	case peerFull:
		ws := p.WScale
		if p.Scaled {
			ws |= wscaleFlag
		}
		b = append(b, byte(p.Level), ws)
		b = be.AppendUint16(b, p.MaxWin)
		b = be.AppendUint32(b, p.SeqLo)
		b = be.AppendUint32(b, p.SeqHi)
	}
	return b
}

// decoder reads an element body and remembers the offset for errors.
type decoder struct {
	b   []byte
	off int
	k   Kind
	err error
}

func (d *decoder) fail(err error, what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %v element: %s at offset %d", err, d.k, what, d.off)
	}
}

// need reports whether n (never negative: every caller passes a constant
// or a length already bounded) more bytes are there, recording the error if
// not. It is kept small enough to inline into the fixed-size readers (u16,
// u32, u64), which run for every field of every record received.
func (d *decoder) need(n int, what string) bool {
	if d.err == nil && len(d.b)-d.off >= n {
		return true
	}
	d.short(what)
	return false
}

//go:noinline
func (d *decoder) short(what string) {
	if d.err == nil {
		d.fail(ErrTruncated, what)
	}
}

func (d *decoder) u8(what string) uint8 {
	if !d.need(1, what) {
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) u16(what string) uint16 {
	if d.err != nil || len(d.b)-d.off < 2 {
		d.short(what)
		return 0
	}
	v := be.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32(what string) uint32 {
	if d.err != nil || len(d.b)-d.off < 4 {
		d.short(what)
		return 0
	}
	v := be.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil || len(d.b)-d.off < 8 {
		d.short(what)
		return 0
	}
	v := be.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n == 0 {
		d.fail(ErrTruncated, what)
		return 0
	}
	if n < 0 {
		d.fail(ErrInvalid, what+" varint overflows 64 bits")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) uvarint32(what string) uint32 {
	v := d.uvarint(what)
	if v > math.MaxUint32 {
		d.fail(ErrInvalid, what+" exceeds 32 bits")
		return 0
	}
	return uint32(v)
}

func (d *decoder) addrPort(f record.Family, what string) netip.AddrPort {
	n := addrLen(f)
	if !d.need(n+2, what) {
		return netip.AddrPort{}
	}
	var a netip.Addr
	if n == 4 {
		a = netip.AddrFrom4([4]byte(d.b[d.off : d.off+4]))
	} else {
		a = netip.AddrFrom16([16]byte(d.b[d.off : d.off+16]))
	}
	port := be.Uint16(d.b[d.off+n:])
	d.off += n + 2
	return netip.AddrPortFrom(a, port)
}

func (d *decoder) peer(mode int, what string) record.Peer {
	switch mode {
	case peerLevel:
		return record.Peer{Level: record.Level(d.u8(what))}
	case peerFull:
		if !d.need(peerFullLen, what) {
			return record.Peer{}
		}
		b := d.b[d.off:]
		ws := b[1]
		if ws&0x70 != 0 || ws&0x0f > record.MaxWScale {
			d.fail(ErrInvalid, fmt.Sprintf("%s window scale byte %#02x", what, ws))
			return record.Peer{}
		}
		p := record.Peer{
			Level:  record.Level(b[0]),
			WScale: ws & 0x0f,
			Scaled: ws&wscaleFlag != 0,
			MaxWin: be.Uint16(b[2:]),
			SeqLo:  be.Uint32(b[4:]),
			SeqHi:  be.Uint32(b[8:]),
		}
		d.off += peerFullLen
		return p
	case peerAbsent:
		return record.Peer{}
	}
	d.fail(ErrInvalid, what+" mode 3")
	return record.Peer{}
}

func appendAddrPort(b []byte, f record.Family, ap netip.AddrPort) []byte {
	if f == record.IPv4 {
		a := ap.Addr().As4()
		b = append(b, a[:]...)
	} else {
		a := ap.Addr().As16()
		b = append(b, a[:]...)
	}
	return be.AppendUint16(b, ap.Port())
}

// recordLayout computes the present bits and the body size of r, which must
// be valid.
func recordLayout(r *record.Record) (present uint16, modes [2]int, size int) {
	size = 4 + 8 + uvarintLen(r.Version) + 1 + 1 + 2
	tuple := 2 * (addrLen(r.Key.Family) + 2)
	size += tuple
	if r.Key.Reply != r.Key.Orig.Reverse() {
		present |= recReply
		size += tuple
	}
	if r.Key.Zone != 0 {
		present |= recZone
		size += 2
	}
	for dir := range r.Peers {
		modes[dir] = peerMode(&r.Peers[dir])
		size += peerLen(modes[dir])
	}
	present |= uint16(modes[0])<<recOrigSh | uint16(modes[1])<<recReplySh
	size += uvarintLen(uint64(r.Expire)) + 1
	if r.Age != 0 {
		present |= recAge
		size += uvarintLen(uint64(r.Age))
	}
	if r.Flags != 0 {
		present |= recFlags
		size += uvarintLen(uint64(r.Flags))
	}
	if r.Packets != [2]uint64{} || r.Bytes != [2]uint64{} {
		present |= recCounters
		size += uvarintLen(r.Packets[0]) + uvarintLen(r.Packets[1]) + uvarintLen(r.Bytes[0]) + uvarintLen(r.Bytes[1])
	}
	for _, e := range r.Ext {
		size += 1 + uvarintLen(uint64(len(e.Data))) + len(e.Data)
	}
	return present, modes, size
}

// RecordLen returns the size of the encoded body of r (valid per
// r.Validate), without section overhead: what AppendRecord appends.
func RecordLen(r *record.Record) int {
	_, _, n := recordLayout(r)
	return n
}

// AppendRecord appends the full-record element body of r (INSERT or UPDATE)
// to b. It returns an error wrapping ErrInvalid, and b unchanged, if r does
// not pass r.Validate.
func AppendRecord(b []byte, r *record.Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return b, fmt.Errorf("wire: %w: %w", ErrInvalid, err)
	}
	present, modes, _ := recordLayout(r)
	return appendRecord(b, r, present, modes), nil
}

func appendRecord(b []byte, r *record.Record, present uint16, modes [2]int) []byte {
	b = be.AppendUint32(b, r.ID.Creator)
	b = be.AppendUint64(b, r.ID.Num)
	b = binary.AppendUvarint(b, r.Version)
	b = append(b, byte(r.Key.Family), r.Key.Proto)
	b = be.AppendUint16(b, present)
	f := r.Key.Family
	b = appendAddrPort(b, f, r.Key.Orig.Src)
	b = appendAddrPort(b, f, r.Key.Orig.Dst)
	if present&recReply != 0 {
		b = appendAddrPort(b, f, r.Key.Reply.Src)
		b = appendAddrPort(b, f, r.Key.Reply.Dst)
	}
	if present&recZone != 0 {
		b = be.AppendUint16(b, r.Key.Zone)
	}
	b = appendPeer(b, &r.Peers[0], modes[0])
	b = appendPeer(b, &r.Peers[1], modes[1])
	b = binary.AppendUvarint(b, uint64(r.Expire))
	b = append(b, r.Timeout)
	if present&recAge != 0 {
		b = binary.AppendUvarint(b, uint64(r.Age))
	}
	if present&recFlags != 0 {
		b = binary.AppendUvarint(b, uint64(r.Flags))
	}
	if present&recCounters != 0 {
		b = binary.AppendUvarint(b, r.Packets[0])
		b = binary.AppendUvarint(b, r.Packets[1])
		b = binary.AppendUvarint(b, r.Bytes[0])
		b = binary.AppendUvarint(b, r.Bytes[1])
	}
	for _, e := range r.Ext {
		b = append(b, byte(e.Type))
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b
}

// DecodeRecord decodes a full-record element body into r, overwriting every
// field. It reuses the capacity of r.Ext; the Data of every extension
// aliases b, so call r.Clone before keeping r beyond the life of b. It never
// panics; on error r holds partial values.
func DecodeRecord(b []byte, r *record.Record) error {
	return decodeRecord(b, r, KindUpdate)
}

func decodeRecord(b []byte, r *record.Record, k Kind) error {
	d := decoder{b: b, k: k}
	ext := r.Ext[:0]
	*r = record.Record{}
	if len(b) >= 12 {
		// The fixed prefix in one bounds check (every received record
		// passes here).
		r.ID.Creator, r.ID.Num = be.Uint32(b), be.Uint64(b[4:])
		d.off = 12
	} else {
		r.ID.Creator = d.u32("creator")
		r.ID.Num = d.u64("num")
	}
	if d.err == nil && r.ID.Creator == 0 {
		d.off -= 12
		d.fail(ErrInvalid, "creator 0")
	}
	r.Version = d.uvarint("version")
	var fam record.Family
	var present uint16
	if d.err == nil && len(b)-d.off >= 4 {
		// Family, proto and present bits in one bounds check.
		fam, r.Key.Proto, present = record.Family(b[d.off]), b[d.off+1], be.Uint16(b[d.off+2:])
		if fam != record.IPv4 && fam != record.IPv6 {
			d.fail(ErrInvalid, fmt.Sprintf("family %d", fam))
		}
		d.off += 4
	} else {
		fam = record.Family(d.u8("family"))
		if d.err == nil && fam != record.IPv4 && fam != record.IPv6 {
			d.off--
			d.fail(ErrInvalid, fmt.Sprintf("family %d", fam))
		}
		r.Key.Proto = d.u8("proto")
		present = d.u16("present bits")
	}
	r.Key.Family = fam
	if d.err == nil && present&recReserved != 0 {
		d.off -= 2
		d.fail(ErrInvalid, fmt.Sprintf("reserved present bits %#04x", present))
	}
	if d.err != nil {
		return d.err
	}
	r.Key.Orig.Src = d.addrPort(fam, "orig src")
	r.Key.Orig.Dst = d.addrPort(fam, "orig dst")
	if present&recReply != 0 {
		r.Key.Reply.Src = d.addrPort(fam, "reply src")
		r.Key.Reply.Dst = d.addrPort(fam, "reply dst")
	} else {
		r.Key.Reply = r.Key.Orig.Reverse()
	}
	if present&recZone != 0 {
		r.Key.Zone = d.u16("zone")
	}
	r.Peers[0] = d.peer(int(present>>recOrigSh)&3, "orig peer")
	r.Peers[1] = d.peer(int(present>>recReplySh)&3, "reply peer")
	r.Expire = d.uvarint32("expire")
	r.Timeout = d.u8("timeout")
	if present&recAge != 0 {
		r.Age = d.uvarint32("age")
	}
	if present&recFlags != 0 {
		r.Flags = d.uvarint32("flags")
	}
	if present&recCounters != 0 {
		r.Packets[0] = d.uvarint("orig packets")
		r.Packets[1] = d.uvarint("reply packets")
		r.Bytes[0] = d.uvarint("orig bytes")
		r.Bytes[1] = d.uvarint("reply bytes")
	}
	for d.err == nil && d.off < len(d.b) {
		t := record.ExtType(d.u8("extension type"))
		at := d.off
		n := d.uvarint("extension length")
		if d.err != nil {
			break
		}
		if n > record.MaxExtLen {
			d.off = at
			d.fail(ErrInvalid, fmt.Sprintf("extension length %d (max %d)", n, record.MaxExtLen))
			break
		}
		if !d.need(int(n), "extension data") {
			break
		}
		ext = append(ext, record.Ext{Type: t, Data: d.b[d.off : d.off+int(n) : d.off+int(n)]})
		d.off += int(n)
	}
	if len(ext) > 0 {
		r.Ext = ext
	}
	return d.err
}

// deltaLayout computes the present byte and the body size of d.
func deltaLayout(d *record.Delta) (present uint8, size int) {
	size = 4 + 8 + uvarintLen(d.Version) + 1
	for dir, f := range [2]record.Fields{record.FieldOrig, record.FieldReply} {
		if !d.Fields.Has(f) {
			continue
		}
		m := peerMode(&d.Peers[dir])
		if m == peerAbsent {
			m = peerLevel
		}
		present |= uint8(m) << (2 * dir)
		size += peerLen(m)
	}
	if d.Fields.Has(record.FieldLifetime) {
		present |= dlLifetime
		size += uvarintLen(uint64(d.Expire)) + 1
	}
	if d.Fields.Has(record.FieldCounters) {
		present |= dlCounters
		size += uvarintLen(d.Packets[0]) + uvarintLen(d.Packets[1]) + uvarintLen(d.Bytes[0]) + uvarintLen(d.Bytes[1])
	}
	if d.Fields.Has(record.FieldFlags) {
		present |= dlFlags
		size += uvarintLen(uint64(d.Flags))
	}
	return present, size
}

func checkDelta(d *record.Delta) error {
	if d.ID.Creator == 0 {
		return fmt.Errorf("%w: update-c with creator 0", ErrInvalid)
	}
	for dir, p := range d.Peers {
		if p.WScale > record.MaxWScale {
			return fmt.Errorf("%w: update-c %v window scale %d (max %d)", ErrInvalid, record.Direction(dir), p.WScale, record.MaxWScale)
		}
	}
	return nil
}

// DeltaLen returns the size of the encoded compressed-update body of d.
func DeltaLen(d *record.Delta) int {
	_, n := deltaLayout(d)
	return n
}

// AppendDelta appends the compressed-update element body (UPDATE_C) of d to
// b. Fields outside record.FieldsAll and values of unselected fields are
// not sent.
func AppendDelta(b []byte, d *record.Delta) ([]byte, error) {
	if err := checkDelta(d); err != nil {
		return b, err
	}
	present, _ := deltaLayout(d)
	return appendDelta(b, d, present), nil
}

func appendDelta(b []byte, d *record.Delta, present uint8) []byte {
	b = be.AppendUint32(b, d.ID.Creator)
	b = be.AppendUint64(b, d.ID.Num)
	b = binary.AppendUvarint(b, d.Version)
	b = append(b, present)
	b = appendPeer(b, &d.Peers[0], int(present>>dlOrigSh)&3)
	b = appendPeer(b, &d.Peers[1], int(present>>dlReplySh)&3)
	if present&dlLifetime != 0 {
		b = binary.AppendUvarint(b, uint64(d.Expire))
		b = append(b, d.Timeout)
	}
	if present&dlCounters != 0 {
		b = binary.AppendUvarint(b, d.Packets[0])
		b = binary.AppendUvarint(b, d.Packets[1])
		b = binary.AppendUvarint(b, d.Bytes[0])
		b = binary.AppendUvarint(b, d.Bytes[1])
	}
	if present&dlFlags != 0 {
		b = binary.AppendUvarint(b, uint64(d.Flags))
	}
	return b
}

var peerNames = [2]string{"orig peer", "reply peer"}

// DecodeDelta decodes a compressed-update element body into d, overwriting
// every field. It never panics and does not allocate.
func DecodeDelta(b []byte, d *record.Delta) error {
	dec := decoder{b: b, k: KindUpdateC}
	*d = record.Delta{}
	d.ID.Creator = dec.u32("creator")
	d.ID.Num = dec.u64("num")
	if dec.err == nil && d.ID.Creator == 0 {
		dec.off -= 12
		dec.fail(ErrInvalid, "creator 0")
	}
	d.Version = dec.uvarint("version")
	present := dec.u8("present bits")
	if dec.err == nil && present&dlReserved != 0 {
		dec.off--
		dec.fail(ErrInvalid, fmt.Sprintf("reserved present bits %#02x", present))
	}
	if dec.err != nil {
		return dec.err
	}
	for dir, f := range [2]record.Fields{record.FieldOrig, record.FieldReply} {
		m := int(present>>(2*dir)) & 3
		if m == peerAbsent {
			continue
		}
		d.Fields |= f
		d.Peers[dir] = dec.peer(m, peerNames[dir])
	}
	if present&dlLifetime != 0 {
		d.Fields |= record.FieldLifetime
		d.Expire = dec.uvarint32("expire")
		d.Timeout = dec.u8("timeout")
	}
	if present&dlCounters != 0 {
		d.Fields |= record.FieldCounters
		d.Packets[0] = dec.uvarint("orig packets")
		d.Packets[1] = dec.uvarint("reply packets")
		d.Bytes[0] = dec.uvarint("orig bytes")
		d.Bytes[1] = dec.uvarint("reply bytes")
	}
	if present&dlFlags != 0 {
		d.Fields |= record.FieldFlags
		d.Flags = dec.uvarint32("flags")
	}
	return dec.err
}

// lifetimeOffset returns the offset of the expire varint in a full-record
// body, the varint's length and its value, parsing only the fields before
// it (the bulk-send path: no decoder, one bounds check per field group).
func lifetimeOffset(b []byte) (off, n int, expire uint64, err error) {
	trunc := func(what string) error {
		return fmt.Errorf("%w: %v element: %s at offset %d", ErrTruncated, KindUpdate, what, off)
	}
	if len(b) < 13 {
		return 0, 0, 0, trunc("creator and num")
	}
	off = 12
	_, k := binary.Uvarint(b[off:])
	if k <= 0 {
		return 0, 0, 0, fmt.Errorf("%w: %v element: version varint at offset %d", ErrInvalid, KindUpdate, off)
	}
	off += k
	if len(b) < off+4 {
		return 0, 0, 0, trunc("family, proto and present bits")
	}
	fam, present := record.Family(b[off]), be.Uint16(b[off+2:])
	if fam != record.IPv4 && fam != record.IPv6 {
		return 0, 0, 0, fmt.Errorf("%w: %v element: family %d at offset %d", ErrInvalid, KindUpdate, fam, off)
	}
	off += 4
	skip := 2 * (addrLen(fam) + 2)
	if present&recReply != 0 {
		skip *= 2
	}
	if present&recZone != 0 {
		skip += 2
	}
	skip += peerLen(int(present>>recOrigSh)&3) + peerLen(int(present>>recReplySh)&3)
	if len(b) < off+skip+1 {
		return 0, 0, 0, trunc("fields before the lifetime")
	}
	off += skip
	expire, n = binary.Uvarint(b[off:])
	if n <= 0 || expire > math.MaxUint32 {
		return 0, 0, 0, fmt.Errorf("%w: %v element: expire varint at offset %d", ErrInvalid, KindUpdate, off)
	}
	return off, n, expire, nil
}

// AppendAgedRecord appends to dst the full-record body b (as AppendRecord
// encodes it) with its Expire, the remaining lifetime in seconds, reduced by
// elapsed seconds but to no less than 1: a record the sender held for a
// while leaves with what remains of its life (pfsync exports the remaining
// time; conntrackd's commit subtracts the time since the last update). An
// Expire of 0 (no lifetime) stays 0. Only the fields before the lifetime
// are parsed: the rest of b is copied unchecked. On error dst is returned
// unchanged.
func AppendAgedRecord(dst, b []byte, elapsed uint32) ([]byte, error) {
	off, n, exp, err := lifetimeOffset(b)
	if err != nil {
		return dst, err
	}
	if exp == 0 || elapsed == 0 {
		return append(dst, b...), nil
	}
	if exp > uint64(elapsed) {
		exp -= uint64(elapsed)
	} else {
		exp = 1
	}
	dst = append(dst, b[:off]...)
	dst = binary.AppendUvarint(dst, exp)
	return append(dst, b[off+n:]...), nil
}

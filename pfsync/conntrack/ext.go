package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/pfsync/record"
)

// ExtMaster is the extension type that carries the original tuple of the
// master connection of a RELATED flow (an FTP data channel, a SIP media
// stream): conntrackd's MASTER_IPV4/MASTER_IPV6/MASTER_L4PROTO/MASTER_PORT
// attributes. The kernel links an injected RELATED flow to its master
// (CTA_TUPLE_MASTER), which must already exist — hence the commit order
// "masters first, then RELATED flows".
//
// The payload is family (1 byte, record.IPv4 or record.IPv6), protocol
// (1 byte), source address, destination address (4 or 16 bytes each),
// source port and destination port (2 bytes each, big-endian): 14 bytes for
// IPv4, 38 for IPv6.
const ExtMaster = record.ExtMaster

// MasterTuple is the original tuple of a RELATED flow's master connection.
type MasterTuple struct {
	Family record.Family
	Proto  uint8
	Orig   record.Tuple
}

// AppendBinary appends the ExtMaster payload of m to b.
func (m MasterTuple) AppendBinary(b []byte) ([]byte, error) {
	n := 4
	if m.Family == record.IPv6 {
		n = 16
	} else if m.Family != record.IPv4 {
		return b, fmt.Errorf("conntrack: master tuple family %d (must be 4 or 6)", uint8(m.Family))
	}
	src, dst := m.Orig.Src.Addr(), m.Orig.Dst.Addr()
	if src.BitLen() != n*8 || dst.BitLen() != n*8 {
		return b, fmt.Errorf("conntrack: master tuple %v -> %v is not %v", src, dst, m.Family)
	}
	b = append(b, byte(m.Family), m.Proto)
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, m.Orig.Src.Port())
	b = binary.BigEndian.AppendUint16(b, m.Orig.Dst.Port())
	return b, nil
}

// UnmarshalBinary decodes an ExtMaster payload. It rejects unknown families
// and any length other than 14 (IPv4) or 38 (IPv6) bytes.
func (m *MasterTuple) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("conntrack: master tuple: %d bytes, need at least 2", len(b))
	}
	var n int
	switch record.Family(b[0]) {
	case record.IPv4:
		n = 4
	case record.IPv6:
		n = 16
	default:
		return fmt.Errorf("conntrack: master tuple: family %d at offset 0 (must be 4 or 6)", b[0])
	}
	if want := 2 + 2*n + 4; len(b) != want {
		return fmt.Errorf("conntrack: master tuple: %d bytes, need %d for %v", len(b), want, record.Family(b[0]))
	}
	src, _ := netip.AddrFromSlice(b[2 : 2+n])
	dst, _ := netip.AddrFromSlice(b[2+n : 2+2*n])
	p := b[2+2*n:]
	*m = MasterTuple{
		Family: record.Family(b[0]),
		Proto:  b[1],
		Orig: record.Tuple{
			Src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(p[0:2])),
			Dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(p[2:4])),
		},
	}
	return nil
}

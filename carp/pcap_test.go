package carp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// capturedPacket is one IP protocol 112 packet read from a classic pcap file.
type capturedPacket struct {
	Frame   int // 1-based frame number, as tshark counts
	Family  Family
	Src     netip.Addr
	Dst     netip.Addr
	TTL     int
	Payload []byte
}

// readPcap returns the IP protocol 112 packets of a classic pcap file with
// Ethernet link type (what tcpdump -w writes). It is a test helper, not a
// general pcap reader: it fails the test on anything else.
func readPcap(t testing.TB, path string) []capturedPacket {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: %d bytes, too short for a pcap header", path, len(b))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d: // microsecond / nanosecond
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a classic pcap file", path)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		t.Fatalf("%s: link type %d, want 1 (Ethernet)", path, lt)
	}
	var out []capturedPacket
	b = b[24:]
	for frame := 1; len(b) > 0; frame++ {
		if len(b) < 16 {
			t.Fatalf("%s: frame %d: truncated record header", path, frame)
		}
		incl := int(bo.Uint32(b[8:]))
		if len(b) < 16+incl {
			t.Fatalf("%s: frame %d: truncated record", path, frame)
		}
		data := b[16 : 16+incl]
		b = b[16+incl:]
		if len(data) < 14 {
			continue
		}
		ethType := binary.BigEndian.Uint16(data[12:])
		ip := data[14:]
		p := capturedPacket{Frame: frame}
		switch ethType {
		case 0x0800:
			if len(ip) < 20 || ip[9] != 112 {
				continue
			}
			ihl := int(ip[0]&0x0f) * 4
			total := int(binary.BigEndian.Uint16(ip[2:]))
			if total > len(ip) || ihl > total {
				t.Fatalf("%s: frame %d: bad IPv4 lengths", path, frame)
			}
			p.Family, p.TTL = IPv4, int(ip[8])
			p.Src = netip.AddrFrom4([4]byte(ip[12:16]))
			p.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
			p.Payload = ip[ihl:total]
		case 0x86dd:
			if len(ip) < 40 || ip[6] != 112 {
				continue
			}
			plen := int(binary.BigEndian.Uint16(ip[4:]))
			if 40+plen > len(ip) {
				t.Fatalf("%s: frame %d: bad IPv6 length", path, frame)
			}
			p.Family, p.TTL = IPv6, int(ip[7])
			p.Src = netip.AddrFrom16([16]byte(ip[8:24]))
			p.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
			p.Payload = ip[40 : 40+plen]
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

package carp

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FuzzRawReceive feeds the receive path's parsing of what recvmsg
// returned (control messages, the IPv4 header length) arbitrary bytes: it
// must never panic or return a payload outside its buffer.
func FuzzRawReceive(f *testing.F) {
	v4 := cmsgs([]cmsg{{unix.IPPROTO_IP, unix.IP_TTL, []byte{255, 0, 0, 0}}, {unix.IPPROTO_IP, unix.IP_PKTINFO, make([]byte, unix.SizeofInet4Pktinfo)}})
	f.Add(v4, byte(0x45), 56)
	f.Add(cmsgs([]cmsg{{unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, make([]byte, unix.SizeofInet6Pktinfo)}}), byte(0x4f), 10)
	f.Add([]byte{}, byte(0), 0)
	f.Fuzz(func(t *testing.T, oob []byte, b0 byte, n int) {
		// The kernel hands over aligned control messages: copy into an
		// aligned buffer as the receiver's is.
		al := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(make([]uint64, len(oob)/8+1)))), len(oob))
		copy(al, oob)
		var p Packet
		parseOOB(al, &p)
		buf := make([]byte, 64)
		got := ipv4Payload(b0, n, buf)
		if len(got) > len(buf) {
			t.Fatalf("payload of %d bytes from a buffer of %d", len(got), len(buf))
		}
	})
}

// TestParseOOB checks the fields read from the control messages a raw
// socket returns.
func TestParseOOB(t *testing.T) {
	pi4 := make([]byte, unix.SizeofInet4Pktinfo)
	binary.NativeEndian.PutUint32(pi4, 7) // ifindex
	copy(pi4[8:], []byte{224, 0, 0, 18})  // header destination
	ttl := binary.NativeEndian.AppendUint32(nil, 255)
	var p Packet
	parseOOB(cmsgs([]cmsg{{unix.IPPROTO_IP, unix.IP_TTL, ttl}, {unix.IPPROTO_IP, unix.IP_PKTINFO, pi4}}), &p)
	if p.TTL != 255 || p.Dst.String() != "224.0.0.18" || p.IfIndex != 7 {
		t.Errorf("IPv4: %+v", p)
	}
	pi6 := make([]byte, unix.SizeofInet6Pktinfo)
	pi6[0], pi6[1], pi6[15] = 0xff, 0x02, 0x12
	binary.NativeEndian.PutUint32(pi6[16:], 9)
	var q Packet
	parseOOB(cmsgs([]cmsg{{unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, binary.NativeEndian.AppendUint32(nil, 64)}, {unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pi6}}), &q)
	if q.TTL != 64 || q.Dst.String() != "ff02::12" || q.IfIndex != 9 {
		t.Errorf("IPv6: %+v", q)
	}
	// Header options: a 24-byte header leaves 4 option bytes in buf.
	buf := []byte{1, 2, 3, 4, 5, 6}
	if got := ipv4Payload(0x46, ipv4HeaderLen+6, buf); string(got) != string(buf[4:]) {
		t.Errorf("with options: % x", got)
	}
	if got := ipv4Payload(0x45, ipv4HeaderLen+6, buf); string(got) != string(buf) {
		t.Errorf("without options: % x", got)
	}
}

package carp

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// ipv4HeaderLen is the IPv4 header without options, which a raw IPv4
	// socket delivers in front of the payload.
	ipv4HeaderLen = 20
	// rawOOBLen holds the control messages asked for (TTL or hop limit,
	// packet info) several times over.
	rawOOBLen = 128
	// rawSlabLen is the size of the blocks received payloads are copied
	// into: one allocation per few hundred adverts instead of one each.
	rawSlabLen = 16 << 10
)

// rawReceiver reads packets of one family with recvmsg(2) into buffers
// made once, and parses the control messages itself: receiving an advert
// allocates nothing but, now and then, a block for the payload copies
// handed to Receive. Like the sender, it keeps the reader goroutine from
// being made to help the garbage collector while an advert waits. Only
// its reader goroutine uses it.
type rawReceiver struct {
	rc   syscall.RawConn
	ipv6 bool
	hdr  [ipv4HeaderLen]byte
	buf  []byte
	oob  []byte
	name unix.RawSockaddrInet6 // large enough for either family
	iov  [2]unix.Iovec
	msg  unix.Msghdr
	n    int
	oobn int
	err  error
	read func(fd uintptr) bool // s.readFD, bound once
	slab []byte
}

func newRawReceiver(f Family, rc syscall.RawConn) *rawReceiver {
	s := &rawReceiver{rc: rc, ipv6: f == IPv6, buf: make([]byte, rawBufLen)}
	// A []uint64 backing keeps the control messages aligned.
	s.oob = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(make([]uint64, rawOOBLen/8)))), rawOOBLen)
	s.read = s.readFD
	return s
}

// next reads one packet: its metadata, and the payload in the receiver's
// buffer (valid until the next call). The error is the socket's.
func (s *rawReceiver) next() (Packet, []byte, error) {
	s.err = nil
	if err := s.rc.Read(s.read); err != nil {
		return Packet{}, nil, err
	}
	if s.err != nil {
		return Packet{}, nil, s.err
	}
	p := Packet{Family: IPv4, TTL: -1}
	payload := s.buf
	if s.ipv6 {
		p.Family = IPv6
		payload = payload[:min(s.n, len(payload))]
		p.Src = netip.AddrFrom16(s.name.Addr)
		if p.Src.Is4In6() {
			p.Src = p.Src.Unmap()
		}
	} else {
		payload = ipv4Payload(s.hdr[0], s.n, payload)
		p.Src = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&s.name)).Addr)
	}
	s.parseOOB(&p)
	return p, payload, nil
}

// ipv4Payload returns the payload of an IPv4 packet of n bytes whose
// header went into a buffer of its own (first byte b0) and the rest into
// buf: header options, if any, are at the start of buf.
func ipv4Payload(b0 byte, n int, buf []byte) []byte {
	hl := int(b0&0x0f) << 2
	n -= ipv4HeaderLen
	if hl > ipv4HeaderLen && n >= hl-ipv4HeaderLen {
		buf = buf[hl-ipv4HeaderLen:]
		n -= hl - ipv4HeaderLen
	}
	return buf[:max(0, min(n, len(buf)))]
}

// readFD is the RawConn.Read callback: false asks to wait for a packet.
func (s *rawReceiver) readFD(fd uintptr) bool {
	if s.ipv6 {
		s.iov[0].Base, s.iov[0].Len = &s.buf[0], uint64(len(s.buf))
		s.msg.Iovlen = 1
	} else {
		s.iov[0].Base, s.iov[0].Len = &s.hdr[0], ipv4HeaderLen
		s.iov[1].Base, s.iov[1].Len = &s.buf[0], uint64(len(s.buf))
		s.msg.Iovlen = 2
	}
	s.msg.Iov = &s.iov[0]
	s.msg.Name = (*byte)(unsafe.Pointer(&s.name))
	s.msg.Namelen = uint32(unsafe.Sizeof(s.name))
	s.msg.Control = &s.oob[0]
	s.msg.SetControllen(len(s.oob))
	for {
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&s.msg)), 0)
		switch errno {
		case 0:
			s.n, s.oobn = int(n), int(s.msg.Controllen)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.err = errno
		return true
	}
}

// parseOOB fills in what the control messages say: the TTL or hop limit,
// the interface and the destination address.
func (s *rawReceiver) parseOOB(p *Packet) {
	parseOOB(s.oob[:min(s.oobn, len(s.oob))], p)
}

// parseOOB reads the control messages in oob into p; anything malformed
// ends the parse.
func parseOOB(oob []byte, p *Packet) {
	hl := unix.CmsgLen(0)
	for len(oob) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hl || l > len(oob) {
			return
		}
		data := oob[hl:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL && len(data) >= 4:
			p.TTL = int(int32(binary.NativeEndian.Uint32(data))) // an int
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, local address, header destination.
			p.IfIndex = int(int32(binary.NativeEndian.Uint32(data)))
			p.Dst = netip.AddrFrom4([4]byte(data[8:12]))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT && len(data) >= 4:
			p.TTL = int(int32(binary.NativeEndian.Uint32(data)))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: destination, then ifindex.
			p.Dst = netip.AddrFrom16([16]byte(data[:16]))
			p.IfIndex = int(binary.NativeEndian.Uint32(data[16:20]))
		}
		next := unix.CmsgSpace(l - hl)
		if next > len(oob) {
			return
		}
		oob = oob[next:]
	}
}

// keep returns a copy of b that Receive hands over, cut from a block
// shared with other payloads (its capacity ends with it, so appending to
// one never touches another).
func (s *rawReceiver) keep(b []byte) []byte {
	if len(s.slab) < len(b) {
		s.slab = make([]byte, max(rawSlabLen, len(b)))
	}
	c := s.slab[:len(b):len(b)]
	copy(c, b)
	s.slab = s.slab[len(b):]
	return c
}

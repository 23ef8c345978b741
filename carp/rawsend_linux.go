package carp

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSender writes the adverts of one family with sendmsg(2), from a
// control message and a destination address built once: sending an advert
// allocates nothing. That matters for timing more than for memory: a
// goroutine that allocates while the garbage collector marks may be made
// to do marking work first, and the protocol loop would send late.
type rawSender struct {
	mu      sync.Mutex // one send at a time: the fields below are its arguments
	rc      syscall.RawConn
	ipv6    bool
	oob     []byte // IPv4: IP_PKTINFO; IPv6: IPV6_HOPLIMIT and IPV6_PKTINFO
	sa4     unix.SockaddrInet4
	sa6     unix.SockaddrInet6
	to      unix.Sockaddr // &sa4 or &sa6
	payload []byte
	err     error
	write   func(fd uintptr) bool // s.writeFD, bound once
}

// newRawSender prepares sending from src on interface ifindex through rc.
// The control messages are those the x/net packages would build per packet:
// the source address and interface, and for IPv6 the hop limit 255 (IPv4's
// TTL is a socket option).
func newRawSender(f Family, rc syscall.RawConn, src netip.Addr, ifindex int) *rawSender {
	s := &rawSender{rc: rc, ipv6: f == IPv6}
	if s.ipv6 {
		var hop [4]byte
		binary.NativeEndian.PutUint32(hop[:], rawTTL)
		var pi [unix.SizeofInet6Pktinfo]byte
		if src.IsValid() {
			a := src.As16()
			copy(pi[:16], a[:])
		}
		binary.NativeEndian.PutUint32(pi[16:], uint32(ifindex))
		s.oob = cmsgs([]cmsg{{unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, hop[:]}, {unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pi[:]}})
		s.to = &s.sa6
	} else {
		// struct in_pktinfo: ifindex, then the source (spec_dst),
		// then an address the kernel ignores on send.
		var pi [unix.SizeofInet4Pktinfo]byte
		binary.NativeEndian.PutUint32(pi[:4], uint32(ifindex))
		if src.IsValid() {
			a := src.Unmap().As4()
			copy(pi[4:8], a[:])
		}
		s.oob = cmsgs([]cmsg{{unix.IPPROTO_IP, unix.IP_PKTINFO, pi[:]}})
		s.to = &s.sa4
	}
	s.write = s.writeFD
	return s
}

// cmsg is one control message to build.
type cmsg struct {
	level, typ int32
	data       []byte
}

// cmsgs lays out control messages as the kernel reads them.
func cmsgs(ms []cmsg) []byte {
	n := 0
	for _, m := range ms {
		n += unix.CmsgSpace(len(m.data))
	}
	// A []uint64 backing keeps the headers aligned for the kernel.
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(make([]uint64, (n+7)/8)))), n)
	off := 0
	for _, m := range ms {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
		h.Level, h.Type = m.level, m.typ
		h.SetLen(unix.CmsgLen(len(m.data)))
		copy(b[off+unix.CmsgLen(0):], m.data)
		off += unix.CmsgSpace(len(m.data))
	}
	return b
}

// send writes payload to dst. The error is the socket's (closed, or an
// errno of sendmsg).
func (s *rawSender) send(payload []byte, dst netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ipv6 {
		s.sa6.Addr = dst.As16()
	} else {
		s.sa4.Addr = dst.Unmap().As4()
	}
	s.payload, s.err = payload, nil
	err := s.rc.Write(s.write)
	s.payload = nil // the caller owns it again
	if err != nil {
		return err
	}
	return s.err
}

// writeFD is the RawConn.Write callback: false asks to wait until the
// socket is writable again.
func (s *rawSender) writeFD(fd uintptr) bool {
	for {
		_, err := unix.SendmsgN(int(fd), s.payload, s.oob, s.to, 0)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.err = err
		return true
	}
}

package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// eventBatch is how many datagrams one read takes from the event socket at
// most, and eventSlot the room for each: the kernel sends every conntrack
// event as a datagram of its own, sized for the flow it describes (a few
// hundred bytes; labels, a helper and a security context still fit well
// under a page).
const (
	eventBatch = 64
	eventSlot  = 8 << 10
)

// errEventTruncated is a datagram longer than eventSlot: its event is lost,
// and the watcher resyncs as for any event it cannot decode.
var errEventTruncated = errors.New("conntrack: event datagram truncated")

// mmsghdr is struct mmsghdr of recvmmsg(2): a msghdr and the length the
// kernel received into it (Go lays it out as C does on every Linux
// architecture).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// eventReader reads the watcher's event socket: up to eventBatch datagrams
// per system call (recvmmsg) into buffers it reuses, where
// netlink.Conn.Receive peeks, then reads, one datagram per call into a new
// page each time. At a few events per new connection, that was half of the
// watcher's system calls and most of the memory it allocated. The events
// are decoded from the buffers before the next read, and decoding copies
// what it keeps.
type eventReader struct {
	rc  syscall.RawConn
	buf []byte
	iov []unix.Iovec
	hdr []mmsghdr
}

func newEventReader(c *netlink.Conn) (*eventReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("conntrack: event socket: %w", err)
	}
	r := &eventReader{
		rc:  rc,
		buf: make([]byte, eventBatch*eventSlot),
		iov: make([]unix.Iovec, eventBatch),
		hdr: make([]mmsghdr, eventBatch),
	}
	for i := range r.hdr {
		r.iov[i].Base = &r.buf[i*eventSlot]
		r.iov[i].SetLen(eventSlot)
		r.hdr[i].hdr.Iov = &r.iov[i]
		r.hdr[i].hdr.SetIovlen(1)
	}
	return r, nil
}

// read waits until the socket has a datagram and reads as many as are
// queued, up to eventBatch; datagram(i) returns the i-th. An error of the
// socket (ENOBUFS: events were lost) is returned by the read that meets it:
// the kernel keeps an error that follows datagrams already read for the
// next call.
func (r *eventReader) read() (int, error) {
	var n int
	var serr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			for i := range r.hdr {
				r.hdr[i].n, r.hdr[i].hdr.Flags = 0, 0
			}
			m, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdr[0])), uintptr(len(r.hdr)),
				unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				n = int(m)
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until the socket is readable
			}
			serr = e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	return n, serr
}

// drop reads and discards every datagram queued, without waiting, until
// the socket is empty, and returns how many it discarded. The watcher calls
// it when a read reported lost events (ENOBUFS): after an overrun the
// kernel drops every further event, silently, until the socket's queue has
// been emptied once, so a resync whose dump starts while the queue still
// holds events misses the flows created meanwhile. Whatever is queued is
// older than that dump, which supersedes it.
func (r *eventReader) drop() (int, error) {
	total := 0
	for {
		var n int
		var serr error
		err := r.rc.Read(func(fd uintptr) bool {
			for {
				m, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdr[0])), uintptr(len(r.hdr)),
					unix.MSG_DONTWAIT, 0, 0)
				switch e {
				case 0:
					n = int(m)
				case unix.EINTR:
					continue
				case unix.EAGAIN, unix.ENOBUFS:
					// Empty; or another overrun since the queue last
					// emptied, which the same resync covers.
					n = -1
					if e == unix.ENOBUFS {
						n = 0
					}
				default:
					serr = e
				}
				return true
			}
		})
		switch {
		case err != nil:
			return total, err
		case serr != nil:
			return total, serr
		case n < 0:
			return total, nil
		}
		total += n
	}
}

// datagram returns the netlink messages of the i-th datagram of the last
// read, in order, their data pointing into the reader's buffer (valid
// until the next read). A message with a netlink error code is returned
// as that error, as netlink.Conn.Receive does.
func (r *eventReader) datagram(i int, fn func(netlink.Message)) error {
	h := &r.hdr[i]
	if h.hdr.Flags&unix.MSG_TRUNC != 0 {
		return errEventTruncated
	}
	b := r.buf[i*eventSlot : i*eventSlot+min(int(h.n), eventSlot)]
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return fmt.Errorf("conntrack: event message length %d in a datagram of %d bytes: %w", l, len(b), unix.EINVAL)
		}
		m := netlink.Message{
			Header: netlink.Header{
				Length:   uint32(l),
				Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:6])),
				Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:8])),
				Sequence: binary.NativeEndian.Uint32(b[8:12]),
				PID:      binary.NativeEndian.Uint32(b[12:16]),
			},
			Data: b[unix.NLMSG_HDRLEN:l:l],
		}
		b = b[min((l+3)&^3, len(b)):]
		if m.Header.Type == netlink.Error && len(m.Data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return fmt.Errorf("conntrack: event socket: %w", unix.Errno(-code))
			}
			continue
		}
		fn(m)
	}
	return nil
}

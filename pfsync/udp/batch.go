package udp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/gocarp/gocarp/pfsync"
)

// batchWriter sends several datagrams in one call: sendmmsg on Linux
// (ipv4.PacketConn and ipv6.PacketConn share the method; elsewhere x/net
// sends one datagram per call, which the loop in batch.write absorbs). It
// returns how many datagrams from the first were sent; an error means the
// first one not sent failed.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchWriter wraps c in the x/net connection of its family.
func newBatchWriter(c *net.UDPConn, v6 bool) batchWriter {
	if v6 {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}

// batch is the reusable state of one sendmmsg-style send: a message per
// datagram, and for each its frame (index in the caller's list) and where
// it went, to name the peer in an error. Used under mu: Send and SendBatch
// may be called concurrently.
type batch struct {
	mu    sync.Mutex
	w     batchWriter
	msgs  []ipv4.Message
	bufs  [][]byte // msgs[i].Buffers is bufs[i : i+1]
	dests []batchDest
	fails []batchFail // of the last write
}

type batchDest struct {
	frame int
	id    pfsync.NodeID
	ap    netip.AddrPort
}

// batchFail is a datagram the kernel refused, and why.
type batchFail struct {
	batchDest
	err error
}

// add queues frame (the frame-th of the caller's) to id at ap, whose
// socket address is sa.
func (b *batch) add(frame int, id pfsync.NodeID, ap netip.AddrPort, sa net.Addr, payload []byte) {
	// bufs may move when it grows: a message's Buffers, taken after its
	// element is set, stays right either way.
	b.bufs = append(b.bufs, payload)
	i := len(b.bufs) - 1
	b.msgs = append(b.msgs, ipv4.Message{Buffers: b.bufs[i : i+1 : i+1], Addr: sa})
	b.dests = append(b.dests, batchDest{frame: frame, id: id, ap: ap})
}

// write sends the queued datagrams, counting each in c, records in fails
// each one the kernel refused, and empties the batch (fails stays until
// the next write).
func (b *batch) write(c *counters) {
	b.fails = b.fails[:0]
	for i := 0; i < len(b.msgs); {
		n, err := b.w.WriteBatch(b.msgs[i:], 0)
		if n > 0 {
			c.sent.Add(uint64(n))
			i += n
		}
		if err == nil && n <= 0 {
			err = io.ErrShortWrite // no progress and no reason: do not spin
		}
		if err != nil && i < len(b.msgs) {
			// The first datagram not sent is the one that failed; the
			// ones after it are tried again.
			c.sendErrors.Add(1)
			b.fails = append(b.fails, batchFail{b.dests[i], err})
			i++
		}
	}
	clear(b.bufs) // do not pin the caller's frames
	clear(b.msgs)
	b.msgs, b.bufs, b.dests = b.msgs[:0], b.bufs[:0], b.dests[:0]
}

// error is the error of a failed datagram, as Send reports it.
func (f batchFail) error() error {
	if f.id == 0 { // Multicast names the destination only
		return fmt.Errorf("udp: send to %v: %w", f.ap, f.err)
	}
	return fmt.Errorf("udp: send to node %d at %v: %w", f.id, f.ap, f.err)
}

func errOversize(n, mtu int) error {
	return fmt.Errorf("udp: %d-byte frame exceeds MTU %d", n, mtu)
}

func errNoPeer(id pfsync.NodeID) error {
	return fmt.Errorf("udp: no peer with node id %d", id)
}

// joinInto adds err to *dst.
func joinInto(dst *error, err error) {
	if *dst == nil {
		*dst = err
		return
	}
	*dst = errors.Join(*dst, err)
}

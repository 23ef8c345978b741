package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

const ctMsgDelete = 2

// errDeleted marks a write that deleted the previous entry and then failed
// to create the new one: the kernel holds no entry for the tuple.
var errDeleted = errors.New("deleted the entry")

// injector writes flows into the kernel table over its own ctnetlink
// socket. Its methods are called serially (the Table contract).
type injector struct {
	c   *netlink.Conn
	buf []byte // message buffer, reused: calls are serial

	// createBatch's, updateBatch's and execBatch's buffers, reused.
	msgs  []netlink.Message
	idx   []int
	mres  []error
	uidx  []int
	umres []error
	ures  []error
	rbuf  []byte
	sbuf  []byte // the requests of one sendmsg
	seq   uint32 // execBatch's sequence numbers

	// The messages of one batch: bodies back to back in mbuf, mhdr[k]'s
	// body starting at moff[k].
	mbuf []byte
	mhdr []netlink.Header
	moff []int
}

func dialNetfilter(netns int) (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, netlinkConfig(netns))
	if err != nil {
		return nil, fmt.Errorf("conntrack: dial ctnetlink: %w", err)
	}
	return c, nil
}

func (in *injector) exec(f *ct.Flow, create bool) error {
	return in.execMsg(f, create, true)
}

// execMsg sends a create or an update, the update with or without the
// status bits, and waits for the ack.
func (in *injector) execMsg(f *ct.Flow, create, status bool) error {
	msg, err := appendMessage(in.buf[:0], f, create, status)
	if err != nil {
		return err
	}
	_, err = in.c.Execute(msg)
	in.buf = msg.Data[:0]
	return err
}

// execOne sends one request and waits for its ack.
func (in *injector) execOne(m netlink.Message) error {
	_, err := in.c.Execute(m)
	return err
}

// writeOutcome says how write got a flow into the kernel.
type writeOutcome uint8

const (
	wroteCreated writeOutcome = iota + 1
	wroteUpdated
	wroteRecreated
	wroteNothing // the kernel holds the record in this state already
	wroteRefused // this node's Filter ignores the record: not written
)

// write puts f into the kernel table: create, or update when the entry
// exists (EEXIST, or known says it should exist). When the kernel refuses
// the update because it would clear a status bit (EBUSY: SEEN_REPLY and
// ASSURED are only ever set), the kernel's entry has seen more than the
// record and keeps its status: the update is sent again without it. Only
// when that is refused too is the entry deleted and created again, as
// conntrackd's commit does for every refused update: on a node forwarding
// the flow, a packet between the delete and the create makes a new entry
// (a new NAT port for UDP, an INVALID drop for TCP). On error the kernel
// holds either the previous entry unchanged or no entry at all, never a
// partial one; the error names the tuple.
//
// hooks, if not nil, hears of an update that keeps the kernel's status and
// of a delete-then-create before they are sent: their kernel events are not
// those of a plain write.
func (in *injector) write(f *ct.Flow, known bool, hooks writeHooks) (writeOutcome, error) {
	if known {
		return in.resolve(f, nil, hooks)
	}
	err := in.exec(f, true)
	if err == nil {
		err = errCreated
	}
	return in.resolve(f, err, hooks)
}

// writeHooks hears, before it happens, that a write changes a live entry
// in a way its kernel events tell apart from a plain write.
type writeHooks interface {
	keepingStatus() // an update that leaves the kernel's status bits as they are
	recreating()    // a delete, then a create
}

// resolve finishes write given the result of the create: created is nil
// when f was known to exist and no create was sent, errCreated when the
// create succeeded, else the create's error.
func (in *injector) resolve(f *ct.Flow, created error, hooks writeHooks) (writeOutcome, error) {
	var exists error
	if created != nil {
		if created == errCreated {
			return wroteCreated, nil
		}
		if !errors.Is(created, unix.EEXIST) {
			return 0, fmt.Errorf("conntrack: create %v: %w", f.TupleOrig, created)
		}
		exists = created
	}
	err := in.exec(f, false)
	if errors.Is(err, unix.EBUSY) {
		if hooks != nil {
			hooks.keepingStatus()
		}
		err = in.execMsg(f, false, false)
	}
	switch {
	case err == nil:
		return wroteUpdated, nil
	case errors.Is(err, unix.ENOENT) && exists != nil:
		// EEXIST on create but no entry with this original tuple: another
		// flow holds the (translated) reply tuple.
		return 0, fmt.Errorf("conntrack: create %v: reply tuple %v belongs to another flow: %w", f.TupleOrig, f.TupleReply, exists)
	case errors.Is(err, unix.ENOENT):
		// Expired or deleted in the kernel since: create it again.
		if err := in.exec(f, true); err != nil {
			return 0, fmt.Errorf("conntrack: create %v: %w", f.TupleOrig, err)
		}
		return wroteCreated, nil
	}
	if hooks != nil {
		hooks.recreating()
	}
	if derr := in.delete(f); derr != nil {
		return 0, fmt.Errorf("conntrack: update %v: %w (and delete for re-create: %w)", f.TupleOrig, err, derr)
	}
	if cerr := in.exec(f, true); cerr != nil {
		return 0, fmt.Errorf("conntrack: update %v: %w; %w, re-create failed: %w", f.TupleOrig, err, errDeleted, cerr)
	}
	return wroteRecreated, nil
}

// errCreated is createBatch's result for a flow the kernel created, and
// errNoAck for one whose acknowledgement never arrived (the socket's
// receive buffer overran): whether it exists is unknown, and a create
// answered by EEXIST tells.
var (
	errCreated = errors.New("created")
	errNoAck   = errors.New("no acknowledgement")
)

// createBatch creates every flow of fs with one sendmsg carrying one
// create message each, and stores each flow's result in res: errCreated,
// the kernel's error, or errNoAck (see execBatch).
func (in *injector) createBatch(fs []*ct.Flow, res []error) error {
	idx := in.idx[:0] // msgs[i] creates fs[idx[i]]
	in.startMessages()
	for i, f := range fs {
		if err := in.addMessage(f, true); err != nil {
			res[i] = err
			continue
		}
		idx = append(idx, i)
	}
	msgs := in.messages()
	mres := slices.Grow(in.mres[:0], len(msgs))[:len(msgs)]
	in.idx, in.mres = idx[:0], mres[:0]
	err := in.execBatch(msgs, mres)
	for k, i := range idx {
		if res[i] = mres[k]; res[i] == nil {
			res[i] = errCreated
		}
	}
	return err
}

// startMessages, addMessage and messages build the requests of one batch
// into buffers the injector reuses: messages returns them, valid until the
// next startMessages.
func (in *injector) startMessages() {
	in.mbuf, in.mhdr, in.moff = in.mbuf[:0], in.mhdr[:0], in.moff[:0]
}

// addMessage appends the create or update (with status) of f.
func (in *injector) addMessage(f *ct.Flow, create bool) error {
	start := len(in.mbuf)
	m, err := appendMessage(in.mbuf, f, create, true)
	if err != nil {
		return err
	}
	in.mbuf, in.mhdr, in.moff = m.Data, append(in.mhdr, m.Header), append(in.moff, start)
	return nil
}

func (in *injector) messages() []netlink.Message {
	msgs := slices.Grow(in.msgs[:0], len(in.mhdr))[:len(in.mhdr)]
	for k := range msgs {
		end := len(in.mbuf)
		if k+1 < len(in.moff) {
			end = in.moff[k+1]
		}
		msgs[k] = netlink.Message{Header: in.mhdr[k], Data: in.mbuf[in.moff[k]:end:end]}
	}
	in.msgs = msgs[:0]
	return msgs
}

// updateBatch sends the updates of the known entries of ps (with their
// status bits, as write sends them first) in one sendmsg and returns each
// one's result, indexed like ps: nil for an update the kernel applied,
// else an error (errNoAck when unknown, the kernel's error, or
// errNotSent for entries that are not known or whose message could not
// be built). The slice is reused by the next call.
func (in *injector) updateBatch(ps []pendingWrite) []error {
	res := slices.Grow(in.ures[:0], len(ps))[:len(ps)]
	in.ures = res
	idx := in.uidx[:0] // msgs[k] updates ps[idx[k]]
	in.startMessages()
	for i := range ps {
		res[i] = errNotSent
		if !ps[i].known {
			continue
		}
		if in.addMessage(&ps[i].f, false) != nil {
			continue
		}
		idx = append(idx, i)
	}
	msgs := in.messages()
	mres := slices.Grow(in.umres[:0], len(msgs))[:len(msgs)]
	in.uidx, in.umres = idx[:0], mres[:0]
	if len(msgs) == 0 {
		return res
	}
	if err := in.execBatch(msgs, mres); err != nil {
		return res // every update goes through write
	}
	for k, i := range idx {
		res[i] = mres[k]
	}
	return res
}

// errNotSent is updateBatch's result for an entry it did not send.
var errNotSent = errors.New("not sent")

// execBatch sends msgs (requests with NLM_F_ACK) in one sendmsg, then
// collects the results, mapped back to their message by sequence number,
// into res: nil, the kernel's error, or errNoAck when the result is unknown
// (the socket's receive buffer overran). The kernel handles the messages one
// by one during the sendmsg (netlink_rcv_skb), each with its own result, so
// one failure leaves the others alone. It returns an error when the batch
// could not be sent (nothing was written; every res is that error) or its
// results not read.
//
// Only the last message asks for an acknowledgement: the kernel answers a
// request without NLM_F_ACK only when it fails, and handles the requests
// in order, so once the last one's answer is read every earlier request
// that has no error message succeeded — unless the socket overran
// (ENOBUFS), which may have dropped error messages: those requests stay
// errNoAck. An acknowledgement per request cost the kernel a message each
// and the reader a system call each, about a sixth of a commit. msgs keep
// their flags.
func (in *injector) execBatch(msgs []netlink.Message, res []error) error {
	if len(msgs) == 0 {
		return nil
	}
	for i := range res {
		res[i] = errNoAck
	}
	last := len(msgs) - 1
	acked := msgs[last].Header.Flags&netlink.Acknowledge != 0
	rc, err := in.c.SyscallConn()
	if err != nil {
		// Not a socket (a test's fake): send through the netlink.Conn;
		// every result stays unknown and is written again one by one.
		if _, err := in.c.SendMessages(msgs); err != nil {
			for i := range res {
				res[i] = err
			}
			return fmt.Errorf("conntrack: send %d requests: %w", len(msgs), err)
		}
		return fmt.Errorf("conntrack: read acks: %w", err)
	}
	// The requests go out back to back in one buffer the injector reuses,
	// numbered from a sequence of its own (netlink.Conn.SendMessages
	// marshals each into a new buffer and copies them all into another).
	first := in.seq
	in.seq += uint32(len(msgs))
	out := in.sbuf[:0]
	for i, m := range msgs {
		flags := m.Header.Flags
		if i != last {
			flags &^= netlink.Acknowledge
		}
		out = binary.NativeEndian.AppendUint32(out, uint32(unix.NLMSG_HDRLEN+len(m.Data)))
		out = binary.NativeEndian.AppendUint16(out, uint16(m.Header.Type))
		out = binary.NativeEndian.AppendUint16(out, uint16(flags))
		out = binary.NativeEndian.AppendUint32(out, first+uint32(i))
		out = binary.NativeEndian.AppendUint32(out, 0)
		out = append(out, m.Data...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	in.sbuf = out
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		serr = err
	}
	if serr != nil {
		for i := range res {
			res[i] = serr
		}
		return fmt.Errorf("conntrack: send %d requests: %w", len(msgs), serr)
	}
	if len(in.rbuf) == 0 {
		in.rbuf = make([]byte, 1<<16)
	}
	overrun := false
	// settle marks the requests without an answer as done once the last
	// one's answer has been read.
	settle := func() {
		if overrun {
			return
		}
		for i := range res {
			if res[i] == errNoAck {
				res[i] = nil
			}
		}
	}
	for done := !acked; !done; {
		var n int
		var rerr error
		// The kernel queued every answer during the sendmsg: read without
		// waiting, and stop when the queue is empty.
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), in.rbuf, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return fmt.Errorf("conntrack: read acks: %w", err)
		}
		switch {
		case errors.Is(rerr, unix.ENOBUFS):
			overrun = true // some answers were dropped; read the rest
			continue
		case errors.Is(rerr, unix.EINTR):
			continue
		case errors.Is(rerr, unix.EAGAIN):
			return nil // the rest were lost: errNoAck
		case rerr != nil:
			return fmt.Errorf("conntrack: read acks: %w", rerr)
		}
		for b := in.rbuf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ, seq := binary.NativeEndian.Uint16(b[4:6]), binary.NativeEndian.Uint32(b[8:12])
			body := b[unix.NLMSG_HDRLEN:l]
			b = b[min((l+3)&^3, len(b)):]
			k := int(seq - first)
			if typ != unix.NLMSG_ERROR || len(body) < 4 || seq-first >= uint32(len(msgs)) || res[k] != errNoAck {
				continue
			}
			res[k] = nil
			if code := int32(binary.NativeEndian.Uint32(body)); code != 0 {
				res[k] = unix.Errno(-code)
			}
			if k == last {
				done = true
			}
		}
	}
	if acked {
		settle()
	}
	return nil
}

// delete removes the entry with f's original tuple and zone; an absent
// entry is not an error.
func (in *injector) delete(f *ct.Flow) error {
	b := nlattr([]byte{byte(family(f)), 0, 0, 0}).tuple(ctaTupleOrig, &f.TupleOrig)
	if f.Zone != 0 {
		b = b.u16(ctaZone, f.Zone)
	}
	msg := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(uint16(netfilter.NFSubsysCTNetlink)<<8 | ctMsgDelete),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: b,
	}
	if _, err := in.c.Execute(msg); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("conntrack: delete %v: %w", f.TupleOrig, err)
	}
	return nil
}

// setReadBuffer sizes a socket's receive buffer, with SO_RCVBUFFORCE when
// the process has CAP_NET_ADMIN (so net.core.rmem_max does not cap it) and
// SO_RCVBUF otherwise.
func setReadBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("conntrack: read buffer: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	}); err != nil {
		return fmt.Errorf("conntrack: read buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("conntrack: read buffer %d bytes: %w", n, serr)
	}
	return nil
}

func netlinkConfig(netns int) *netlink.Config { return &netlink.Config{NetNS: netns} }

package conntrack

import (
	"errors"
	"fmt"

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
}

func dialNetfilter(netns int) (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, netlinkConfig(netns))
	if err != nil {
		return nil, fmt.Errorf("conntrack: dial ctnetlink: %w", err)
	}
	return c, nil
}

func (in *injector) exec(f *ct.Flow, create bool) error {
	msg, err := appendMessage(in.buf[:0], f, create)
	if err != nil {
		return err
	}
	_, err = in.c.Execute(msg)
	in.buf = msg.Data[:0]
	return err
}

// writeOutcome says how write got a flow into the kernel.
type writeOutcome uint8

const (
	wroteCreated writeOutcome = iota + 1
	wroteUpdated
	wroteRecreated
)

// write puts f into the kernel table: create, or update when the entry
// exists (EEXIST, or known says it should exist), and delete-then-create
// when the kernel refuses the update (a status bit it will not clear, a
// changed NAT reply tuple), as conntrackd's commit does. On error the
// kernel holds either the previous entry unchanged or no entry at all,
// never a partial one; the error names the tuple.
//
// beforeDelete, if not nil, runs before the delete of a delete-then-create.
func (in *injector) write(f *ct.Flow, known bool, beforeDelete func()) (writeOutcome, error) {
	var exists error
	if !known {
		err := in.exec(f, true)
		if err == nil {
			return wroteCreated, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("conntrack: create %v: %w", f.TupleOrig, err)
		}
		exists = err
	}
	err := in.exec(f, false)
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
	if beforeDelete != nil {
		beforeDelete()
	}
	if derr := in.delete(f); derr != nil {
		return 0, fmt.Errorf("conntrack: update %v: %w (and delete for re-create: %w)", f.TupleOrig, err, derr)
	}
	if cerr := in.exec(f, true); cerr != nil {
		return 0, fmt.Errorf("conntrack: update %v: %w; %w, re-create failed: %w", f.TupleOrig, err, errDeleted, cerr)
	}
	return wroteRecreated, nil
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

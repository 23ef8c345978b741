//go:build linux

package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/gocarp/gocarp/internal/sockopt"
)

// NetlinkManager is the Linux AddrManager. It talks rtnetlink
// (jsimonetti/rtnetlink/v2) on one socket for requests and listens on a
// second one, subscribed to RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR, for
// address notifications of its interface, which feed Changes.
//
// Linux reports an interrupted address dump (NLM_F_DUMP_INTR) only in a
// header flag that rtnetlink does not expose, so List may return a list that
// mixes the states before and after a concurrent change. The Follower is
// idempotent and lists again on the next notification or periodic pass,
// which is the remedy.
type NetlinkManager struct {
	ifi     *net.Interface
	c       *rtnetlink.Conn
	w       *rtnetlink.Conn
	log     *slog.Logger
	changes chan struct{}
	done    chan struct{}
	closing atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var _ AddrManager = (*NetlinkManager)(nil)

// NewNetlinkManager opens the netlink sockets of a manager for ifi (adding
// and removing addresses needs CAP_NET_ADMIN). The sockets live in the
// network namespace of the calling thread. A nil cfg means all defaults.
func NewNetlinkManager(ifi *net.Interface, cfg *ManagerConfig) (*NetlinkManager, error) {
	if ifi == nil {
		return nil, fmt.Errorf("vip: address manager: nil interface")
	}
	if cfg == nil {
		cfg = &ManagerConfig{}
	}
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("vip: address manager for %s: netlink: %w", ifi.Name, err)
	}
	w, err := rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR})
	if err != nil {
		err = fmt.Errorf("vip: address manager for %s: netlink notifications: %w", ifi.Name, err)
		if cerr := c.Close(); cerr != nil {
			err = fmt.Errorf("%w (closing the request socket: %v)", err, cerr)
		}
		return nil, err
	}
	m := &NetlinkManager{
		ifi:     ifi,
		c:       c,
		w:       w,
		log:     orDiscard(cfg.Logger),
		changes: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go m.watch()
	return m, nil
}

// watch turns address notifications of the interface into Changes values.
func (m *NetlinkManager) watch() {
	defer close(m.done)
	for {
		msgs, _, err := m.w.Receive()
		if m.closing.Load() {
			return
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				// The kernel dropped notifications: something changed, and we
				// do not know what.
				m.signal()
				continue
			}
			m.log.Error("vip: address notifications stopped; relying on periodic passes", "iface", m.ifi.Name, "err", err)
			return
		}
		for _, msg := range msgs {
			if am, ok := msg.(*rtnetlink.AddressMessage); ok && int(am.Index) == m.ifi.Index {
				m.signal()
				break
			}
		}
	}
}

func (m *NetlinkManager) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// addrMessage is the request that adds or removes p on interface index.
// IPv4 requests carry IFA_LOCAL as well as IFA_ADDRESS: the kernel deletes
// by IFA_LOCAL, and with IFA_ADDRESS alone it would match any address of
// the same subnet (inet_rtm_deladdr). IPv6 requests carry IFA_F_NODAD in
// the 8-bit header flags and in IFA_FLAGS.
func addrMessage(index int, p netip.Prefix) *rtnetlink.AddressMessage {
	a := p.Addr()
	msg := &rtnetlink.AddressMessage{
		PrefixLength: uint8(p.Bits()),
		Scope:        unix.RT_SCOPE_UNIVERSE,
		Index:        uint32(index),
		Attributes:   &rtnetlink.AddressAttributes{Address: net.IP(a.AsSlice())},
	}
	if a.IsLinkLocalUnicast() {
		msg.Scope = unix.RT_SCOPE_LINK
	}
	if a.Is4() {
		msg.Family = unix.AF_INET
		msg.Attributes.Local = msg.Attributes.Address
	} else {
		msg.Family = unix.AF_INET6
		msg.Flags = unix.IFA_F_NODAD
		msg.Attributes.Flags = unix.IFA_F_NODAD
	}
	return msg
}

// Add installs p; see AddrManager. An address that exists already
// (EEXIST) is success.
func (m *NetlinkManager) Add(p netip.Prefix) error {
	if err := checkPrefix(p); err != nil {
		return fmt.Errorf("vip: add %v on %s: %w", p, m.ifi.Name, err)
	}
	if err := m.c.Address.New(addrMessage(m.ifi.Index, p)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vip: add %v on %s: %w", p, m.ifi.Name, err)
	}
	return nil
}

// Remove deletes p; see AddrManager. An address that is already gone
// (EADDRNOTAVAIL) is success.
func (m *NetlinkManager) Remove(p netip.Prefix) error {
	if err := checkPrefix(p); err != nil {
		return fmt.Errorf("vip: remove %v from %s: %w", p, m.ifi.Name, err)
	}
	if err := m.c.Address.Delete(addrMessage(m.ifi.Index, p)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("vip: remove %v from %s: %w", p, m.ifi.Name, err)
	}
	return nil
}

// List returns the interface's addresses; see AddrManager.
func (m *NetlinkManager) List() ([]netip.Prefix, error) {
	msgs, err := m.c.Address.List()
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses of %s: %w", m.ifi.Name, err)
	}
	return prefixesOf(msgs, m.ifi.Index), nil
}

// prefixesOf extracts the addresses of interface index from a dump (see
// sockopt.AddrOf for which attribute holds the interface's own address).
func prefixesOf(msgs []rtnetlink.AddressMessage, index int) []netip.Prefix {
	var ps []netip.Prefix
	for _, msg := range msgs {
		if int(msg.Index) != index {
			continue
		}
		a, ok := sockopt.AddrOf(&msg)
		if !ok {
			continue
		}
		if p := netip.PrefixFrom(a, int(msg.PrefixLength)); p.IsValid() {
			ps = append(ps, p)
		}
	}
	return ps
}

// Changes returns the notification channel; see AddrManager.
func (m *NetlinkManager) Changes() <-chan struct{} { return m.changes }

// Close closes both sockets and waits for the notification goroutine. It is
// idempotent. It does not remove any address.
func (m *NetlinkManager) Close() error {
	m.closeOnce.Do(func() {
		m.closing.Store(true)
		err := errors.Join(m.w.Close(), m.c.Close())
		<-m.done
		if err != nil {
			m.closeErr = fmt.Errorf("vip: close address manager of %s: %w", m.ifi.Name, err)
		}
	})
	return m.closeErr
}

package carp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// LinkWatcher reports whether one network interface can carry adverts: it
// is administratively up (IFF_UP) and has carrier (IFF_RUNNING). carp(4)
// puts a group into INIT when its parent interface loses either, and back
// to BACKUP when both return (docs/interop.md, "Link state"); feed the reports to
// [Group.SetLinkState]:
//
//	w, err := carp.NewLinkWatcher("eth0", g.SetLinkState, logger)
//
// The watcher listens to rtnetlink link notifications (RTMGRP_LINK); it
// does not poll. A deleted interface is reported as down.
type LinkWatcher struct {
	ifname string
	index  uint32
	fn     func(up bool)
	log    *slog.Logger
	conn   *rtnetlink.Conn
	done   chan struct{}

	mu     sync.Mutex // guards last
	last   bool
	closed chan struct{}

	closeOnce sync.Once
	err       error // set by the goroutine before done is closed
}

// NewLinkWatcher starts watching interface ifname. fn is called once with
// the current state before NewLinkWatcher returns, then from the watcher's
// goroutine, serially, each time the state changes. fn must not call
// Close. logger may be nil.
//
// The netlink socket belongs to the network namespace of the calling
// thread, as do the interface lookups.
func NewLinkWatcher(ifname string, fn func(up bool), logger *slog.Logger) (*LinkWatcher, error) {
	if fn == nil {
		return nil, errors.New("carp: link watcher: nil callback")
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("carp: link watcher: interface %q: %w", ifname, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Subscribe before reading the initial state so no change is lost
	// between the two.
	conn, err := rtnetlink.Dial(&netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		return nil, fmt.Errorf("carp: link watcher: rtnetlink: %w", err)
	}
	w := &LinkWatcher{
		ifname: ifname,
		index:  uint32(ifi.Index),
		fn:     fn,
		log:    logger.With("iface", ifname),
		conn:   conn,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	up, err := w.query()
	if err != nil {
		conn.Close()
		return nil, err
	}
	w.last = up
	fn(up)
	go w.run()
	return w, nil
}

// linkUp reports whether link flags mean "can carry adverts".
func linkUp(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0
}

// query reads the current state with a separate request socket (replies
// and notifications must not share one).
func (w *LinkWatcher) query() (bool, error) {
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return false, fmt.Errorf("carp: link watcher: rtnetlink: %w", err)
	}
	defer c.Close()
	m, err := c.Link.Get(w.index)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, fmt.Errorf("carp: link watcher: get %s (index %d): %w", w.ifname, w.index, err)
	}
	return linkUp(m.Flags), nil
}

// Up reports the last state passed to the callback.
func (w *LinkWatcher) Up() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *LinkWatcher) report(up bool) {
	w.mu.Lock()
	changed := up != w.last
	w.last = up
	w.mu.Unlock()
	if changed {
		w.log.Debug("carp: link state", "up", up)
		w.fn(up)
	}
}

func (w *LinkWatcher) run() {
	defer close(w.done)
	for {
		rtmsgs, msgs, err := w.conn.Receive()
		if err != nil {
			select {
			case <-w.closed:
				return
			default:
			}
			// ENOBUFS: the kernel dropped notifications; read the state
			// again instead of trusting what we saw last.
			if errors.Is(err, unix.ENOBUFS) {
				w.log.Warn("carp: link notifications overflowed; resynchronising", "err", err)
				up, qerr := w.query()
				if qerr == nil {
					w.report(up)
					continue
				}
				err = qerr
			}
			w.err = fmt.Errorf("carp: link watcher on %s stopped: %w", w.ifname, err)
			w.log.Error("carp: link watcher stopped", "err", err)
			return
		}
		for i, rm := range rtmsgs {
			lm, ok := rm.(*rtnetlink.LinkMessage)
			if !ok || lm.Index != w.index {
				continue
			}
			if msgs[i].Header.Type == unix.RTM_DELLINK {
				w.report(false)
				continue
			}
			w.report(linkUp(lm.Flags))
		}
	}
}

// Close stops the watcher and waits for its goroutine; no callback runs
// after Close returns. It returns the error that stopped the watcher
// early, if any. It is idempotent.
func (w *LinkWatcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.closed)
		cerr := w.conn.Close()
		<-w.done
		if w.err == nil && cerr != nil {
			w.err = fmt.Errorf("carp: link watcher: close: %w", cerr)
		}
	})
	return w.err
}

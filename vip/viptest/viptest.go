// Package viptest provides recording fakes of vip.AddrManager and
// vip.Announcer for tests of code that drives a vip.Follower (or calls the
// interfaces directly), without root or network.
//
// The fakes record every call, in order, with a timestamp and a sequence
// number taken from a Recorder that several fakes (and the test itself) can
// share, so a test can assert the order of operations across them: for
// example "BeforeInstall, then add, then announce". Errors can be injected
// per operation. Everything is safe for concurrent use and works inside a
// testing/synctest bubble: create the fakes inside the bubble, since the
// AddrManager's Changes channel then belongs to it.
package viptest

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gocarp/gocarp/vip"
)

// Op names a recorded operation.
type Op string

// Operations recorded by the fakes. Tests may record their own (Record).
const (
	OpAdd      Op = "add"
	OpRemove   Op = "remove"
	OpList     Op = "list"
	OpAnnounce Op = "announce"
)

// Call is one recorded operation.
type Call struct {
	Seq    int          // position in the Recorder, from 1
	At     time.Time    // time.Now() when the call was made (fake time under synctest)
	Op     Op           //
	Prefix netip.Prefix // OpAdd, OpRemove
	Addrs  []netip.Addr // OpAnnounce
	Err    error        // the error the call returned
}

// String renders the call without Seq and At, e.g. "add 192.0.2.1/32".
func (c Call) String() string {
	s := string(c.Op)
	switch c.Op {
	case OpAdd, OpRemove:
		s += " " + c.Prefix.String()
	case OpAnnounce:
		s += fmt.Sprint(" ", c.Addrs)
	}
	if c.Err != nil {
		s += " (" + c.Err.Error() + ")"
	}
	return s
}

// Recorder is an ordered log of calls shared by fakes. The zero value is
// ready to use.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
}

// Record appends c, stamping Seq and At, and returns the stamped call.
func (r *Recorder) Record(c Call) Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.Seq = len(r.calls) + 1
	c.At = time.Now()
	r.calls = append(r.calls, c)
	return c
}

// Calls returns a copy of every call recorded so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Strings returns Call.String of every call recorded so far, filtered to
// the given ops (all when none are given): the handy form for cmp.Diff.
func (r *Recorder) Strings(ops ...Op) []string {
	var ss []string
	for _, c := range r.Calls() {
		if len(ops) == 0 || slices.Contains(ops, c.Op) {
			ss = append(ss, c.String())
		}
	}
	return ss
}

// errs holds injected errors per operation.
type errs struct {
	mu sync.Mutex
	m  map[Op]error
}

func (e *errs) set(op Op, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[Op]error)
	}
	e.m[op] = err
}

func (e *errs) get(op Op) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[op]
}

// AddrManager is a fake vip.AddrManager holding the address list of one
// imaginary interface.
type AddrManager struct {
	rec     *Recorder
	errs    errs
	changes chan struct{}

	mu    sync.Mutex
	addrs []netip.Prefix
}

var _ vip.AddrManager = (*AddrManager)(nil)

// NewAddrManager returns a fake whose interface carries initial. Calls go to
// rec; a nil rec means a private Recorder (see Recorder()).
func NewAddrManager(rec *Recorder, initial ...netip.Prefix) *AddrManager {
	if rec == nil {
		rec = &Recorder{}
	}
	return &AddrManager{rec: rec, changes: make(chan struct{}, 1), addrs: slices.Clone(initial)}
}

// Recorder returns the Recorder the fake writes to.
func (m *AddrManager) Recorder() *Recorder { return m.rec }

// SetError makes every later call of op fail with err (nil clears it). A
// failed Add or Remove changes nothing.
func (m *AddrManager) SetError(op Op, err error) { m.errs.set(op, err) }

// Add adds p unless the address is already there (any prefix length), like
// the kernel's IPv6 EEXIST.
func (m *AddrManager) Add(p netip.Prefix) error {
	err := m.errs.get(OpAdd)
	if err == nil {
		m.mu.Lock()
		if !slices.ContainsFunc(m.addrs, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
			m.addrs = append(m.addrs, p)
		}
		m.mu.Unlock()
	}
	m.rec.Record(Call{Op: OpAdd, Prefix: p, Err: err})
	return err
}

// Remove removes p (exact prefix), and succeeds when it is not there.
func (m *AddrManager) Remove(p netip.Prefix) error {
	err := m.errs.get(OpRemove)
	if err == nil {
		m.mu.Lock()
		m.addrs = slices.DeleteFunc(m.addrs, func(q netip.Prefix) bool { return q == p })
		m.mu.Unlock()
	}
	m.rec.Record(Call{Op: OpRemove, Prefix: p, Err: err})
	return err
}

// List returns the current addresses.
func (m *AddrManager) List() ([]netip.Prefix, error) {
	err := m.errs.get(OpList)
	m.rec.Record(Call{Op: OpList, Err: err})
	if err != nil {
		return nil, err
	}
	return m.Addrs(), nil
}

// Changes returns the channel that DeleteBehind and AddBehind signal. The
// fake does not signal its own Add and Remove calls (the kernel would, which
// a Follower must tolerate anyway).
func (m *AddrManager) Changes() <-chan struct{} { return m.changes }

// Addrs returns the current addresses without recording a call.
func (m *AddrManager) Addrs() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.addrs)
}

// Has reports whether addr is present with any prefix length.
func (m *AddrManager) Has(addr netip.Addr) bool {
	return slices.ContainsFunc(m.Addrs(), func(q netip.Prefix) bool { return q.Addr() == addr })
}

// DeleteBehind removes p as something else on the host would (a network
// restart, an admin): unrecorded, and signalled on Changes when notify is
// true (false models a lost notification).
func (m *AddrManager) DeleteBehind(p netip.Prefix, notify bool) {
	m.mu.Lock()
	m.addrs = slices.DeleteFunc(m.addrs, func(q netip.Prefix) bool { return q == p })
	m.mu.Unlock()
	if notify {
		m.signal()
	}
}

// AddBehind adds p as something else on the host would; see DeleteBehind.
func (m *AddrManager) AddBehind(p netip.Prefix, notify bool) {
	m.mu.Lock()
	m.addrs = append(m.addrs, p)
	m.mu.Unlock()
	if notify {
		m.signal()
	}
}

func (m *AddrManager) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Announcer is a fake vip.Announcer that records each round.
type Announcer struct {
	rec  *Recorder
	errs errs
}

var _ vip.Announcer = (*Announcer)(nil)

// NewAnnouncer returns a fake writing to rec; a nil rec means a private
// Recorder.
func NewAnnouncer(rec *Recorder) *Announcer {
	if rec == nil {
		rec = &Recorder{}
	}
	return &Announcer{rec: rec}
}

// Recorder returns the Recorder the fake writes to.
func (a *Announcer) Recorder() *Recorder { return a.rec }

// SetError makes every later Announce fail with err (nil clears it).
func (a *Announcer) SetError(err error) { a.errs.set(OpAnnounce, err) }

// Announce records the round.
func (a *Announcer) Announce(addrs []netip.Addr) error {
	err := a.errs.get(OpAnnounce)
	a.rec.Record(Call{Op: OpAnnounce, Addrs: slices.Clone(addrs), Err: err})
	return err
}

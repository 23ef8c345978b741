package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/vip"
)

// planGroups plans the carp section and the groups. A group is known by
// its vhid: a vhid that runs and is in the new file is changed in place
// (carp.Group.Reconfigure, vip.Follower.SetAddresses, the transport's
// unicast peers), one no longer listed is closed (a MASTER bows out, its
// addresses are withdrawn), a new one is opened and started as BACKUP.
// A change the running group cannot take (its interface, its source
// address, an address of a family it does not send on) is refused.
func planGroups(d *daemon, next *Config) (*sectionPlan, error) {
	running := d.groupList()
	byVHID := map[uint8]*groupRun{}
	for _, gr := range running {
		byVHID[gr.cfg.VHID] = gr
	}
	var p sectionPlan
	var changed []*groupChange
	var added []GroupConfig
	keep := map[uint8]bool{}
	for i, gc := range next.Groups {
		where := fmt.Sprintf("groups[%d]", i)
		gr := byVHID[gc.VHID]
		if gr == nil {
			if _, err := net.InterfaceByName(gc.Interface); err != nil {
				return nil, fmt.Errorf("%s.interface %q: %w", where, gc.Interface, err)
			}
			added = append(added, gc)
			p.changes = append(p.changes, fmt.Sprintf("%s: new group %s (vhid %d on %s, addresses %v)", where, gc.Name, gc.VHID, gc.Interface, gc.Addresses))
			continue
		}
		keep[gc.VHID] = true
		c, err := planGroupChange(where, gr, gc, next.CARP)
		if err != nil {
			return nil, err
		}
		if c != nil {
			changed = append(changed, c)
			p.changes = append(p.changes, c.changes...)
		}
	}
	var removed []*groupRun
	for _, gr := range running {
		if !keep[gr.cfg.VHID] {
			removed = append(removed, gr)
			p.changes = append(p.changes, fmt.Sprintf("group %s removed (vhid %d on %s)", gr.cfg.Name, gr.cfg.VHID, gr.cfg.Interface))
		}
	}
	if len(p.changes) == 0 {
		return nil, nil
	}
	p.apply = func() error { return d.applyGroups(next, removed, changed, added) }
	return &p, nil
}

// groupChange is the plan for one group that runs and stays.
type groupChange struct {
	from, to    *groupRun
	reconfigure bool // carp settings or addresses
	addresses   bool // the follower's set
	peers       bool // the transport's unicast peers
	changes     []string
}

// planGroupChange compares the running group gr with gc and the carp
// section cc. It returns nil when nothing changes.
func planGroupChange(where string, gr *groupRun, gc GroupConfig, cc CARPConfig) (*groupChange, error) {
	old := gr.cfg
	if gc.Interface != old.Interface {
		return nil, fmt.Errorf("%s.interface %q: the group with vhid %d runs on %q and cannot move while fwpair runs; remove it in one reload and add it back in another, or restart fwpair",
			where, gc.Interface, gc.VHID, old.Interface)
	}
	if gc.Source != old.Source {
		return nil, fmt.Errorf("%s.source %v cannot change while the group runs (running with %v): restart fwpair to change it", where, gc.Source, old.Source)
	}
	oldFams, newFams := families(old.Addresses), families(gc.Addresses)
	if oldFams != newFams {
		return nil, fmt.Errorf("%s.addresses %v: the group sends on %s and cannot change address families while fwpair runs (new: %s); restart fwpair to change them",
			where, gc.Addresses, oldFams, newFams)
	}
	to := *gr
	to.cfg, to.carp = gc, cc
	c := &groupChange{from: gr, to: &to}
	if !slices.Equal(old.Addresses, gc.Addresses) {
		c.reconfigure, c.addresses = true, true
		c.changes = append(c.changes, describeAddrs(where+".addresses", gc.Name, old.Addresses, gc.Addresses)...)
	}
	if s := carpChanges(gr.carp, cc); len(s) > 0 {
		c.reconfigure = true
		for _, k := range s {
			c.changes = append(c.changes, fmt.Sprintf("%s (group %s)", k, gc.Name))
		}
	}
	if !slices.Equal(old.Peers, gc.Peers) {
		c.peers = true
		c.changes = append(c.changes, fmt.Sprintf("%s.peers %v (group %s, was %v)", where, gc.Peers, gc.Name, old.Peers))
	}
	if gc.Name != old.Name {
		c.changes = append(c.changes, fmt.Sprintf("%s.name %q (was %q)", where, gc.Name, old.Name))
	}
	if len(c.changes) == 0 {
		return nil, nil
	}
	return c, nil
}

// families names the address families of addrs: "IPv4", "IPv6" or
// "IPv4+IPv6".
func families(addrs []netip.Addr) string {
	has4, has6 := false, false
	for _, a := range addrs {
		has4 = has4 || a.Unmap().Is4()
		has6 = has6 || !a.Unmap().Is4()
	}
	switch {
	case has4 && has6:
		return "IPv4+IPv6"
	case has6:
		return "IPv6"
	}
	return "IPv4"
}

// describeAddrs lists the addresses added and removed.
func describeAddrs(key, name string, old, next []netip.Addr) []string {
	var out []string
	for _, a := range next {
		if !slices.Contains(old, a) {
			out = append(out, fmt.Sprintf("%s: +%v (group %s)", key, a, name))
		}
	}
	for _, a := range old {
		if !slices.Contains(next, a) {
			out = append(out, fmt.Sprintf("%s: -%v (group %s)", key, a, name))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("%s: reordered (group %s)", key, name))
	}
	return out
}

// carpChanges lists the keys of the carp section that differ and that a
// group takes live (carp.Group.Reconfigure). start_as_master and
// start_wait only matter at start (planFixed notes them); protocol is
// fixed.
func carpChanges(old, next CARPConfig) []string {
	var out []string
	add := func(changed bool, key string, v any) {
		if changed {
			out = append(out, fmt.Sprintf("carp.%s %v", key, v))
		}
	}
	add(old.AdvBase != next.AdvBase, "advbase", next.AdvBase)
	add(old.AdvSkew != next.AdvSkew, "advskew", next.AdvSkew)
	add(old.Password != next.Password, "password", "changed (old and new key both accepted for the rollover window)")
	add(old.Preempt != next.Preempt, "preempt", next.Preempt)
	add(old.DeadRatio != next.DeadRatio, "dead_ratio", next.DeadRatio)
	add(old.Priority != next.Priority, "priority", next.Priority)
	add(old.AdvertInt != next.AdvertInt, "advert_int", next.AdvertInt.Duration)
	return out
}

// applyGroups applies planGroups's plan: removed groups first (their
// interfaces may be taken by added ones), then the changes, then the new
// groups. The running list is updated after each step, so that what
// failed is tried again by the next reload.
func (d *daemon) applyGroups(next *Config, removed []*groupRun, changed []*groupChange, added []GroupConfig) error {
	var errs []error
	if len(removed) > 0 {
		d.closeGroups(removed)
		for _, gr := range removed {
			d.metricsRemoveGroup(gr)
		}
		d.replaceGroups(func(gs []*groupRun) []*groupRun {
			return slices.DeleteFunc(gs, func(gr *groupRun) bool { return slices.Contains(removed, gr) })
		})
	}
	for _, c := range changed {
		if err := d.applyGroupChange(c); err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", c.to.cfg.Name, err))
			continue
		}
		d.replaceGroups(func(gs []*groupRun) []*groupRun {
			if i := slices.Index(gs, c.from); i >= 0 {
				gs[i] = c.to
			}
			return gs
		})
	}
	for _, gc := range added {
		gr, err := d.openGroup(gc, next.CARP, false)
		if err == nil {
			err = d.metricsAddGroup(gr)
		}
		if err == nil {
			if err = gr.group.Start(); err != nil {
				d.metricsRemoveGroup(gr)
			}
		}
		if err != nil {
			if gr != nil {
				d.closeGroups([]*groupRun{gr})
			}
			errs = append(errs, fmt.Errorf("new group %s: %w", gc.Name, err))
			continue
		}
		d.replaceGroups(func(gs []*groupRun) []*groupRun { return append(gs, gr) })
	}
	if err := d.noAcceptFollow(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyGroupChange changes one running group: the carp settings and
// addresses (the group keeps its state; with new addresses it signs with
// both sets for the rollover window), then the address follower's set
// (new addresses installed and announced if MASTER), then the unicast
// peers.
func (d *daemon) applyGroupChange(c *groupChange) error {
	if c.reconfigure {
		if err := c.from.group.Reconfigure(c.to.carpConfig()); err != nil {
			return err
		}
	}
	if c.addresses && c.from.fol != nil {
		if err := c.from.fol.SetAddresses(vip.Host(c.to.cfg.Addresses...)); err != nil {
			return err
		}
	}
	if c.peers {
		v4, v6 := groupPeers(c.to.cfg)
		for _, f := range c.from.tr.Families() {
			peers := v4
			if f == carp.IPv6 {
				peers = v6
			}
			if err := c.from.tr.SetPeers(f, peers); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceGroups publishes a new list of groups made by edit from a copy of
// the running one (reloadMu held).
func (d *daemon) replaceGroups(edit func([]*groupRun) []*groupRun) {
	groups, tracks := d.running()
	d.setRunning(edit(slices.Clone(groups)), tracks)
}

// closeGroups closes groups that a reload removed, in the shutdown's
// order, each step bounded by shutdownStep: the link watchers, the groups
// (a MASTER bows out, so the peer takes over at once), the followers
// (they withdraw the addresses), the announcers and address managers.
//
// A removed group stays a member of the node's follow group, closed in
// INIT: carp.FollowGroup has no removal.
func (d *daemon) closeGroups(groups []*groupRun) {
	links, gs, fols, addrs := groupClosers(groups)
	for _, step := range []struct {
		what string
		cs   []closer
	}{{"link watchers", links}, {"groups", gs}, {"address followers", fols}, {"announcers and address managers", addrs}} {
		errs, pending := closeAll(shutdownStep, step.cs)
		if err := errors.Join(errs...); err != nil {
			d.log.Warn("fwpair: closing a removed group", "err", err)
		}
		if len(pending) > 0 {
			d.log.Error("fwpair: closing a removed group: step not finished; going on without it", "step", step.what, "pending", pending, "waited", shutdownStep)
		}
	}
}

// groupClosers sorts what closes groups into the steps of a shutdown, in
// its order: the link watchers, the groups (a MASTER bows out; a group
// that was never made closes its transport), the address followers, the
// announcers and address managers. Shutdown and closeGroups share it.
func groupClosers(groups []*groupRun) (links, gs, fols, addrs []closer) {
	for _, gr := range groups {
		name := gr.cfg.Name
		if gr.link != nil {
			links = append(links, closer{name + " link watcher", gr.link.Close})
		}
		if gr.group != nil {
			gs = append(gs, closer{name + " group", gr.group.Close})
		} else if gr.tr != nil {
			gs = append(gs, closer{name + " transport", gr.tr.Close})
		}
		if gr.fol != nil {
			fols = append(fols, closer{name + " address follower", gr.fol.Close})
		}
		if gr.ann != nil {
			addrs = append(addrs, closer{name + " announcer", gr.ann.Close})
		}
		if gr.mgr != nil {
			addrs = append(addrs, closer{name + " address manager", gr.mgr.Close})
		}
	}
	return links, gs, fols, addrs
}

package main

import (
	"net/netip"

	"github.com/gocarp/gocarp/vip"
)

// noAcceptTable is the nftables table (family inet) of carp.accept false:
// one table for every group's addresses.
const noAcceptTable = "fwpair_noaccept"

// accepts reports whether a master accepts packets addressed to the
// virtual addresses: always with CARP, and with VRRPv3 unless carp.accept
// is false (keepalived's default is accept, unless vrrp_strict).
func (cc *CARPConfig) accepts() bool { return cc.Accept == nil || *cc.Accept }

// openNoAccept installs the drop rule of carp.accept false for every
// group's addresses before any group can become MASTER, so no fresh master
// accepts even for a moment (vip.NoAccept). Nothing with accept mode on.
func (d *daemon) openNoAccept() error {
	if d.cfg.CARP.accepts() || len(d.cfg.Groups) == 0 {
		return nil
	}
	var addrs []netip.Addr
	for _, g := range d.cfg.Groups {
		addrs = append(addrs, g.Addresses...)
	}
	var err error
	d.noAccept, err = vip.NewNoAccept(d.cfg.Groups[0].VHID, addrs, &vip.NoAcceptConfig{Table: noAcceptTable, Logger: d.log})
	return err
}

// noAcceptFollow keeps the drop rule of carp.accept false on the addresses
// of the groups that run now, after a reload added, removed or changed
// some: an address added by reload is dropped as the ones at start are.
func (d *daemon) noAcceptFollow() error {
	if d.noAccept == nil {
		return nil
	}
	groups, _ := d.running()
	var addrs []netip.Addr
	for _, gr := range groups {
		addrs = append(addrs, gr.cfg.Addresses...)
	}
	return d.noAccept.SetAddresses(addrs)
}

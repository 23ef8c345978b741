//go:build linux

package vip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/jsimonetti/rtnetlink/v2/driver"
	"golang.org/x/sys/unix"
)

// VirtualMAC is a macvlan link carrying CARP's virtual MAC
// 00:00:5e:00:01:<vhid> (or another one, VirtualMACConfig.MAC, such as
// VRRPv3's IPv6 virtual MAC) on top of a parent interface. Put the VIPs on it
// (NetlinkManager on Interface()), announce them from it (PacketAnnouncer on
// Interface(), whose MAC is the virtual one) and send the CARP
// advertisements from it, and neighbours keep the same MAC for the VIPs
// across a failover: only switches have to relearn the port, which the
// announcements and adverts make them do (MetalLB#123's argument).
//
// Mode: bridge. The parent keeps its own MAC, addresses and traffic, and
// frames to the virtual MAC are delivered to the macvlan; bridge mode also
// lets several virtual-MAC links of one parent (several vhids) reach each
// other locally. private and VEPA would cut or hairpin that traffic, and
// passthru takes the parent over (one child only), so it cannot coexist
// with the parent's own use.
//
// Create it at start-up, not at promotion: a CARP master needs the link
// ready the moment it wins. NewVirtualMAC brings the link up with no IPv6
// link-local address (addr_gen_mode 1) and without duplicate-address
// detection (accept_dad 0). A link-local would be the same on every node
// (it derives from the shared MAC), and a BACKUP's link would send router
// solicitations and MLD reports from the virtual MAC, so switches would
// learn the MAC on the backup's port and deliver the master's traffic
// there. Without one the link is silent until it holds a VIP: the master's
// Neighbor Advertisements use the VIP itself as their source, and CARP's
// IPv6 adverts leave from the parent's link-local address.
//
// The VIPs' on-link resolution (VIP.Bits zero) looks at the macvlan's own
// addresses, so they become /32 and /128 host addresses there; replies then
// leave through the parent's connected route, with the parent's MAC as
// source, while neighbours send to the virtual MAC. Give VIP.Bits the
// subnet's length to route the subnet through the macvlan instead.
//
// The parent still answers ARP for every local address, the VIPs included,
// with its own MAC unless net.ipv4.conf.<parent>.arp_ignore is 1 (reply
// only for addresses on the receiving interface); set it, and arp_announce
// 2, on the parent when using a virtual MAC. IPv6 needs nothing: Linux
// answers a Neighbor Solicitation only on the interface holding the target.
type VirtualMAC struct {
	c      *rtnetlink.Conn
	ifi    *net.Interface
	parent string

	closeOnce sync.Once
	closeErr  error
}

// NewVirtualMAC creates (replacing a stale one left by a crashed run) the
// macvlan link for vhid on parent, disables DAD on it and brings it up.
// Needs CAP_NET_ADMIN; the link is created in the network namespace of the
// calling thread. A nil cfg means all defaults.
func NewVirtualMAC(parent *net.Interface, vhid uint8, cfg *VirtualMACConfig) (*VirtualMAC, error) {
	if parent == nil {
		return nil, errors.New("vip: virtual MAC: nil parent interface")
	}
	if vhid == 0 {
		return nil, errors.New("vip: virtual MAC: vhid 0 out of range 1-255")
	}
	if cfg == nil {
		cfg = &VirtualMACConfig{}
	}
	mac := cfg.MAC
	if mac == nil {
		mac = VirtualMACAddr(vhid)
	}
	if len(mac) != 6 || mac[0]&1 != 0 {
		return nil, fmt.Errorf("vip: VirtualMACConfig.MAC %v is not a 6-byte unicast MAC address", mac)
	}
	name := cfg.Name
	if name == "" {
		name = "carp" + strconv.Itoa(int(vhid))
		if bytes.Equal(mac, VRRPVirtualMACAddr(vhid, true)) {
			name += "v6"
		}
	}
	if len(name) > 15 || name == "." || name == ".." || bytes.ContainsAny([]byte(name), "/ \t\n:") {
		return nil, fmt.Errorf("vip: VirtualMACConfig.Name %q is not a valid interface name (at most 15 bytes, no '/', ':' or space)", name)
	}
	log := orDiscard(cfg.Logger)
	wrap := func(what string, err error) error {
		return fmt.Errorf("vip: virtual MAC %s (%v) on %s: %s: %w", name, mac, parent.Name, what, err)
	}

	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, wrap("netlink", err)
	}
	v := &VirtualMAC{c: c, parent: parent.Name}
	fail := func(err error) (*VirtualMAC, error) {
		if cerr := v.Close(); cerr != nil {
			err = fmt.Errorf("%w (cleaning up: %v)", err, cerr)
		}
		return nil, err
	}

	// A link of that name from an earlier run that died without Close: if it
	// is ours (a macvlan with this MAC), replace it; otherwise refuse.
	links, err := c.Link.List()
	if err != nil {
		return fail(wrap("list links", err))
	}
	for _, l := range links {
		if l.Attributes == nil || l.Attributes.Name != name {
			continue
		}
		a := l.Attributes
		// The parent (IFLA_LINK) is not compared: rtnetlink v2.2.0 returns
		// it as 0 for macvlan links. The kind and the virtual MAC suffice.
		if a.Info == nil || a.Info.Kind != "macvlan" || !bytes.Equal(a.Address, mac) {
			return fail(wrap("create", fmt.Errorf("a different link named %s exists", name)))
		}
		log.Info("vip: replacing stale virtual-MAC link", "iface", name, "parent", parent.Name)
		if err := c.Link.Delete(l.Index); err != nil {
			return fail(wrap("delete stale link", err))
		}
	}

	mode := driver.MacvlanModeBridge
	err = c.Link.New(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Attributes: &rtnetlink.LinkAttributes{
			Name:    name,
			Address: mac,
			Type:    uint32(parent.Index), // encoded as IFLA_LINK: the parent
			Info:    &rtnetlink.LinkInfo{Kind: "macvlan", Data: &driver.Macvlan{Mode: &mode}},
		},
	})
	if err != nil {
		return fail(wrap("create", err))
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		// Without the index Close cannot remove the link; say so.
		return fail(wrap("find the new link (it may be left behind)", err))
	}
	v.ifi = ifi

	if err := quietIPv6(name); err != nil {
		return fail(wrap("configure IPv6", err))
	}
	err = c.Link.Set(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Index:  uint32(ifi.Index),
		Flags:  unix.IFF_UP,
		Change: unix.IFF_UP,
	})
	if err != nil {
		return fail(wrap("set up", err))
	}
	if ifi, err = net.InterfaceByIndex(ifi.Index); err != nil {
		return fail(wrap("refresh", err))
	}
	v.ifi = ifi
	return v, nil
}

// quietIPv6 sets net.ipv6.conf.<name>.addr_gen_mode=1 (no link-local
// address) and accept_dad=0 before the link comes up. A kernel without IPv6
// (no such files) needs neither.
func quietIPv6(name string) error {
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, kv := range [][2]string{{"addr_gen_mode", "1"}, {"accept_dad", "0"}} {
		p := filepath.Join("/proc/sys/net/ipv6/conf", name, kv[0])
		if err := os.WriteFile(p, []byte(kv[1]+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Interface returns the macvlan link (name, index, the virtual MAC).
func (v *VirtualMAC) Interface() *net.Interface { return v.ifi }

// HardwareAddr returns the virtual MAC.
func (v *VirtualMAC) HardwareAddr() net.HardwareAddr { return v.ifi.HardwareAddr }

// Close deletes the link (and with it every address on it) and closes the
// netlink socket. It is idempotent. A link that is already gone is not an
// error.
func (v *VirtualMAC) Close() error {
	v.closeOnce.Do(func() {
		var errs []error
		if v.ifi != nil {
			if err := v.c.Link.Delete(uint32(v.ifi.Index)); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("vip: delete virtual MAC %s on %s: %w", v.ifi.Name, v.parent, err))
			}
		}
		if err := v.c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("vip: virtual MAC on %s: close netlink: %w", v.parent, err))
		}
		v.closeErr = errors.Join(errs...)
	})
	return v.closeErr
}

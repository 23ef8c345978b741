package carp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// An Addresser is a Transport that reports the addresses its adverts are
// sent from and to. A Group with ProtocolVRRPv3 needs them: the VRRP
// checksum covers the IP source and destination, and a tie between equal
// priorities goes to the higher source address. The addresses must not
// change while the transport is open. RawTransport and carptest's Port
// implement it.
type Addresser interface {
	// Source returns the IP source address of adverts of family f (for
	// IPv6 the interface's link-local address).
	Source(f Family) netip.Addr
	// Destination returns where adverts of family f go: 224.0.0.18,
	// ff02::12 or a unicast peer.
	Destination(f Family) netip.Addr
}

// vrrpGroup is what a VRRPv3 Group fixes at NewGroup, per family (index
// familyIndex).
type vrrpGroup struct {
	src, dst [2]netip.Addr
	// addrs are the virtual addresses of each family in the order they
	// are advertised: for IPv6 link-local ones first (RFC 5798).
	addrs [2][]netip.Addr
	// sorted are the same, sorted and without zones, to compare with
	// the addresses of received adverts.
	sorted [2][]netip.Addr
}

// newVRRPGroup checks that cfg's transport reports usable addresses for
// every family in use and prepares the adverts.
func newVRRPGroup(cfg Config, families []Family) (*vrrpGroup, error) {
	at, ok := cfg.Transport.(Addresser)
	if !ok {
		return nil, fmt.Errorf("carp: Config.Transport %T does not report its addresses (Source, Destination), which VRRPv3 needs", cfg.Transport)
	}
	v := &vrrpGroup{}
	for _, f := range families {
		i := familyIndex(f)
		v.src[i], v.dst[i] = at.Source(f), at.Destination(f)
		for _, a := range cfg.Addrs {
			if a.Is4() == (f == IPv4) {
				v.addrs[i] = append(v.addrs[i], a)
				v.sorted[i] = append(v.sorted[i], a.WithZone(""))
			}
		}
		slices.SortStableFunc(v.addrs[i], func(a, b netip.Addr) int {
			switch la, lb := a.IsLinkLocalUnicast(), b.IsLinkLocalUnicast(); {
			case la && !lb:
				return -1
			case lb && !la:
				return 1
			}
			return 0
		})
		slices.SortFunc(v.sorted[i], netip.Addr.Compare)
		// A trial advert checks the transport's addresses and the
		// address count once, so sending cannot fail to encode.
		trial := VRRPAdvertisement{VRID: cfg.VHID, Priority: cfg.Priority, Addrs: v.addrs[i]}
		if _, err := trial.Append(nil, v.src[i], v.dst[i]); err != nil {
			return nil, fmt.Errorf("carp: VRRPv3 on %v: %w", f, err)
		}
	}
	return v, nil
}

// vrrpRun is the protocol loop's VRRPv3 state.
type vrrpRun struct {
	// mai is the master's advert interval learned from its adverts
	// (RFC 5798: Master_Adver_Interval); 0 until one is heard.
	mai time.Duration
	// leaving is set while the master-down timer runs for the skew time
	// only, after the master sent priority 0.
	leaving bool
	buf     []byte // encoding buffer

	v2Logged, carpLogged bool
}

// interval returns the master's advert interval a backup waits on: the
// learned one, or until one is heard the group's own.
func (v *vrrpRun) interval(g *Group) time.Duration {
	if v.mai == 0 {
		return g.advInt
	}
	return v.mai
}

// encodeVRRP returns the VRRPv3 advert for family f: the current priority,
// or 0 when the master stops (leaving).
func (r *run) encodeVRRP(vg *vrrpGroup, f Family, leaving bool) []byte {
	g := r.g
	i := familyIndex(f)
	prio := r.priority()
	if leaving {
		prio = VRRPPriorityStop
	}
	a := VRRPAdvertisement{
		VRID:     g.cfg.VHID,
		Priority: uint8(prio),
		Interval: uint16(g.advInt / (10 * time.Millisecond)),
		Addrs:    vg.addrs[i],
	}
	// Cannot fail: newVRRPGroup encoded the same addresses, and the
	// interval was validated.
	r.vrrp.buf, _ = a.Append(r.vrrp.buf[:0], vg.src[i], vg.dst[i])
	return r.vrrp.buf
}

// receiveVRRP runs the VRRPv3 receive checks (RFC 5798, section 7.1; the
// interface and TTL were checked by receive), counting each drop, and then
// the election.
func (r *run) receiveVRRP(p Packet) {
	g := r.g
	i := familyIndex(p.Family)
	var a VRRPAdvertisement
	if err := a.Unmarshal(p.Payload, p.Src, p.Dst); err != nil {
		switch {
		case errors.Is(err, ErrVRRPv2):
			g.st.vrrpv2.Add(1)
			if !r.vrrp.v2Logged {
				r.vrrp.v2Logged = true
				g.log.Info("carp: VRRPv2 seen on IP protocol 112; ignoring it, this group speaks VRRPv3", "peer", p.Src)
			}
			return
		case errors.Is(err, ErrNotVRRP):
			g.st.carp.Add(1)
			if !r.vrrp.carpLogged {
				r.vrrp.carpLogged = true
				g.log.Info("carp: CARP seen on IP protocol 112; ignoring it (never use a CARP vhid equal to this VRID)", "peer", p.Src)
			}
			return
		case errors.Is(err, ErrVRRPShort):
			g.st.hdrops.Add(1)
		case errors.Is(err, ErrVRRPCount):
			g.st.badlen.Add(1)
		case errors.Is(err, ErrVRRPChecksum):
			g.st.badsum.Add(1)
		default: // ErrVRRPVersion, ErrVRRPType
			g.st.badver.Add(1)
		}
		g.log.Debug("carp: malformed advert", "peer", p.Src, "err", err)
		return
	}
	if a.VRID != g.cfg.VHID {
		g.st.badvhid.Add(1)
		g.log.Debug("carp: advert for another VRID", "peer", p.Src, "peer_vrid", a.VRID)
		return
	}
	if p.Src.WithZone("") == g.vrrp.src[i].WithZone("") {
		g.st.badloop.Add(1)
		g.log.Debug("carp: own advert received back", "peer", p.Src)
		return
	}
	if !sameAddrs(g.vrrp.sorted[i], a.Addrs) && (!r.oldValid(time.Now()) || !sameAddrs(r.old.vrrp.sorted[i], a.Addrs)) {
		g.st.badauth.Add(1)
		if g.log.Enabled(context.Background(), slog.LevelDebug) {
			g.log.Debug("carp: advert lists other virtual addresses; check the VRID and the addresses", "peer", p.Src, "peer_addrs", a.Addrs)
		}
		return
	}
	if r.state == Init {
		return
	}
	r.process(p.Family, p.Src, vrrpOffer(a))
}

// sameAddrs reports whether addrs is the set want (sorted, without zones)
// of a group's virtual addresses of one family, in any order. Every node of a virtual router must list
// the same addresses (RFC 5798 lets a router check it; keepalived logs a
// mismatch), and a different set most likely means a VRID collision.
func sameAddrs(want, addrs []netip.Addr) bool {
	if len(addrs) != len(want) {
		return false
	}
	var buf [8]netip.Addr // no allocation for the usual few addresses
	got := append(buf[:0], addrs...)
	for i := range got {
		got[i] = got[i].WithZone("")
	}
	slices.SortFunc(got, netip.Addr.Compare)
	return slices.Equal(got, want)
}

//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// firstAfter reads a pcap (Ethernet, microsecond or nanosecond timestamps)
// and returns, for frames at or after since, the time of the first CARP
// packet (IP protocol 112) from src and of the first gratuitous ARP for vip
// (sender and target address both vip). The old master's port is down after
// since, so every frame seen then comes from the new master; ucarp sends its
// adverts from 00:00:5e:00:00:<vhid> and its GARPs from the interface MAC,
// so the MACs cannot be matched.
func firstAfter(path string, since time.Time, src, vip string) (advert, garp time.Time, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return advert, garp, err
	}
	if len(b) < 24 {
		return advert, garp, fmt.Errorf("%s: not a pcap file", path)
	}
	var nano bool
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		nano = true
	default:
		return advert, garp, fmt.Errorf("%s: unsupported pcap magic %x", path, b[:4])
	}
	if lt := binary.LittleEndian.Uint32(b[20:]); lt != 1 {
		return advert, garp, fmt.Errorf("%s: link type %d, want Ethernet", path, lt)
	}
	srcIP, vipIP := netip.MustParseAddr(src).As4(), netip.MustParseAddr(vip).As4()
	for off := 24; off+16 <= len(b); {
		sec := int64(binary.LittleEndian.Uint32(b[off:]))
		frac := int64(binary.LittleEndian.Uint32(b[off+4:]))
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		pkt := b[off : off+n]
		off += n
		if !nano {
			frac *= 1000
		}
		at := time.Unix(sec, frac)
		if at.Before(since) || len(pkt) < 14 {
			continue
		}
		switch binary.BigEndian.Uint16(pkt[12:]) {
		case 0x0800: // IPv4: protocol at 9, source at 12
			ip := pkt[14:]
			if advert.IsZero() && len(ip) >= 20 && ip[9] == 112 && [4]byte(ip[12:16]) == srcIP {
				advert = at
			}
		case 0x0806: // ARP: sender IP at 14, target IP at 24
			arp := pkt[14:]
			if garp.IsZero() && len(arp) >= 28 && [4]byte(arp[14:18]) == vipIP && [4]byte(arp[24:28]) == vipIP {
				garp = at
			}
		}
	}
	if advert.IsZero() {
		return advert, garp, fmt.Errorf("%s: no advert from %s after the crash", path, src)
	}
	if garp.IsZero() {
		return advert, garp, errors.New(path + ": no gratuitous ARP for " + vip + " after the crash")
	}
	return advert, garp, nil
}

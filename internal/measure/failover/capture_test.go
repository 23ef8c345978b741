package main

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02}
	at := time.Unix(1763780000, 123456000)
	for _, tc := range []struct {
		name string
		line string
		want packet
		ok   bool
	}{
		{"VRRPv3 advert", "1763780000.123456 02:aa:bb:cc:dd:02 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54: 10.79.0.2 > 224.0.0.18: VRRPv3, Advertisement, vrid 1, prio 200, intvl 10cs, length 12",
			packet{at: at, src: netip.MustParseAddr("10.79.0.2")}, true},
		{"CARP advert", "1763780000.123456 00:00:5e:00:00:01 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 70: 10.79.0.2 > 224.0.0.18: VRRPv2, Advertisement, vrid 1, prio 0, authtype none, intvl 1s, length 36, addrs(7):",
			packet{at: at, src: netip.MustParseAddr("10.79.0.2")}, true},
		{"gratuitous request (carpd)", "1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.79.0.254 tell 10.79.0.254, length 28",
			packet{at: at, mac: mac}, true},
		{"gratuitous request (keepalived)", "1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.79.0.254 (ff:ff:ff:ff:ff:ff) tell 10.79.0.254, length 28",
			packet{at: at, mac: mac}, true},
		{"gratuitous reply", "1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60: Reply 10.79.0.254 is-at 02:aa:bb:cc:dd:02, length 46",
			packet{at: at, mac: mac}, true},
		{"ARP for another address", "1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.79.0.254 tell 10.79.0.2, length 28",
			packet{}, false},
		{"ARP for a longer address", "1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Reply 10.79.0.2541 is-at 02:aa:bb:cc:dd:02, length 28",
			packet{}, false},
		{"IPv6", "1763780000.123456 02:aa:bb:cc:dd:02 > 33:33:00:00:00:12, ethertype IPv6 (0x86dd), length 74: fe80::1 > ff02::12: ip-proto-112 20",
			packet{}, false},
		{"tcpdump's banner", "listening on br0, link-type EN10MB (Ethernet), snapshot length 262144 bytes", packet{}, false},
		{"short timestamp", "1763780000.12 02:aa:bb:cc:dd:02 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54: 10.79.0.2 > 224.0.0.18: VRRPv3", packet{}, false},
		{"empty", "", packet{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseLine(tc.line, "10.79.0.254")
			if ok != tc.ok || !got.at.Equal(tc.want.at) || got.src != tc.want.src || got.mac.String() != tc.want.mac.String() {
				t.Errorf("parseLine = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

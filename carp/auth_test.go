package carp

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hmacReference computes the digest with crypto/hmac over an explicitly
// built message, to check the precomputed-state path.
func hmacReference(password []byte, msg []byte, counter uint64) [DigestLen]byte {
	h := hmac.New(sha1.New, password)
	h.Write(msg)
	h.Write(binary.BigEndian.AppendUint64(nil, counter))
	return [DigestLen]byte(h.Sum(nil))
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestHMACMessage(t *testing.T) {
	tests := []struct {
		name      string
		vhid      uint8
		addrs     []netip.Addr
		linkLocal bool
		want      []string
	}{
		{
			name:  "sorted, deduplicated, v4 before v6",
			vhid:  42,
			addrs: addrs("2001:db8::2", "192.0.2.20", "2001:db8::1", "192.0.2.10", "192.0.2.20", "::ffff:10.0.0.1"),
			want: []string{
				"02 01 2a",                         // version, type, vhid
				"0a000001", "c000020a", "c0000214", // IPv4 ascending; mapped address counts as IPv4
				"20010db8000000000000000000000001",
				"20010db8000000000000000000000002",
			},
		},
		{
			name:      "link-local included with bytes 2-3 zeroed (FreeBSD)",
			vhid:      1,
			addrs:     addrs("fe80::1%eth0", "2001:db8::1"),
			linkLocal: true,
			want: []string{
				"02 01 01",
				"20010db8000000000000000000000001",
				"fe800000000000000000000000000001",
			},
		},
		{
			name:  "link-local left out (OpenBSD)",
			vhid:  1,
			addrs: addrs("fe80::1%eth0", "2001:db8::1"),
			want: []string{
				"02 01 01",
				"20010db8000000000000000000000001",
			},
		},
		{
			name:      "embedded scope zeroed",
			vhid:      1,
			addrs:     addrs("fe80:5::1"),
			linkLocal: true,
			want:      []string{"02 01 01", "fe800000000000000000000000000001"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hmacPrefix(tt.vhid, tt.addrs, tt.linkLocal)
			if diff := cmp.Diff(unhex(t, tt.want...), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestAuthenticatorMatchesHMAC checks the precomputed SHA-1 states against
// crypto/hmac for several keys, including the 20-byte maximum.
func TestAuthenticatorMatchesHMAC(t *testing.T) {
	vips := addrs("192.0.2.1", "fe80::1", "2001:db8::5")
	for _, pw := range []string{"", "x", "secret", strings.Repeat("k", 19), strings.Repeat("k", 20)} {
		a, err := NewAuthenticator([]byte(pw), 3, vips)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []uint64{0, 1, 0xffffffffffffffff, 0x0cf4a0fbab7f4483} {
			want := hmacReference([]byte(pw), hmacPrefix(3, vips, true), c)
			if got := a.Digest(c); got != want {
				t.Errorf("password %q counter %x: digest %x, want %x", pw, c, got, want)
			}
			// Trailing zero bytes of the 20-byte BSD key are irrelevant.
			padded := append([]byte(pw), make([]byte, MaxPasswordLen-len(pw))...)
			if got := hmacReference(padded, hmacPrefix(3, vips, true), c); got != want {
				t.Errorf("password %q: zero-padded key gives another digest", pw)
			}
		}
	}
}

func TestVerifyLinkLocalForms(t *testing.T) {
	pw := []byte("secret")
	vips := addrs("192.0.2.1", "fe80::1", "2001:db8::5")
	a, err := NewAuthenticator(pw, 5, vips)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		digest [DigestLen]byte
		want   error
	}{
		{"FreeBSD with link-local", hmacReference(pw, hmacPrefix(5, vips, true), 77), nil},
		{"OpenBSD without link-local", hmacReference(pw, hmacPrefix(5, vips, false), 77), nil},
		{"wrong key", hmacReference([]byte("secreT"), hmacPrefix(5, vips, true), 77), ErrAuth},
		{"wrong vhid", hmacReference(pw, hmacPrefix(6, vips, true), 77), ErrAuth},
		{"other addresses", hmacReference(pw, hmacPrefix(5, vips[:1], true), 77), ErrAuth},
		{"v4 only message", hmacReference(pw, []byte{2, 1, 5, 192, 0, 2, 1}, 77), ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Verify(Advertisement{VHID: 5, AdvBase: 1, Counter: 77, Digest: tt.digest})
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// Our digest copied into an advert for another vhid: the HMAC covers
	// the vhid, so the advert is not authentic (found by FuzzVerify).
	if err := a.Verify(Advertisement{VHID: 6, AdvBase: 1, Counter: 77, Digest: tests[0].digest}); !errors.Is(err, ErrAuth) {
		t.Errorf("Verify of our digest under vhid 6 = %v, want %v", err, ErrAuth)
	}
	// Sign produces the FreeBSD form, which FreeBSD and OpenBSD both accept.
	adv := Advertisement{VHID: 5, Counter: 77}
	a.Sign(&adv)
	if adv.Digest != tests[0].digest {
		t.Errorf("Sign did not produce the link-local-inclusive digest")
	}
}

func TestNewAuthenticatorErrors(t *testing.T) {
	_, err := NewAuthenticator([]byte(strings.Repeat("p", 21)), 1, addrs("10.0.0.1"))
	if err == nil || err.Error() != "carp: password length 21 out of range 0-20" {
		t.Errorf("21-byte password: %v", err)
	}
	if _, err := NewAuthenticator(nil, 1, []netip.Addr{{}}); err == nil {
		t.Errorf("invalid address accepted")
	}
}

// FuzzVerify decodes arbitrary payloads and verifies them against the
// capture's group: it must never panic, and a forged payload must only
// verify if it carries a digest the key actually produced.
func FuzzVerify(f *testing.F) {
	for _, p := range readPcap(f, "testdata/ucarp-v4.pcap") {
		f.Add(p.Payload)
	}
	for _, p := range readPcap(f, "testdata/carp-bad-checksum-hmac.pcap") {
		f.Add(p.Payload)
	}
	pw := []byte("secret")
	vips := addrs("10.200.200.254")
	a, err := NewAuthenticator(pw, 1, vips)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var adv Advertisement
		if adv.UnmarshalBinary(b) != nil {
			return
		}
		err := a.Verify(adv)
		want := hmacReference(pw, hmacPrefix(adv.VHID, vips, true), adv.Counter) == adv.Digest && adv.VHID == 1
		if (err == nil) != want {
			t.Errorf("Verify = %v, reference match %v", err, want)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	a, err := NewAuthenticator([]byte("secret"), 1, addrs("10.200.200.254"))
	if err != nil {
		b.Fatal(err)
	}
	adv := Advertisement{VHID: 1, AdvBase: 1, Counter: 0x0cf4a0fbab7f4483}
	a.Sign(&adv)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Verify(adv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	a, err := NewAuthenticator([]byte("secret"), 1, addrs("10.200.200.254"))
	if err != nil {
		b.Fatal(err)
	}
	adv := Advertisement{VHID: 1, AdvBase: 1}
	b.ReportAllocs()
	for b.Loop() {
		adv.Counter++
		a.Sign(&adv)
	}
}

package carp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"sync"
)

// MaxPasswordLen is the longest CARP password: the BSD kernels keep a 20-byte
// key (ifconfig stores at most 19 bytes plus a NUL; netlink accepts 20 raw
// bytes). Shorter passwords are zero-padded, which HMAC does anyway.
const MaxPasswordLen = 20

// Authenticator computes and checks the HMAC-SHA1 digest of CARP adverts for
// one group, exactly as OpenBSD, FreeBSD and ucarp do (docs/interop.md, "HMAC"):
//
//	key     = password (zero-padded to 20 bytes, which HMAC does anyway)
//	message = 0x02 0x01 vhid
//	          IPv4 addresses, ascending, each once
//	          IPv6 addresses, byte-wise ascending, each once
//	          the 8 counter bytes as on the wire
//
// Both address families go into every advert, whichever family carries it.
// IPv6 link-local addresses are hashed with bytes 2-3 (the KAME embedded
// scope) zeroed. Like the kernels, the SHA-1 states after ipad‖prefix and
// after opad are computed once, so signing and verifying only hash the
// counter and the outer block.
//
// Sign uses the FreeBSD form (link-local addresses included), which both
// FreeBSD and OpenBSD accept; Verify also accepts OpenBSD's form (link-local
// addresses left out). The two coincide when the group has no link-local
// address.
//
// An Authenticator is safe for concurrent use.
type Authenticator struct {
	vhid      uint8 // the group the digests are computed for
	mu        sync.Mutex
	inner     sha1State // scratch SHA-1 states, restored from the snapshots below
	outer     sha1State
	innerWith []byte // SHA-1 state after key^ipad ‖ prefix incl. link-locals
	innerNoLL []byte // same without link-local IPv6 addresses (OpenBSD sends this)
	outerBase []byte // SHA-1 state after key^opad

	// Scratch buffers, kept here (under mu) so that the hash interface
	// calls do not make stack buffers escape: Sign and Verify do not allocate.
	counter [8]byte
	in, out [sha1.Size]byte

	// key and the two prefixes, for the crypto/hmac fallback.
	key                    []byte
	prefixWith, prefixNoLL []byte
}

// NewAuthenticator returns the authenticator of group vhid with the given
// password and virtual addresses. The password may be empty (the BSD
// default: a key of 20 zero bytes) and at most [MaxPasswordLen] bytes.
// IPv4-mapped IPv6 addresses count as IPv4; duplicates count once.
func NewAuthenticator(password []byte, vhid uint8, addrs []netip.Addr) (*Authenticator, error) {
	if len(password) > MaxPasswordLen {
		return nil, fmt.Errorf("carp: password length %d out of range 0-%d", len(password), MaxPasswordLen)
	}
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("carp: invalid virtual address %v", a)
		}
	}
	var key [sha1.BlockSize]byte
	copy(key[:], password)

	with := hmacPrefix(vhid, addrs, true)
	noLL := hmacPrefix(vhid, addrs, false)

	inner, ok1 := sha1.New().(sha1State)
	outer, ok2 := sha1.New().(sha1State)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("carp: SHA-1 state cannot be restored")
	}
	a := &Authenticator{
		vhid:       vhid,
		inner:      inner,
		outer:      outer,
		key:        slices.Clone(password),
		prefixWith: with,
		prefixNoLL: noLL,
	}
	var err error
	if a.innerWith, err = padState(key, 0x36, with); err != nil {
		return nil, err
	}
	if a.innerNoLL, err = padState(key, 0x36, noLL); err != nil {
		return nil, err
	}
	if a.outerBase, err = padState(key, 0x5c, nil); err != nil {
		return nil, err
	}
	return a, nil
}

// sha1State is a SHA-1 hash whose state can be restored from a snapshot.
type sha1State interface {
	hash.Hash
	encoding.BinaryUnmarshaler
}

// padState returns the marshalled SHA-1 state after hashing key^pad ‖ msg.
func padState(key [sha1.BlockSize]byte, pad byte, msg []byte) ([]byte, error) {
	for i := range key {
		key[i] ^= pad
	}
	h := sha1.New()
	h.Write(key[:])
	h.Write(msg)
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, fmt.Errorf("carp: SHA-1 state cannot be saved")
	}
	st, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("carp: saving SHA-1 state: %w", err)
	}
	return st, nil
}

// hmacPrefix returns the HMAC message without the counter (docs/interop.md, "HMAC").
func hmacPrefix(vhid uint8, addrs []netip.Addr, linkLocal bool) []byte {
	var v4, v6 [][]byte
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			b := a.As4()
			v4 = append(v4, b[:])
			continue
		}
		if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
			if !linkLocal {
				continue
			}
			b := a.As16()
			b[2], b[3] = 0, 0
			v6 = append(v6, b[:])
			continue
		}
		b := a.As16()
		v6 = append(v6, b[:])
	}
	slices.SortFunc(v4, bytes.Compare)
	slices.SortFunc(v6, bytes.Compare)
	v4 = slices.CompactFunc(v4, bytes.Equal)
	v6 = slices.CompactFunc(v6, bytes.Equal)
	m := []byte{Version, TypeAdvertisement, vhid}
	for _, b := range v4 {
		m = append(m, b...)
	}
	for _, b := range v6 {
		m = append(m, b...)
	}
	return m
}

// Sign sets adv.Digest to the HMAC of adv.Counter. It does not allocate.
func (a *Authenticator) Sign(adv *Advertisement) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sum(&adv.Digest, a.innerWith, a.prefixWith, adv.Counter)
}

// Digest returns the digest Sign would put into an advert with counter.
func (a *Authenticator) Digest(counter uint64) [DigestLen]byte {
	var d [DigestLen]byte
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sum(&d, a.innerWith, a.prefixWith, counter)
	return d
}

// Verify checks adv.Digest in constant time against both the digest with
// link-local IPv6 addresses (FreeBSD) and without them (OpenBSD). It
// returns nil or [ErrAuth]. An advert for another vhid is [ErrAuth] whatever
// its digest: the HMAC covers the vhid, so a digest computed for this group
// cannot authenticate an advert that names another one (a copied digest
// with the vhid byte rewritten). It does not allocate. The counter is not
// checked for freshness: OpenBSD sends a constant cookie, and no BSD
// enforces monotonicity (docs/interop.md, "Counters").
func (a *Authenticator) Verify(adv Advertisement) error {
	if adv.VHID != a.vhid {
		return ErrAuth
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var d [DigestLen]byte
	a.sum(&d, a.innerWith, a.prefixWith, adv.Counter)
	ok := subtle.ConstantTimeCompare(d[:], adv.Digest[:])
	a.sum(&d, a.innerNoLL, a.prefixNoLL, adv.Counter)
	ok |= subtle.ConstantTimeCompare(d[:], adv.Digest[:])
	if ok != 1 {
		return ErrAuth
	}
	return nil
}

// sum computes HMAC(key, prefix ‖ counter) into d from the saved states.
// a.mu must be held.
func (a *Authenticator) sum(d *[DigestLen]byte, innerState, prefix []byte, counter uint64) {
	binary.BigEndian.PutUint64(a.counter[:], counter)
	// The states come from sha1.New's hash, which always restores them; if
	// a future standard library could not, fall back to crypto/hmac rather
	// than produce a wrong digest.
	if a.inner.UnmarshalBinary(innerState) != nil || a.outer.UnmarshalBinary(a.outerBase) != nil {
		h := hmac.New(sha1.New, a.key)
		h.Write(prefix)
		h.Write(a.counter[:])
		copy(d[:], h.Sum(nil))
		return
	}
	a.inner.Write(a.counter[:])
	a.inner.Sum(a.in[:0])
	a.outer.Write(a.in[:])
	a.outer.Sum(a.out[:0])
	*d = a.out
}

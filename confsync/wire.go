package confsync

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message kinds; see the package documentation.
const (
	kindOffer   = 1
	kindHave    = 2
	kindRequest = 3
	kindData    = 4
)

const (
	magic0, magic1 = 'C', 'S'
	wireVersion    = 1
	headerLen      = 4 // magic, version, kind
	digestLen      = 32
	// dataFixedLen is a DATA message's length without its name and payload.
	dataFixedLen = headerLen + 8 + 1 + 8 + 8 + digestLen + 8
	maxNameLen   = 255
	maxErrLen    = 512
	// maxRanges bounds the ranges of one REQUEST.
	maxRanges = 128
	// maxDocSize bounds the size a message may announce (1 TiB), far above
	// any Config.MaxSize, so that arithmetic on it cannot overflow.
	maxDocSize = 1 << 40
)

var errShort = errors.New("confsync: message truncated")

// offer announces a published document's newest version.
type offer struct {
	name    string
	version uint64
	size    uint64
	digest  [digestLen]byte
}

// have is a subscriber's report on one subscribed document.
type have struct {
	name    string
	applied uint64 // version in force, 0 none
	failed  uint64 // newest version whose apply failed, 0 none
	err     string // why it failed
}

// span is a run of chunk indexes [start, start+count).
type span struct{ start, count uint32 }

// message is one decoded plaintext message; kind says which fields count.
type message struct {
	kind    byte
	session uint64 // REQUEST, DATA, HAVE: the subscriber's run
	offers  []offer
	haves   []have
	// REQUEST and DATA
	name    string
	version uint64
	size    uint64 // DATA
	digest  [digestLen]byte
	chunk   uint32 // REQUEST: chunk size wanted
	spans   []span // REQUEST
	offset  uint64 // DATA
	payload []byte // DATA, aliases the decoded buffer
}

func appendHeader(b []byte, kind byte) []byte {
	return append(b, magic0, magic1, wireVersion, kind)
}

func appendName(b []byte, name string) []byte {
	b = append(b, byte(len(name)))
	return append(b, name...)
}

func appendOffer(b []byte, o offer) []byte {
	b = appendName(b, o.name)
	b = binary.BigEndian.AppendUint64(b, o.version)
	b = binary.BigEndian.AppendUint64(b, o.size)
	return append(b, o.digest[:]...)
}

func offerLen(o offer) int { return 1 + len(o.name) + 8 + 8 + digestLen }

func haveLen(h have) int { return 1 + len(h.name) + 8 + 8 + 2 + len(h.err) }

// appendOffers encodes an OFFER of os (the caller keeps it within the MTU).
func appendOffers(b []byte, os []offer) []byte {
	b = appendHeader(b, kindOffer)
	b = binary.BigEndian.AppendUint16(b, uint16(len(os)))
	for _, o := range os {
		b = appendOffer(b, o)
	}
	return b
}

// appendHaves encodes a HAVE of hs.
func appendHaves(b []byte, session uint64, hs []have) []byte {
	b = appendHeader(b, kindHave)
	b = binary.BigEndian.AppendUint64(b, session)
	b = binary.BigEndian.AppendUint16(b, uint16(len(hs)))
	for _, h := range hs {
		b = appendName(b, h.name)
		b = binary.BigEndian.AppendUint64(b, h.applied)
		b = binary.BigEndian.AppendUint64(b, h.failed)
		b = binary.BigEndian.AppendUint16(b, uint16(len(h.err)))
		b = append(b, h.err...)
	}
	return b
}

func appendRequest(b []byte, session uint64, name string, version uint64, digest [digestLen]byte, chunk uint32, spans []span) []byte {
	b = appendHeader(b, kindRequest)
	b = binary.BigEndian.AppendUint64(b, session)
	b = appendName(b, name)
	b = binary.BigEndian.AppendUint64(b, version)
	b = append(b, digest[:]...)
	b = binary.BigEndian.AppendUint32(b, chunk)
	b = binary.BigEndian.AppendUint16(b, uint16(len(spans)))
	for _, s := range spans {
		b = binary.BigEndian.AppendUint32(b, s.start)
		b = binary.BigEndian.AppendUint32(b, s.count)
	}
	return b
}

func appendData(b []byte, session uint64, o offer, offset uint64, payload []byte) []byte {
	b = appendHeader(b, kindData)
	b = binary.BigEndian.AppendUint64(b, session)
	b = appendOffer(b, o)
	b = binary.BigEndian.AppendUint64(b, offset)
	return append(b, payload...)
}

// reader consumes a message; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errShort
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) name() string {
	n := int(r.u8())
	p := r.take(n)
	if r.err == nil && n == 0 {
		r.err = errors.New("confsync: empty document name")
	}
	return string(p)
}

func (r *reader) offer() offer {
	o := offer{name: r.name(), version: r.u64(), size: r.u64()}
	copy(o.digest[:], r.take(digestLen))
	if r.err == nil && o.size > maxDocSize {
		r.err = fmt.Errorf("confsync: document %q size %d beyond %d", o.name, o.size, uint64(maxDocSize))
	}
	return o
}

// decode parses a plaintext message. The payload of a DATA message aliases
// b. It never panics on any input.
func decode(b []byte) (message, error) {
	r := reader{b: b}
	h := r.take(headerLen)
	if r.err != nil {
		return message{}, errShort
	}
	if h[0] != magic0 || h[1] != magic1 || h[2] != wireVersion {
		return message{}, fmt.Errorf("confsync: not a version %d message (% x)", wireVersion, h[:3])
	}
	m := message{kind: h[3]}
	switch m.kind {
	case kindOffer:
		n := int(r.u16())
		for i := 0; i < n && r.err == nil; i++ {
			m.offers = append(m.offers, r.offer())
		}
	case kindHave:
		m.session = r.u64()
		n := int(r.u16())
		for i := 0; i < n && r.err == nil; i++ {
			h := have{name: r.name(), applied: r.u64(), failed: r.u64()}
			h.err = string(r.take(int(r.u16())))
			m.haves = append(m.haves, h)
		}
	case kindRequest:
		m.session = r.u64()
		m.name = r.name()
		m.version = r.u64()
		copy(m.digest[:], r.take(digestLen))
		m.chunk = r.u32()
		n := int(r.u16())
		if r.err == nil && n > maxRanges {
			return message{}, fmt.Errorf("confsync: request of %d ranges, at most %d", n, maxRanges)
		}
		for i := 0; i < n && r.err == nil; i++ {
			m.spans = append(m.spans, span{start: r.u32(), count: r.u32()})
		}
		if r.err == nil && m.chunk == 0 {
			return message{}, errors.New("confsync: request with chunk size 0")
		}
	case kindData:
		m.session = r.u64()
		o := r.offer()
		m.name, m.version, m.size, m.digest = o.name, o.version, o.size, o.digest
		m.offset = r.u64()
		m.payload = r.b
		r.b = nil
		if r.err == nil && (m.offset > m.size || uint64(len(m.payload)) > m.size-m.offset) {
			return message{}, fmt.Errorf("confsync: data of %q at %d+%d beyond its size %d", m.name, m.offset, len(m.payload), m.size)
		}
	default:
		return message{}, fmt.Errorf("confsync: unknown message kind %d", m.kind)
	}
	if r.err != nil {
		return message{}, r.err
	}
	if len(r.b) != 0 {
		return message{}, fmt.Errorf("confsync: %d trailing bytes after message kind %d", len(r.b), m.kind)
	}
	return m, nil
}

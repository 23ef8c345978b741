package confsync

import (
	"bytes"
	"testing"
)

func FuzzDecode(f *testing.F) {
	var d [digestLen]byte
	o := offer{name: "ruleset", version: 3, size: 10, digest: d}
	f.Add(appendOffers(nil, []offer{o, {name: "dhcp", version: 1}}))
	f.Add(appendHaves(nil, 9, []have{{name: "ruleset", applied: 2, failed: 3, err: "nft: syntax error"}}))
	f.Add(appendRequest(nil, 9, "ruleset", 3, d, 1400, []span{{0, 4}, {7, 1}}))
	f.Add(appendData(nil, 9, o, 0, []byte("0123456789")))
	f.Add([]byte("CS\x01\x09"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		var out []byte
		switch m.kind {
		case kindOffer:
			out = appendOffers(nil, m.offers)
		case kindHave:
			out = appendHaves(nil, m.session, m.haves)
		case kindRequest:
			out = appendRequest(nil, m.session, m.name, m.version, m.digest, m.chunk, m.spans)
		case kindData:
			out = appendData(nil, m.session, offer{name: m.name, version: m.version, size: m.size, digest: m.digest}, m.offset, m.payload)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip:\n in %x\nout %x", b, out)
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"format":1,"documents":{"ruleset":{"version":3,"sha256":"` + string(bytes.Repeat([]byte("ab"), 32)) + `"}}}`))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"format":2,"documents":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		docs, err := parseState(b)
		if err != nil {
			return
		}
		for n := range docs {
			if checkName(n) != nil {
				t.Fatalf("accepted name %q", n)
			}
		}
	})
}

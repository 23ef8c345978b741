package carp_test

import (
	"testing"

	"github.com/gocarp/gocarp/carp"
)

// BenchmarkRawSend measures RawTransport.Send of one CARP advert to the
// multicast group (one sendmsg), with its allocations: the protocol loop
// calls it on every advert, and a goroutine that allocates while the
// garbage collector marks is made to help it, which delays the advert.
// Needs root (a namespace pair); skipped otherwise.
func BenchmarkRawSend(b *testing.B) {
	for _, fam := range []carp.Family{carp.IPv4, carp.IPv6} {
		b.Run(fam.String(), func(b *testing.B) {
			_, nodes := rawLAN(b, "a", "b")
			tr := rawOpen(b, nodes[0].ns, nodes[0].ifname, &carp.RawConfig{Families: []carp.Family{fam}})
			p := rawPayload(b, 1, 26, 1)
			b.ReportAllocs()
			for b.Loop() {
				if err := tr.Send(fam, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawReceive measures RawTransport's receive path for one CARP
// advert (recvmsg, control messages, the payload copy handed to Receive),
// with its allocations, the send that produces it included. Needs root.
func BenchmarkRawReceive(b *testing.B) {
	for _, fam := range []carp.Family{carp.IPv4, carp.IPv6} {
		b.Run(fam.String(), func(b *testing.B) {
			_, nodes := rawLAN(b, "a", "b")
			from := rawOpen(b, nodes[0].ns, nodes[0].ifname, &carp.RawConfig{Families: []carp.Family{fam}})
			var to *carp.RawTransport
			if err := nodes[1].ns.Do(func() error {
				var err error
				to, err = carp.NewRawTransport(nodes[1].ifname, &carp.RawConfig{Families: []carp.Family{fam}})
				return err
			}); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { to.Close() })
			p := rawPayload(b, 1, 26, 1)
			b.ReportAllocs()
			for b.Loop() {
				if err := from.Send(fam, p); err != nil {
					b.Fatal(err)
				}
				got, err := to.Receive()
				if err != nil {
					b.Fatal(err)
				}
				if len(got.Payload) != len(p) || got.TTL != 255 {
					b.Fatalf("received %+v", got)
				}
			}
		})
	}
}

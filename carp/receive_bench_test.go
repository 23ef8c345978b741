package carp

import (
	"net/netip"
	"testing"
)

// nullTransport discards what is sent and never receives: the benchmark
// drives the protocol loop's receive path directly.
type nullTransport struct{}

func (nullTransport) Send(Family, []byte) error { return nil }
func (nullTransport) Receive() (Packet, error)  { select {} }
func (nullTransport) Families() []Family        { return []Family{IPv4} }
func (nullTransport) Close() error              { return nil }

// BenchmarkReceive measures the advert receive path of the protocol loop
// (checks, HMAC, replay and loop detection, state machine), without the
// transport:
//   - backup: a backup hearing its master's adverts, counter +1 each;
//   - replay: a master hearing one of its own old adverts again.
func BenchmarkReceive(b *testing.B) {
	vips := []netip.Addr{netip.MustParseAddr("10.0.0.254")}
	src := netip.MustParseAddr("192.0.2.1")
	newRun := func(b *testing.B, state State) *run {
		g, err := NewGroup(Config{VHID: 1, AdvSkew: 100, Password: []byte("secret"), Addrs: vips, Transport: nullTransport{}})
		if err != nil {
			b.Fatal(err)
		}
		r := &run{g: g, state: state, linkUp: true, counter: 1 << 40}
		b.Cleanup(r.stopTimers)
		return r
	}
	const n = 1024
	b.Run("backup", func(b *testing.B) {
		r := newRun(b, Backup)
		r.startDown()
		pkts := make([]Packet, n)
		for i := range pkts {
			a := Advertisement{VHID: 1, AdvBase: 1, Counter: 7<<56 + uint64(i)}
			r.g.auth.Sign(&a)
			p, _ := a.MarshalBinary()
			pkts[i] = Packet{Family: IPv4, Payload: p, Src: src, TTL: 255}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i%n == 0 && i > 0 {
				// The next round of counters continues the sequence.
				b.StopTimer()
				for j := range pkts {
					var a Advertisement
					_ = a.UnmarshalBinary(pkts[j].Payload)
					a.Counter += n
					r.g.auth.Sign(&a)
					pkts[j].Payload, _ = a.MarshalBinary()
				}
				b.StartTimer()
			}
			r.receive(pkts[i%n])
		}
		if r.state != Backup {
			b.Fatalf("state %v, want BACKUP", r.state)
		}
	})
	b.Run("replay", func(b *testing.B) {
		r := newRun(b, Master)
		r.advertise(1, 100)
		a := Advertisement{VHID: 1, AdvBase: 1, AdvSkew: 100, Counter: r.counter}
		r.g.auth.Sign(&a)
		old, _ := a.MarshalBinary()
		for range 99 {
			r.advertise(1, 100)
		}
		p := Packet{Family: IPv4, Payload: old, Src: src, TTL: 255}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r.receive(p)
		}
	})
}

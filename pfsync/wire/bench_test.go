package wire

import (
	"net/netip"
	"testing"

	"github.com/gocarp/gocarp/pfsync/record"
)

// pfsync's sizes, for comparison (docs/interop.md, "Sizes for comparison"): OpenBSD
// pfsync_state 264 bytes, pfsync_upd_c 84 bytes.
const (
	pfsyncStateLen = 264
	pfsyncUpdCLen  = 84
)

// benchRecords are typical established TCP flows as conntrack reports them:
// status bits, counters, a day of lifetime, no extensions.
func benchRecords() []struct {
	name string
	r    record.Record
} {
	base := tcp4()
	base.Ext = nil
	base.Version = 1000
	base.Age = 3600
	base.Packets = [2]uint64{150000, 120000}
	base.Bytes = [2]uint64{200_000_000, 9_000_000}
	v4nat := base
	v4nat.Key.Reply.Dst = netip.MustParseAddrPort("203.0.113.7:61000")
	v6 := base
	v6.Key.Family = record.IPv6
	v6.Key.Orig = record.Tuple{Src: netip.MustParseAddrPort("[2001:db8::1]:40000"), Dst: netip.MustParseAddrPort("[2001:db8:1::10]:443")}
	v6.Key.Reply = v6.Key.Orig.Reverse()
	v6nat := v6
	v6nat.Key.Reply.Dst = netip.MustParseAddrPort("[2001:db8:ff::7]:61000")
	return []struct {
		name string
		r    record.Record
	}{{"ipv4-tcp", base}, {"ipv4-tcp-nat", v4nat}, {"ipv6-tcp", v6}, {"ipv6-tcp-nat", v6nat}}
}

const benchMTU = 1500 - 20 - 8 - 48 // IPv4 + UDP + a sealed envelope's overhead

func BenchmarkEncodeFull(b *testing.B) {
	for _, tc := range benchRecords() {
		b.Run(tc.name, func(b *testing.B) {
			r := tc.r
			buf := make([]byte, 0, benchMTU)
			var bld Builder
			if err := bld.Reset(buf, benchMTU, testHeader); err != nil {
				b.Fatal(err)
			}
			frames, bytes := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				r.Version++
				if err := bld.AddUpdate(&r); err == ErrFull {
					frames++
					bytes += bld.Len()
					_ = bld.Reset(buf, benchMTU, testHeader)
					if err := bld.AddUpdate(&r); err != nil {
						b.Fatal(err)
					}
				} else if err != nil {
					b.Fatal(err)
				}
			}
			elem := RecordLen(&r) + 2
			b.ReportMetric(float64(elem), "B/record")
			b.ReportMetric(float64(elem)/pfsyncStateLen*100, "%pfsync")
			if frames > 0 {
				b.ReportMetric(float64(bytes)/float64(frames), "B/frame")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func BenchmarkEncodeCompressed(b *testing.B) {
	for _, tc := range []struct {
		name   string
		r      record.Record
		fields record.Fields
	}{
		// pfsync's UPD_C carries both peers, expire and timeout.
		{"ipv4-tcp", benchRecords()[0].r, record.FieldOrig | record.FieldReply | record.FieldLifetime},
		{"ipv6-tcp", benchRecords()[2].r, record.FieldOrig | record.FieldReply | record.FieldLifetime},
		{"ipv4-tcp+counters", benchRecords()[0].r, record.FieldOrig | record.FieldReply | record.FieldLifetime | record.FieldCounters},
		{"one-direction", benchRecords()[0].r, record.FieldOrig},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := tc.r
			buf := make([]byte, 0, benchMTU)
			var bld Builder
			if err := bld.Reset(buf, benchMTU, testHeader); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Version++
				r.Peers[0].SeqLo += 1448
				d := r.Delta(tc.fields)
				if err := bld.AddDelta(&d); err == ErrFull {
					_ = bld.Reset(buf, benchMTU, testHeader)
					if err := bld.AddDelta(&d); err != nil {
						b.Fatal(err)
					}
				} else if err != nil {
					b.Fatal(err)
				}
			}
			d := r.Delta(tc.fields)
			elem := DeltaLen(&d) + 2
			b.ReportMetric(float64(elem), "B/record")
			b.ReportMetric(float64(elem)/pfsyncUpdCLen*100, "%pfsync")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkDecodeFrame decodes MTU-sized frames of full records and of
// compressed updates with a Reader.
func BenchmarkDecodeFrame(b *testing.B) {
	r := benchRecords()[0].r
	for _, kind := range []Kind{KindUpdate, KindUpdateC} {
		b.Run(kind.String(), func(b *testing.B) {
			var bld Builder
			if err := bld.Reset(make([]byte, 0, benchMTU), benchMTU, testHeader); err != nil {
				b.Fatal(err)
			}
			for {
				var err error
				if kind == KindUpdate {
					err = bld.AddUpdate(&r)
				} else {
					d := r.Delta(record.FieldOrig | record.FieldReply | record.FieldLifetime)
					err = bld.AddDelta(&d)
				}
				if err == ErrFull {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				r.ID.Num++
			}
			frame := bld.Bytes()
			per := bld.Elements()
			var (
				rd  Reader
				rec record.Record
				d   record.Delta
			)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if err := rd.Reset(frame); err != nil {
					b.Fatal(err)
				}
				n := 0
				for rd.Next() {
					var err error
					if kind == KindUpdate {
						err = rd.Record(&rec)
					} else {
						err = rd.Delta(&d)
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != per {
					b.Fatalf("decoded %d of %d", n, per)
				}
			}
			b.ReportMetric(float64(per), "records/frame")
			b.ReportMetric(float64(b.N)*float64(per)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

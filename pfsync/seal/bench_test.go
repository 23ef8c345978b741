package seal

import (
	"encoding/binary"
	"testing"
)

const benchFrame = 1400 // a frame that fills an Ethernet sync link

func benchSealer(b *testing.B, node uint32) *Sealer {
	s, err := New(Config{Node: 1, Boot: 1, Keys: oneKey(1, 1), SendKeyID: 1})
	if node != 1 {
		s, err = New(Config{Node: 2, Boot: 1, Keys: oneKey(1, 1), SendKeyID: 1})
	}
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkSeal seals 1400-byte frames into a buffer with room: no allocation.
func BenchmarkSeal(b *testing.B) {
	s := benchSealer(b, 1)
	plain := make([]byte, benchFrame)
	dst := make([]byte, 0, benchFrame+s.Overhead())
	b.SetBytes(benchFrame)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(dst[:0], plain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen opens 1400-byte frames in sequence, as a receiver does.
func BenchmarkOpen(b *testing.B) {
	snd, rcv := benchSealer(b, 1), benchSealer(b, 2)
	plain := make([]byte, benchFrame)
	const batch = 4096
	frames := make([][]byte, batch)
	dst := make([]byte, 0, benchFrame)
	b.SetBytes(benchFrame)
	b.ReportAllocs()
	i := batch
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			for j := range frames {
				frames[j], _ = snd.Seal(frames[j][:0], plain)
			}
			i = 0
			b.StartTimer()
		}
		if _, _, err := rcv.Open(dst[:0], frames[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkOpenForged measures what a frame with a bad tag costs a receiver.
func BenchmarkOpenForged(b *testing.B) {
	snd, rcv := benchSealer(b, 1), benchSealer(b, 2)
	f, _ := snd.Seal(nil, make([]byte, benchFrame))
	if _, _, err := rcv.Open(nil, f); err != nil {
		b.Fatal(err)
	}
	f[len(f)-1] ^= 1
	b.SetBytes(benchFrame)
	for b.Loop() {
		if _, _, err := rcv.Open(nil, f); err == nil {
			b.Fatal("forged frame opened")
		}
	}
}

// BenchmarkClearCopy is the baseline "sending in the clear": copying the
// frame into the send buffer.
func BenchmarkClearCopy(b *testing.B) {
	plain := make([]byte, benchFrame)
	dst := make([]byte, 0, benchFrame)
	b.SetBytes(benchFrame)
	b.ReportAllocs()
	for b.Loop() {
		dst = append(dst[:0], plain...)
	}
}

// BenchmarkOpenForgedNewEpoch measures what a forged frame claiming a new
// run of a known sender costs a receiver whose budget admits it: one traffic
// key derivation and a failed tag check.
func BenchmarkOpenForgedNewEpoch(b *testing.B) {
	snd := benchSealer(b, 1)
	rcv, err := New(Config{Node: 2, Boot: 1, Keys: oneKey(1, 1), SendKeyID: 1, NewEpochRate: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	f, _ := snd.Seal(nil, make([]byte, 64))
	if _, _, err := rcv.Open(nil, f); err != nil {
		b.Fatal(err)
	}
	f[offBoot] = 0x80 // newer than the sender's boot
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		binary.BigEndian.PutUint64(f[offEpoch:], n)
		if _, _, err := rcv.Open(nil, f); err == nil {
			b.Fatal("forged frame opened")
		}
	}
}

// BenchmarkOpenForgedNewEpochFlood measures what each frame of a flood of
// forged new runs of a known sender costs a receiver with the default
// budget: beyond the budget, the refusal before any derivation.
func BenchmarkOpenForgedNewEpochFlood(b *testing.B) {
	snd, rcv := benchSealer(b, 1), benchSealer(b, 2)
	f, _ := snd.Seal(nil, make([]byte, 64))
	if _, _, err := rcv.Open(nil, f); err != nil {
		b.Fatal(err)
	}
	f[offBoot] = 0x80 // newer than the sender's boot
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		binary.BigEndian.PutUint64(f[offEpoch:], n)
		if _, _, err := rcv.Open(nil, f); err == nil {
			b.Fatal("forged frame opened")
		}
	}
}

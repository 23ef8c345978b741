package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gocarp/gocarp/pfsync"
)

// testKey returns a deterministic key that passes checkKey.
func testKey(seed byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed*31 + byte(i)*97 + 0x80
	}
	return k
}

func newSealer(t testing.TB, node pfsync.NodeID, boot uint32, keys []Key, send uint8) *Sealer {
	t.Helper()
	s, err := New(Config{Node: node, Boot: boot, Keys: keys, SendKeyID: send})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func oneKey(id uint8, seed byte) []Key { return []Key{{ID: id, Secret: testKey(seed)}} }

func seal(t testing.TB, s *Sealer, plaintext string) []byte {
	t.Helper()
	f, err := s.Seal(nil, []byte(plaintext))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return f
}

func mustOpen(t testing.TB, r *Sealer, frame []byte, wantFrom pfsync.NodeID, want string) {
	t.Helper()
	from, got, err := r.Open(nil, frame)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if from != wantFrom || string(got) != want {
		t.Fatalf("Open = (%d, %q), want (%d, %q)", from, got, wantFrom, want)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 40, 1400 - HeaderLen - TagLen, 9000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a := newSealer(t, 1, 7, oneKey(1, 1), 1)
			b := newSealer(t, 2, 3, oneKey(1, 1), 1)
			plain := bytes.Repeat([]byte{0xa5}, n)
			f, err := a.Seal([]byte("prefix"), plain)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(f), len("prefix")+n+a.Overhead(); got != want {
				t.Fatalf("sealed length %d, want %d", got, want)
			}
			// A run of 16 bytes or more cannot turn up in the random-looking
			// envelope by chance; one byte does in one frame out of six.
			if n >= 16 && bytes.Contains(f, plain) {
				t.Fatal("plaintext visible in the sealed frame")
			}
			from, got, err := b.Open([]byte("x"), f[len("prefix"):])
			if err != nil {
				t.Fatal(err)
			}
			if from != 1 {
				t.Errorf("from = %d, want 1", from)
			}
			if diff := cmp.Diff(append([]byte("x"), plain...), got); diff != "" {
				t.Errorf("plaintext (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(Stats{Opened: 1}, b.Stats(), ignoreDerived); diff != "" {
				t.Errorf("receiver stats (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(Stats{Sealed: 1}, a.Stats()); diff != "" {
				t.Errorf("sender stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	a := newSealer(t, 0x01020304, 0x0a0b0c0d, []Key{{ID: 9, Secret: testKey(1)}}, 9)
	seal(t, a, "first")
	f := seal(t, a, "second")
	want := slicesConcat(
		[]byte{'G', 'C'}, // magic
		[]byte{1},        // version
		[]byte{9},        // key id
		[]byte{0},        // flags
		[]byte{1, 2, 3, 4},
		be64(a.Epoch()),
		[]byte{0x0a, 0x0b, 0x0c, 0x0d}, // boot
		be64(2),                        // sequence
	)
	if diff := cmp.Diff(want, f[:HeaderLen]); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
	if got, want := len(f), HeaderLen+len("second")+TagLen; got != want {
		t.Errorf("length %d, want %d", got, want)
	}
}

func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestOpenRejects feeds frames that must be refused and checks the sentinel,
// the counter, and that the rejection changed nothing: the next genuine frame
// is still accepted.
func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name string
		// frames returns the frames to open in order; all but the last must
		// succeed, the last must fail.
		frames    func(t *testing.T, snd *Sealer) [][]byte
		receiver  func(t *testing.T) *Sealer // nil: node 2 with key 1
		want      error
		wantStats Stats
	}{
		{
			name: "truncated to the envelope",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				return [][]byte{seal(t, snd, "hello")[:HeaderLen+TagLen-1]}
			},
			want:      pfsync.ErrTruncated,
			wantStats: Stats{Truncated: 1},
		},
		{
			name: "truncated by one byte",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				return [][]byte{f[:len(f)-1]}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name:      "empty",
			frames:    func(t *testing.T, snd *Sealer) [][]byte { return [][]byte{{}} },
			want:      pfsync.ErrTruncated,
			wantStats: Stats{Truncated: 1},
		},
		{
			name: "ciphertext byte flipped",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				f[HeaderLen+1] ^= 0x40
				return [][]byte{f}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "tag byte flipped",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				f[len(f)-1] ^= 1
				return [][]byte{f}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "sender id changed",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				f[offSender+3] = 3
				return [][]byte{f}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "sequence changed",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				f[offSeq+7] = 9
				return [][]byte{f}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "flags set",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				f[offFlags] = 1
				return [][]byte{f}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "bad magic",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				f[0] = 'X'
				return [][]byte{f}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "replayed",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f := seal(t, snd, "hello")
				return [][]byte{f, f}
			},
			want:      pfsync.ErrReplay,
			wantStats: Stats{Opened: 1, Replay: 1},
		},
		{
			name: "replayed out of order",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				f1, f2, f3 := seal(t, snd, "1"), seal(t, snd, "2"), seal(t, snd, "3")
				return [][]byte{f3, f1, f2, f1}
			},
			want:      pfsync.ErrReplay,
			wantStats: Stats{Opened: 3, Replay: 1},
		},
		{
			name: "older than the window",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				old := seal(t, snd, "old")
				for range windowSize - 1 {
					seal(t, snd, "skipped")
				}
				return [][]byte{seal(t, snd, "new"), old}
			},
			want:      pfsync.ErrReplay,
			wantStats: Stats{Opened: 1, Replay: 1},
		},
		{
			name: "recorded from an older boot",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				old := newSealer(t, 1, 4, oneKey(1, 1), 1) // the same node's previous run
				rec := seal(t, old, "recorded")
				return [][]byte{seal(t, snd, "live"), rec}
			},
			want:      pfsync.ErrStaleEpoch,
			wantStats: Stats{Opened: 1, StaleEpoch: 1},
		},
		{
			name: "old epoch after a new one",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				old := newSealer(t, 1, 4, oneKey(1, 1), 1)
				f1 := seal(t, old, "old run")
				f2 := seal(t, old, "old run, later")
				return [][]byte{f1, seal(t, snd, "new run"), f2}
			},
			want:      pfsync.ErrStaleEpoch,
			wantStats: Stats{Opened: 2, StaleEpoch: 1},
		},
		{
			name: "same boot, other epoch",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				twin := newSealer(t, 1, 5, oneKey(1, 1), 1) // same id and boot: misconfiguration or a restart without BootCounter
				return [][]byte{seal(t, snd, "first"), seal(t, twin, "twin")}
			},
			want:      pfsync.ErrStaleEpoch,
			wantStats: Stats{Opened: 1, StaleEpoch: 1},
		},
		{
			name: "wrong key",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				other := newSealer(t, 1, 9, oneKey(1, 2), 1) // same id, other PSK
				return [][]byte{seal(t, other, "forged")}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{BadAuth: 1},
		},
		{
			name: "unknown key id",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				other := newSealer(t, 1, 9, oneKey(7, 1), 7)
				return [][]byte{seal(t, other, "hello")}
			},
			want:      pfsync.ErrUnknownKey,
			wantStats: Stats{UnknownKey: 1},
		},
		{
			name: "own frame reflected",
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				self := newSealer(t, 2, 1, oneKey(1, 1), 1)
				return [][]byte{seal(t, self, "echo")}
			},
			want:      pfsync.ErrReplay,
			wantStats: Stats{Replay: 1},
		},
		{
			name: "too many senders",
			receiver: func(t *testing.T) *Sealer {
				r, err := New(Config{Node: 2, Boot: 1, Keys: oneKey(1, 1), SendKeyID: 1, MaxSenders: 1})
				if err != nil {
					t.Fatal(err)
				}
				return r
			},
			frames: func(t *testing.T, snd *Sealer) [][]byte {
				third := newSealer(t, 3, 1, oneKey(1, 1), 1)
				return [][]byte{seal(t, snd, "one"), seal(t, third, "two")}
			},
			want:      pfsync.ErrBadAuth,
			wantStats: Stats{Opened: 1, BadAuth: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snd := newSealer(t, 1, 5, oneKey(1, 1), 1)
			var rcv *Sealer
			if tt.receiver != nil {
				rcv = tt.receiver(t)
			} else {
				rcv = newSealer(t, 2, 1, oneKey(1, 1), 1)
			}
			frames := tt.frames(t, snd)
			for i, f := range frames[:len(frames)-1] {
				if _, _, err := rcv.Open(nil, f); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			dst := make([]byte, 0, 64)
			from, got, err := rcv.Open(dst, frames[len(frames)-1])
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if from != 0 || got != nil {
				t.Errorf("rejected Open returned (%d, %q)", from, got)
			}
			if !strings.HasPrefix(err.Error(), "seal: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if diff := cmp.Diff(tt.wantStats, rcv.Stats(), ignoreDerived); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			// Nothing changed: the sender's next frame is accepted.
			mustOpen(t, rcv, seal(t, snd, "after"), 1, "after")
		})
	}
}

// TestStaleEpochCountedOnce: a frame of a superseded run is rejected with
// ErrStaleEpoch and counted once, whether Open finds the newer run before
// decrypting the frame or only after, because a concurrent Open
// authenticated it in between.
func TestStaleEpochCountedOnce(t *testing.T) {
	tests := []struct {
		name string
		boot uint32 // of the stale run; the live run has boot 5
		// concurrent: the live run is authenticated while the stale frame
		// is being decrypted, instead of before it arrives.
		concurrent bool
	}{
		{"other epoch, known before", 5, false},
		{"other epoch, authenticated meanwhile", 5, true},
		{"older boot, known before", 4, false},
		{"older boot, authenticated meanwhile", 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := newSealer(t, 1, 5, oneKey(1, 1), 1)
			stale := newSealer(t, 1, tt.boot, oneKey(1, 1), 1) // same node, another run
			if stale.Epoch() == live.Epoch() {
				t.Fatal("two runs drew the same epoch")
			}
			rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
			liveFrame, staleFrame := seal(t, live, "live"), seal(t, stale, "stale")
			var hooked int
			if tt.concurrent {
				rcv.afterDecrypt = func() {
					hooked++
					if hooked == 1 {
						mustOpen(t, rcv, liveFrame, 1, "live")
					}
				}
			} else {
				mustOpen(t, rcv, liveFrame, 1, "live")
			}
			before := rcv.Stats()
			from, got, err := rcv.Open(nil, staleFrame)
			if !errors.Is(err, pfsync.ErrStaleEpoch) {
				t.Fatalf("Open(stale run) = %v, want ErrStaleEpoch", err)
			}
			if from != 0 || got != nil {
				t.Errorf("rejected Open returned (%d, %q)", from, got)
			}
			if tt.concurrent && hooked != 2 {
				t.Errorf("the stale frame was not decrypted before its run was found superseded (hook ran %d times)", hooked)
			}
			if diff := cmp.Diff(Stats{Opened: 1, StaleEpoch: 1}, rcv.Stats(), ignoreDerived); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if !tt.concurrent && rcv.Stats().Derived != before.Derived {
				t.Errorf("a frame of a known superseded run derived a key (%d, then %d)", before.Derived, rcv.Stats().Derived)
			}
			// The live run goes on.
			rcv.afterDecrypt = nil
			mustOpen(t, rcv, seal(t, live, "after"), 1, "after")
		})
	}
}

// TestNewBootReplacesWindow: a sender that restarts (new boot, sequence back
// at 1) is accepted, and its old run is refused from then on.
func TestNewBootReplacesWindow(t *testing.T) {
	rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
	run1 := newSealer(t, 1, 1, oneKey(1, 1), 1)
	for i := range 5 {
		mustOpen(t, rcv, seal(t, run1, fmt.Sprint(i)), 1, fmt.Sprint(i))
	}
	late := seal(t, run1, "late")
	run2 := newSealer(t, 1, 2, oneKey(1, 1), 1)
	mustOpen(t, rcv, seal(t, run2, "hello"), 1, "hello")
	if _, _, err := rcv.Open(nil, late); !errors.Is(err, pfsync.ErrStaleEpoch) {
		t.Fatalf("frame of the superseded run: err = %v, want ErrStaleEpoch", err)
	}
}

// TestTrafficKeysDifferAcrossRestarts: two Sealers with the same node id, boot
// and key (a restart that lost its boot counter, or two nodes misconfigured
// with one id) seal under different traffic keys: the same plaintext at the
// same sequence number gives different ciphertexts, so the GCM nonce is never
// reused under one key.
func TestTrafficKeysDifferAcrossRestarts(t *testing.T) {
	a := newSealer(t, 1, 1, oneKey(1, 1), 1)
	b := newSealer(t, 1, 1, oneKey(1, 1), 1)
	if a.Epoch() == b.Epoch() {
		t.Fatalf("two starts drew the same epoch %016x", a.Epoch())
	}
	fa, fb := seal(t, a, "same plaintext"), seal(t, b, "same plaintext")
	if !bytes.Equal(fa[offNonce:HeaderLen], fb[offNonce:HeaderLen]) {
		t.Fatal("test premise: nonces should be equal")
	}
	if bytes.Equal(fa[HeaderLen:], fb[HeaderLen:]) {
		t.Fatal("same nonce and same ciphertext: traffic keys are equal")
	}
	ka, err := trafficAEAD(a.prks[1], 1, 1, 1, a.Epoch())
	if err != nil {
		t.Fatal(err)
	}
	// The receiving side derives the same key as the sender.
	if _, err := ka.Open(nil, fa[offNonce:HeaderLen], fa[HeaderLen:], fa[:HeaderLen]); err != nil {
		t.Fatalf("receiver-side key does not open the sender's frame: %v", err)
	}
	if _, err := ka.Open(nil, fb[offNonce:HeaderLen], fb[HeaderLen:], fb[:HeaderLen]); err == nil {
		t.Fatal("the key of one run opens a frame of the other run")
	}
}

func TestSequenceStrictlyIncreasing(t *testing.T) {
	a := newSealer(t, 1, 1, oneKey(1, 1), 1)
	const n = 200
	seqs := make(chan uint64, 4*n)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n {
				f, err := a.Seal(nil, []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- binary.BigEndian.Uint64(f[offSeq:])
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := make(map[uint64]bool)
	for s := range seqs {
		if s == 0 || s > 4*n || seen[s] {
			t.Fatalf("sequence %d repeated or out of range", s)
		}
		seen[s] = true
	}
}

func TestRotationOverlap(t *testing.T) {
	oldK, newK := Key{ID: 1, Secret: testKey(1)}, Key{ID: 2, Secret: testKey(2)}
	a := newSealer(t, 1, 1, []Key{oldK}, 1)
	b := newSealer(t, 2, 1, []Key{oldK}, 1)

	// Step 1: both nodes accept both keys, still sending with the old one.
	for _, s := range []*Sealer{a, b} {
		if err := s.Rotate([]Key{oldK, newK}, 1); err != nil {
			t.Fatal(err)
		}
	}
	old1, old2, old3 := seal(t, a, "old 1"), seal(t, a, "old 2"), seal(t, a, "old 3")
	mustOpen(t, b, old1, 1, "old 1")

	// Step 2: a sends with the new key; b accepts both during the overlap,
	// including old-key frames still in flight.
	if err := a.Rotate([]Key{oldK, newK}, 2); err != nil {
		t.Fatal(err)
	}
	fNew := seal(t, a, "new")
	if fNew[offKeyID] != 2 {
		t.Fatalf("sealed with key id %d, want 2", fNew[offKeyID])
	}
	mustOpen(t, b, fNew, 1, "new")
	mustOpen(t, b, old2, 1, "old 2")

	// Step 3: the old key is removed; frames under it are refused.
	if err := b.Rotate([]Key{newK}, 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(nil, old3); !errors.Is(err, pfsync.ErrUnknownKey) {
		t.Fatalf("old key after removal: err = %v, want ErrUnknownKey", err)
	}
	mustOpen(t, b, seal(t, a, "still fine"), 1, "still fine")
	if diff := cmp.Diff(Stats{Opened: 4, UnknownKey: 1}, b.Stats(), ignoreDerived); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestRotateSameIDNewSecret: replacing the secret behind a key id drops the
// cached traffic keys, so frames under the old secret no longer open.
// TestRotateErrors: Rotate's errors name its arguments, not Config's
// fields, and a refused rotation keeps the keys in use.
func TestRotateErrors(t *testing.T) {
	a := newSealer(t, 1, 1, oneKey(1, 1), 1)
	b := newSealer(t, 2, 1, oneKey(1, 1), 1)
	for _, tt := range []struct {
		keys []Key
		send uint8
		want string
	}{
		{nil, 1, "seal: Rotate keys empty; want at least one key"},
		{oneKey(1, 1), 2, "seal: Rotate sendKeyID 2 not among the key ids [1]"},
		{[]Key{{ID: 3, Secret: make([]byte, 32)}}, 3, "seal: Rotate keys[0] (id 3): weak key: only 1 distinct byte values; use a random key (seal.GenerateKey)"},
	} {
		if err := b.Rotate(tt.keys, tt.send); err == nil || err.Error() != tt.want {
			t.Errorf("Rotate = %v, want %q", err, tt.want)
		}
	}
	mustOpen(t, b, seal(t, a, "still"), 1, "still")
}

func TestRotateSameIDNewSecret(t *testing.T) {
	a := newSealer(t, 1, 1, oneKey(1, 1), 1)
	b := newSealer(t, 2, 1, oneKey(1, 1), 1)
	mustOpen(t, b, seal(t, a, "one"), 1, "one")
	pending := seal(t, a, "two")
	if err := b.Rotate(oneKey(1, 2), 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(nil, pending); !errors.Is(err, pfsync.ErrBadAuth) {
		t.Fatalf("frame under the replaced secret: err = %v, want ErrBadAuth", err)
	}
}

func TestConfigErrors(t *testing.T) {
	good := oneKey(1, 1)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"node zero", Config{Boot: 1, Keys: good, SendKeyID: 1}, "seal: Config.Node 0 out of range 1-4294967295"},
		{"boot zero", Config{Node: 1, Keys: good, SendKeyID: 1}, "seal: Config.Boot 0 out of range 1-4294967295 (read it with seal.BootCounter)"},
		{"no keys", Config{Node: 1, Boot: 1}, "seal: Config.Keys empty; want at least one key"},
		{"send key missing", Config{Node: 1, Boot: 1, Keys: good, SendKeyID: 2}, "seal: Config.SendKeyID 2 not among the key ids [1]"},
		{"duplicate id", Config{Node: 1, Boot: 1, Keys: append(oneKey(1, 1), oneKey(1, 2)...), SendKeyID: 1}, "seal: Config.Keys[1]: duplicate key id 1"},
		{"short key", Config{Node: 1, Boot: 1, Keys: []Key{{ID: 1, Secret: testKey(1)[:16]}}, SendKeyID: 1}, "seal: Config.Keys[0] (id 1): key has 16 bytes, want 32"},
		{"zero key", Config{Node: 1, Boot: 1, Keys: []Key{{ID: 1, Secret: make([]byte, 32)}}, SendKeyID: 1},
			"seal: Config.Keys[0] (id 1): weak key: only 1 distinct byte values; use a random key (seal.GenerateKey)"},
		{"passphrase", Config{Node: 1, Boot: 1, Keys: []Key{{ID: 1, Secret: []byte("correct horse battery staple 123")}}, SendKeyID: 1},
			"seal: Config.Keys[0] (id 1): weak key: only printable characters, like a passphrase; use a random key (seal.GenerateKey)"},
		{"max senders", Config{Node: 1, Boot: 1, Keys: good, SendKeyID: 1, MaxSenders: -1}, "seal: Config.MaxSenders -1 out of range 1-65536"},
		{"epoch rate", Config{Node: 1, Boot: 1, Keys: good, SendKeyID: 1, NewEpochRate: -5}, "seal: Config.NewEpochRate -5 out of range 1-1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestForgedEpochFlood: frames claiming new untagged epochs of a real
// sender cost one key derivation each only within that sender's
// NewEpochRate; beyond it they are refused before any derivation and
// counted. A flood naming another sender does not spend this sender's
// budget, and the budget refills.
func TestForgedEpochFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rcv, err := New(Config{Node: 2, Boot: 1, Keys: oneKey(1, 1), SendKeyID: 1, NewEpochRate: 4})
		if err != nil {
			t.Fatal(err)
		}
		snd := newSealer(t, 1, 5, oneKey(1, 1), 1)
		mustOpen(t, rcv, seal(t, snd, "hello"), 1, "hello")
		genuine := seal(t, snd, "genuine")

		// Untracked senders share one budget, apart from sender 1's.
		other := seal(t, newSealer(t, 3, 1, oneKey(1, 1), 1), "x")
		orig := other[offEpoch+7]
		for i := range 10 {
			other[offEpoch+7] = orig ^ byte(i+1) // another epoch, untagged
			if _, _, err := rcv.Open(nil, other); !errors.Is(err, pfsync.ErrBadAuth) {
				t.Fatalf("forged frame %d of node 3: err = %v, want ErrBadAuth", i, err)
			}
		}
		forged := seal(t, snd, "x")
		orig = forged[offEpoch+7]
		for i := range 10 {
			forged[offBoot+3] = byte(6 + i)       // a newer boot: needs a derivation
			forged[offEpoch+7] = orig ^ byte(i+1) // and the tag no longer fits
			if _, _, err := rcv.Open(nil, forged); !errors.Is(err, pfsync.ErrBadAuth) {
				t.Fatalf("forged frame %d: err = %v, want ErrBadAuth", i, err)
			}
		}
		// Burst 4 each for node 3 and node 1, one derivation for the hello.
		want := Stats{Opened: 1, BadAuth: 20, Throttled: 12, Derived: 9}
		if diff := cmp.Diff(want, rcv.Stats()); diff != "" {
			t.Errorf("stats after the flood (-want +got):\n%s", diff)
		}
		// The current run needs no derivation and is unaffected.
		mustOpen(t, rcv, genuine, 1, "genuine")

		time.Sleep(time.Second) // the budget refills
		forged[offEpoch+7] = orig ^ 0xee
		if _, _, err := rcv.Open(nil, forged); !errors.Is(err, pfsync.ErrBadAuth) {
			t.Fatalf("forged frame after refill: err = %v, want ErrBadAuth", err)
		}
		if got := rcv.Stats(); got.Derived != 10 || got.Throttled != 12 {
			t.Errorf("after refill: Derived %d Throttled %d, want 10 and 12", got.Derived, got.Throttled)
		}
	})
}

// TestForgedFloodDoesNotStarveRestart: 10,000 forged frames per second name
// a real sender with ever newer boots, while that sender restarts. Every
// frame of its genuine new run is opened, from the first, the flood is
// refused and counted, and the work it causes stays within the budget.
func TestForgedFloodDoesNotStarveRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
		mustOpen(t, rcv, seal(t, newSealer(t, 1, 5, oneKey(1, 1), 1), "old run"), 1, "old run")
		restarted := newSealer(t, 1, 6, oneKey(1, 1), 1)
		forged := seal(t, restarted, "forged")
		const (
			seconds = 3
			perSec  = 10000
			every   = 1000 // one genuine frame among this many forged ones
		)
		opened := 0
		for sec := range seconds {
			for i := range perSec {
				n := uint64(sec*perSec + i)
				binary.BigEndian.PutUint32(forged[offBoot:], 7+uint32(n)) // newer than the restart's
				binary.BigEndian.PutUint64(forged[offEpoch:], n*0x9e3779b97f4a7c15)
				if _, _, err := rcv.Open(nil, forged); !errors.Is(err, pfsync.ErrBadAuth) {
					t.Fatalf("forged frame %d: err = %v, want ErrBadAuth", n, err)
				}
				if i%every == every-1 {
					msg := fmt.Sprint("genuine ", n)
					mustOpen(t, rcv, seal(t, restarted, msg), 1, msg)
					opened++
				}
			}
			time.Sleep(time.Second)
		}
		got := rcv.Stats()
		if want := uint64(seconds * perSec); got.BadAuth != want {
			t.Errorf("BadAuth = %d, want %d (every forged frame refused and counted)", got.BadAuth, want)
		}
		if got.Opened != uint64(opened+1) {
			t.Errorf("Opened = %d, want %d", got.Opened, opened+1)
		}
		// Burst plus refills, and one derivation for each genuine run.
		if limit := uint64(DefaultNewEpochRate*(seconds+1) + 2); got.Derived > limit {
			t.Errorf("Derived = %d, want at most %d", got.Derived, limit)
		}
		if got.Throttled+got.Derived-2 != got.BadAuth {
			t.Errorf("Throttled %d + Derived %d - 2 genuine != BadAuth %d", got.Throttled, got.Derived, got.BadAuth)
		}
	})
}

// TestForgedFramesOfTaggedRun: frames forged under the run id of a genuine
// run (copied from the wire) cost one derivation in all, not one each, and
// the genuine frames of that run still open.
func TestForgedFramesOfTaggedRun(t *testing.T) {
	rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
	mustOpen(t, rcv, seal(t, newSealer(t, 1, 5, oneKey(1, 1), 1), "old run"), 1, "old run")
	restarted := newSealer(t, 1, 6, oneKey(1, 1), 1)
	for i := range 1000 {
		f := seal(t, restarted, "x")
		f[len(f)-1] ^= 1
		if _, _, err := rcv.Open(nil, f); !errors.Is(err, pfsync.ErrBadAuth) {
			t.Fatalf("forged frame %d: err = %v, want ErrBadAuth", i, err)
		}
	}
	mustOpen(t, rcv, seal(t, restarted, "genuine"), 1, "genuine")
	if diff := cmp.Diff(Stats{Opened: 2, BadAuth: 1000, Derived: 2}, rcv.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestEpochTagged: a Sealer's epoch carries a tag under its send key, so a
// receiver holding that key vouches for it and one holding another does
// not; changing any bit of sender, boot or epoch breaks it.
func TestEpochTagged(t *testing.T) {
	a := newSealer(t, 7, 9, oneKey(1, 1), 1)
	rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
	other := newSealer(t, 2, 1, oneKey(1, 2), 1)
	if !rcv.vouched(7, 9, a.Epoch()) {
		t.Fatal("the epoch of a Sealer under the same key is not vouched for")
	}
	if other.vouched(7, 9, a.Epoch()) {
		t.Error("vouched for under another key")
	}
	for _, tt := range []struct {
		sender pfsync.NodeID
		boot   uint32
		epoch  uint64
	}{
		{8, 9, a.Epoch()},
		{7, 10, a.Epoch()},
		{7, 9, a.Epoch() ^ 1},
		{7, 9, a.Epoch() ^ 1<<63},
	} {
		if rcv.vouched(tt.sender, tt.boot, tt.epoch) {
			t.Errorf("vouched(%d, %d, %016x) for the tag of (7, 9, %016x)", tt.sender, tt.boot, tt.epoch, a.Epoch())
		}
	}
}

// TestRejectLogRateLimited: a flood of rejected frames logs one line per
// second per kind, carrying how many frames it stands for.
func TestRejectLogRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey || a.Key == "last" {
					return slog.Attr{}
				}
				return a
			},
		}))
		rcv, err := New(Config{Node: 2, Boot: 1, Keys: oneKey(1, 1), SendKeyID: 1, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			rcv.Open(nil, []byte("short"))
		}
		rcv.Open(nil, make([]byte, 100)) // bad magic: another kind
		time.Sleep(time.Second)
		for range 3 {
			rcv.Open(nil, []byte("short"))
		}
		want := strings.Join([]string{
			`level=WARN msg="seal: rejected frames" kind=truncated count=1 peer=0`,
			`level=WARN msg="seal: rejected frames" kind=bad_auth count=1 peer=0`,
			`level=WARN msg="seal: rejected frames" kind=truncated count=100 peer=0`,
			``,
		}, "\n")
		if diff := cmp.Diff(want, buf.String()); diff != "" {
			t.Errorf("log (-want +got):\n%s", diff)
		}
		if got := rcv.Stats().Truncated; got != 103 {
			t.Errorf("Truncated = %d, want 103", got)
		}
	})
}

func TestWindow(t *testing.T) {
	var w window
	steps := []struct {
		seq  uint64
		want bool
	}{
		{0, false},
		{1, true},
		{1, false},
		{3, true},
		{2, true},
		{2, false},
		{1000, true},
		{1025, true},
		{1, false},    // 1024 behind
		{2, false},    // 1023 behind: inside, seen
		{4, true},     // never seen
		{3, false},    // seen
		{5000, true},  // jump clears the ring
		{3977, true},  // 1023 behind
		{3976, false}, // 1024 behind
		{4500, true},
		{4500, false},
	}
	for i, s := range steps {
		if got := w.mark(s.seq); got != s.want {
			t.Fatalf("step %d: mark(%d) = %v, want %v", i, s.seq, got, s.want)
		}
	}
}

// TestWindowAgainstMap compares the window with a plain set for a long
// pseudo-random walk.
func TestWindowAgainstMap(t *testing.T) {
	var w window
	seen := make(map[uint64]bool)
	var last, x uint64 = 0, 1
	for range 20000 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		var seq uint64
		if x%3 == 0 {
			seq = last + x%200
		} else {
			seq = last - min(last, x%1100)
		}
		want := seq != 0 && !seen[seq] && (seq > last || last-seq < windowSize)
		if got := w.mark(seq); got != want {
			t.Fatalf("mark(%d) with newest %d = %v, want %v", seq, last, got, want)
		}
		if want {
			seen[seq] = true
			last = max(last, seq)
		}
	}
}

// TestOpenConcurrent opens every frame twice from several goroutines: each
// is accepted exactly once, whatever the interleaving.
func TestOpenConcurrent(t *testing.T) {
	snd := newSealer(t, 1, 1, oneKey(1, 1), 1)
	rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
	const n = 400
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = seal(t, snd, fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := make(map[string]int)
	for g := range 4 {
		wg.Go(func() {
			for i := range n {
				f := frames[(i+g*n/4)%n]
				_, p, err := rcv.Open(nil, f)
				if err != nil {
					if !errors.Is(err, pfsync.ErrReplay) {
						t.Error(err)
					}
					continue
				}
				mu.Lock()
				accepted[string(p)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if c := accepted[fmt.Sprint(i)]; c != 1 {
			t.Errorf("frame %d accepted %d times", i, c)
		}
	}
	if diff := cmp.Diff(Stats{Opened: n, Replay: 3 * n}, rcv.Stats(), ignoreDerived); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// ignoreDerived leaves out of a comparison how many traffic keys were
// derived, which tests about other counters do not pin down.
var ignoreDerived = cmpopts.IgnoreFields(Stats{}, "Derived")

// TestBootFileLostOrRolledBack: a node whose boot counter file was deleted,
// then restored to an old value, is heard again by a peer that never
// restarted, while recordings of its earlier runs stay refused.
func TestBootFileLostOrRolledBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "boot")
		rcv := newSealer(t, 2, 1, oneKey(1, 1), 1)
		start := func() *Sealer {
			t.Helper()
			boot, err := BootCounter(path)
			if err != nil {
				t.Fatal(err)
			}
			return newSealer(t, 1, boot, oneKey(1, 1), 1)
		}
		var recorded [][]byte
		run := func(name string) {
			t.Helper()
			n := start()
			mustOpen(t, rcv, seal(t, n, name), 1, name)
			recorded = append(recorded, seal(t, n, name+" recorded"))
			time.Sleep(time.Minute)
		}
		run("first")
		firstFile, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		run("second")
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		run("after the file was lost")
		if err := os.WriteFile(path, firstFile, 0o600); err != nil {
			t.Fatal(err)
		}
		run("after the file was rolled back")
		for i, f := range recorded[:len(recorded)-1] {
			if _, _, err := rcv.Open(nil, f); !errors.Is(err, pfsync.ErrStaleEpoch) {
				t.Errorf("recording of run %d: err = %v, want ErrStaleEpoch", i, err)
			}
		}
	})
}

// TestEpochTagAfterRotation: a sender keeps its epoch across a rotation, so
// its tag stays the one made under its first send key: receivers vouch for
// it while they accept that key, and afterwards still open its new run
// through the budget for untagged runs.
func TestEpochTagAfterRotation(t *testing.T) {
	k1, k2 := Key{ID: 1, Secret: testKey(1)}, Key{ID: 2, Secret: testKey(2)}
	snd := newSealer(t, 1, 5, []Key{k1}, 1)
	if err := snd.Rotate([]Key{k1, k2}, 2); err != nil {
		t.Fatal(err)
	}
	both := newSealer(t, 2, 1, []Key{k1, k2}, 2)
	if !both.vouched(1, 5, snd.Epoch()) {
		t.Error("a receiver holding the first key does not vouch for the epoch")
	}
	onlyNew := newSealer(t, 3, 1, []Key{k2}, 2)
	if onlyNew.vouched(1, 5, snd.Epoch()) {
		t.Error("a receiver without the first key vouches for the epoch")
	}
	mustOpen(t, onlyNew, seal(t, snd, "via the budget"), 1, "via the budget")
	if got := onlyNew.Stats(); got.Derived != 1 || got.Throttled != 0 {
		t.Errorf("Derived %d Throttled %d, want 1 and 0", got.Derived, got.Throttled)
	}
}

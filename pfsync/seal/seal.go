package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarp/gocarp/internal/ratelog"
	"github.com/gocarp/gocarp/pfsync"
)

// Envelope layout; see the package documentation.
const (
	// HeaderLen is the length of the cleartext envelope before the
	// ciphertext.
	HeaderLen = 29
	// TagLen is the length of the GCM tag after the ciphertext.
	TagLen = 16

	magic0  = 'G'
	magic1  = 'C'
	version = 1

	offVersion = 2
	offKeyID   = 3
	offFlags   = 4
	offSender  = 5
	offEpoch   = 9
	offBoot    = 17
	offSeq     = 21
	offNonce   = offBoot // nonce = boot ‖ seq, the last 12 bytes of the envelope

	extractSalt = "gocarp pfsync seal v1"
	expandLabel = "gocarp traffic"
	vouchLabel  = "gocarp epoch"

	// runCache is how many derived traffic keys of runs not (or not yet)
	// authenticated are kept, so that frames repeating one run id cost
	// one derivation, not one each.
	runCache = 16
)

// Defaults for the zero values of Config.
const (
	DefaultMaxSenders   = 256
	DefaultNewEpochRate = 64
)

// Key is one pre-shared key and the id that names it on the wire.
type Key struct {
	ID     uint8
	Secret []byte // KeySize random bytes, e.g. from LoadKeyFile or GenerateKey
}

// Config configures a Sealer. Node, Boot and Keys are required.
type Config struct {
	// Node is this node's id, the sender id of every frame it seals.
	Node pfsync.NodeID
	// Boot is this node's boot counter, from BootCounter. It must grow at
	// every start: receivers refuse frames from a boot older than the newest
	// they have authenticated from this node.
	Boot uint32
	// Keys are the pre-shared keys frames are accepted under. During a
	// rotation it holds the old and the new key.
	Keys []Key
	// SendKeyID is the id, among Keys, of the key frames are sealed under.
	SendKeyID uint8
	// MaxSenders bounds how many senders the Sealer keeps replay state for;
	// frames from further senders are rejected. Zero means
	// DefaultMaxSenders.
	MaxSenders int
	// NewEpochRate bounds, per claimed sender, how many traffic keys per
	// second are derived for frames that open a (sender, boot, epoch) not
	// authenticated yet and whose epoch does not carry a valid tag (see
	// the package documentation): what a forged-epoch flood could
	// otherwise cost. Senders not authenticated yet share one such budget.
	// Frames over it are rejected with ErrBadAuth and counted in
	// Stats.Throttled. Runs with a tagged epoch, as every Sealer draws
	// them, are not limited by it, so a flood cannot delay a genuine
	// restart. Zero means DefaultNewEpochRate, with a burst of the same
	// size.
	NewEpochRate int
	// Logger receives rate-limited summaries of rejected frames (at most one
	// line per second per kind). Nil discards.
	Logger *slog.Logger
}

// Stats are the Sealer's counters, all monotonic.
type Stats struct {
	Sealed     uint64 // frames sealed
	Opened     uint64 // frames authenticated and accepted
	BadAuth    uint64 // rejected: not a sealed frame, bad tag, or too many senders (ErrBadAuth)
	Replay     uint64 // rejected: sequence already seen or too old, or our own frame reflected (ErrReplay)
	StaleEpoch uint64 // rejected: boot or epoch superseded (ErrStaleEpoch)
	UnknownKey uint64 // rejected: key id not configured (ErrUnknownKey)
	Truncated  uint64 // rejected: shorter than an envelope and tag (ErrTruncated)
	Throttled  uint64 // part of BadAuth: new-epoch key derivation over Config.NewEpochRate
	Derived    uint64 // traffic keys derived for runs not authenticated yet (bounded work per forged frame)
}

// Sealer seals frames sent by this node and opens frames from its peers.
// It implements pfsync.Sealer; Seal and Open may be called concurrently.
type Sealer struct {
	node  pfsync.NodeID
	boot  uint32
	epoch uint64
	log   *slog.Logger

	seq  atomic.Uint64
	send atomic.Pointer[sendKey]

	mu        sync.Mutex
	gen       uint64                 // bumped by Rotate; derived keys of older generations are not cached
	prks      map[uint8][]byte       // HKDF PRK per accepted key id; slices are never mutated
	vouchers  map[uint8]cipher.Block // epoch-tag key per accepted key id
	peers     map[pfsync.NodeID]*peer
	maxPeers  int
	rate      float64
	untracked bucket // derivation budget shared by senders not authenticated yet
	runs      [runCache]cachedRun
	nextRun   int
	blk       [16]byte // scratch for epoch tags

	// afterDecrypt, when set by a test, runs in Open between decrypting a
	// frame and recording its run, with s.mu not held.
	afterDecrypt func()

	stats counters
	// limiter: one line per second and kind of rejection, with the
	// number of frames it stands for.
	limiter ratelog.Limiter[kind]
}

type sendKey struct {
	id   uint8
	aead cipher.AEAD
}

// peer is the receive state of one sender: its newest authenticated run and
// the replay window of that run, and the sender's own budget for deriving
// the keys of runs with untagged epochs.
type peer struct {
	boot   uint32
	epoch  uint64
	aeads  map[uint8]cipher.AEAD // traffic keys of this run, per key id
	win    window
	derive bucket
}

// cachedRun is a traffic key derived for a run that was not authenticated
// when derived: a forged frame's, or a genuine frame's that may be followed
// by more of its run.
type cachedRun struct {
	keyID  uint8
	sender pfsync.NodeID
	boot   uint32
	epoch  uint64
	aead   cipher.AEAD // nil: empty slot
}

var _ pfsync.Sealer = (*Sealer)(nil)

// New returns a Sealer for cfg, with a fresh random epoch.
func New(cfg Config) (*Sealer, error) {
	if cfg.Node == 0 {
		return nil, fmt.Errorf("seal: Config.Node 0 out of range 1-%d", uint32(math.MaxUint32))
	}
	if cfg.Boot == 0 {
		return nil, fmt.Errorf("seal: Config.Boot 0 out of range 1-%d (read it with seal.BootCounter)", uint32(math.MaxUint32))
	}
	maxPeers := cfg.MaxSenders
	if maxPeers == 0 {
		maxPeers = DefaultMaxSenders
	}
	if maxPeers < 1 || maxPeers > 1<<16 {
		return nil, fmt.Errorf("seal: Config.MaxSenders %d out of range 1-%d", cfg.MaxSenders, 1<<16)
	}
	rate := cfg.NewEpochRate
	if rate == 0 {
		rate = DefaultNewEpochRate
	}
	if rate < 1 || rate > 1<<20 {
		return nil, fmt.Errorf("seal: Config.NewEpochRate %d out of range 1-%d", cfg.NewEpochRate, 1<<20)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sealer{
		node:      cfg.Node,
		boot:      cfg.Boot,
		log:       log,
		peers:     make(map[pfsync.NodeID]*peer),
		maxPeers:  maxPeers,
		rate:      float64(rate),
		untracked: newBucket(float64(rate)),
		limiter:   ratelog.Limiter[kind]{Every: time.Second},
	}
	// The epoch is drawn once the keys are known: half of it is a tag
	// under the send key (vouch).
	if err := s.rotate(cfg.Keys, cfg.SendKeyID, true); err != nil {
		return nil, err
	}
	return s, nil
}

func newBucket(rate float64) bucket { return bucket{rate: rate, burst: rate, tokens: rate} }

// Rotate replaces the accepted keys and the send key at run time. Frames in
// flight under a removed key id are rejected with ErrUnknownKey once Rotate
// returns. The sequence number and epoch are kept.
func (s *Sealer) Rotate(keys []Key, sendKeyID uint8) error {
	return s.rotate(keys, sendKeyID, false)
}

func (s *Sealer) rotate(keys []Key, sendKeyID uint8, drawEpoch bool) error {
	// Errors name what the caller set: New's Config fields, or Rotate's
	// arguments.
	keysName, sendName := "Rotate keys", "Rotate sendKeyID"
	if drawEpoch {
		keysName, sendName = "Config.Keys", "Config.SendKeyID"
	}
	if len(keys) == 0 {
		return fmt.Errorf("seal: %s empty; want at least one key", keysName)
	}
	prks := make(map[uint8][]byte, len(keys))
	vouchers := make(map[uint8]cipher.Block, len(keys))
	for i, k := range keys {
		if _, dup := prks[k.ID]; dup {
			return fmt.Errorf("seal: %s[%d]: duplicate key id %d", keysName, i, k.ID)
		}
		if err := checkKey(k.Secret); err != nil {
			return fmt.Errorf("seal: %s[%d] (id %d): %w", keysName, i, k.ID, err)
		}
		prk, err := hkdf.Extract(sha256.New, k.Secret, []byte(extractSalt))
		if err != nil {
			return fmt.Errorf("seal: %s[%d] (id %d): %w", keysName, i, k.ID, err)
		}
		prks[k.ID] = prk
		if vouchers[k.ID], err = voucher(prk, k.ID); err != nil {
			return fmt.Errorf("seal: %s[%d] (id %d): %w", keysName, i, k.ID, err)
		}
	}
	prk, ok := prks[sendKeyID]
	if !ok {
		ids := make([]uint8, 0, len(keys))
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		return fmt.Errorf("seal: %s %d not among the key ids %v", sendName, sendKeyID, ids)
	}
	if drawEpoch {
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			return fmt.Errorf("seal: drawing the epoch: %w", err)
		}
		salt := binary.BigEndian.Uint32(r[:])
		s.epoch = uint64(salt)<<32 | uint64(epochTag(vouchers[sendKeyID], new([16]byte), s.node, s.boot, salt))
	}
	aead, err := trafficAEAD(prk, sendKeyID, s.node, s.boot, s.epoch)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.gen++
	s.prks = prks
	s.vouchers = vouchers
	for _, p := range s.peers {
		clear(p.aeads)
	}
	s.runs = [runCache]cachedRun{}
	s.send.Store(&sendKey{id: sendKeyID, aead: aead})
	s.mu.Unlock()
	return nil
}

// voucher derives the key that tags epochs under one PSK.
func voucher(prk []byte, keyID uint8) (cipher.Block, error) {
	key, err := hkdf.Expand(sha256.New, prk, vouchLabel+string([]byte{keyID}), 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the epoch key: %w", err)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("deriving the epoch key: %w", err)
	}
	return b, nil
}

// epochTag is the low half of the epoch of a run whose high half is salt:
// the first 32 bits of AES-256 under the epoch key of the block
// sender ‖ boot ‖ salt ‖ "ep01". It lets a receiver tell, at the cost of
// one block cipher call, a run started by a holder of the PSK from a forged
// one before deriving its traffic key.
// blk is scratch space: passed in, it need not escape to the heap at every
// check.
func epochTag(b cipher.Block, blk *[16]byte, sender pfsync.NodeID, boot, salt uint32) uint32 {
	binary.BigEndian.PutUint32(blk[0:], uint32(sender))
	binary.BigEndian.PutUint32(blk[4:], boot)
	binary.BigEndian.PutUint32(blk[8:], salt)
	copy(blk[12:], "ep01")
	b.Encrypt(blk[:], blk[:])
	return binary.BigEndian.Uint32(blk[:])
}

// vouched reports whether epoch carries a valid tag for (sender, boot)
// under one of the accepted keys (the key a sender drew its epoch under may
// differ from the one it now seals with, after a rotation). Called with
// s.mu held.
func (s *Sealer) vouched(sender pfsync.NodeID, boot uint32, epoch uint64) bool {
	for _, b := range s.vouchers {
		if epochTag(b, &s.blk, sender, boot, uint32(epoch>>32)) == uint32(epoch) {
			return true
		}
	}
	return false
}

// cachedAEAD returns the traffic key derived earlier for a run, or nil.
// Called with s.mu held.
func (s *Sealer) cachedAEAD(keyID uint8, sender pfsync.NodeID, boot uint32, epoch uint64) cipher.AEAD {
	for i := range s.runs {
		r := &s.runs[i]
		if r.aead != nil && r.sender == sender && r.boot == boot && r.epoch == epoch && r.keyID == keyID {
			return r.aead
		}
	}
	return nil
}

// trafficAEAD derives the AES-256-GCM traffic key of one sender's run.
func trafficAEAD(prk []byte, keyID uint8, sender pfsync.NodeID, boot uint32, epoch uint64) (cipher.AEAD, error) {
	var info [len(expandLabel) + 1 + 4 + 4 + 8]byte
	n := copy(info[:], expandLabel)
	info[n] = keyID
	binary.BigEndian.PutUint32(info[n+1:], uint32(sender))
	binary.BigEndian.PutUint32(info[n+5:], boot)
	binary.BigEndian.PutUint64(info[n+9:], epoch)
	key, err := hkdf.Expand(sha256.New, prk, string(info[:]), 32)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving traffic key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving traffic key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving traffic key: %w", err)
	}
	return aead, nil
}

// Overhead is how many bytes Seal adds to a plaintext frame.
func (s *Sealer) Overhead() int { return HeaderLen + TagLen }

// Epoch is the random epoch of this Sealer's run, for logs.
func (s *Sealer) Epoch() uint64 { return s.epoch }

// Seal appends the sealed form of plaintext to dst and returns the result.
// It allocates nothing when dst has room for len(plaintext)+Overhead()
// more bytes. To seal in place, build the plaintext at
// buf[HeaderLen:HeaderLen+n] and call Seal(buf[:0], buf[HeaderLen:HeaderLen+n]);
// plaintext must not overlap dst's spare capacity in any other way.
func (s *Sealer) Seal(dst, plaintext []byte) ([]byte, error) {
	k := s.send.Load()
	seq := s.seq.Add(1)
	if seq == math.MaxUint64 {
		s.seq.Store(math.MaxUint64 - 1)
		return nil, fmt.Errorf("seal: sequence numbers of epoch %016x exhausted; create a new Sealer", s.epoch)
	}
	n := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	hdr := dst[n : n+HeaderLen]
	hdr[0], hdr[1], hdr[offVersion] = magic0, magic1, version
	hdr[offKeyID] = k.id
	hdr[offFlags] = 0
	binary.BigEndian.PutUint32(hdr[offSender:], uint32(s.node))
	binary.BigEndian.PutUint64(hdr[offEpoch:], s.epoch)
	binary.BigEndian.PutUint32(hdr[offBoot:], s.boot)
	binary.BigEndian.PutUint64(hdr[offSeq:], seq)
	out := k.aead.Seal(dst, hdr[offNonce:HeaderLen], plaintext, hdr)
	s.stats.sealed.Add(1)
	return out, nil
}

// Open authenticates frame and appends its plaintext to dst. To open in
// place use frame[HeaderLen:HeaderLen] as dst. A rejected frame changes no
// state; the error wraps pfsync.ErrTruncated, ErrBadAuth, ErrUnknownKey,
// ErrStaleEpoch or ErrReplay.
func (s *Sealer) Open(dst, frame []byte) (pfsync.NodeID, []byte, error) {
	if len(frame) < HeaderLen+TagLen {
		return 0, nil, s.reject(kindTruncated, 0, fmt.Errorf("seal: %d-byte frame shorter than envelope and tag (%d bytes): %w",
			len(frame), HeaderLen+TagLen, pfsync.ErrTruncated))
	}
	hdr := frame[:HeaderLen]
	if hdr[0] != magic0 || hdr[1] != magic1 || hdr[offVersion] != version || hdr[offFlags] != 0 {
		return 0, nil, s.reject(kindBadAuth, 0, fmt.Errorf("seal: not a sealed frame (magic %#x%02x, version %d, flags %#x): %w",
			hdr[0], hdr[1], hdr[offVersion], hdr[offFlags], pfsync.ErrBadAuth))
	}
	keyID := hdr[offKeyID]
	sender := pfsync.NodeID(binary.BigEndian.Uint32(hdr[offSender:]))
	epoch := binary.BigEndian.Uint64(hdr[offEpoch:])
	boot := binary.BigEndian.Uint32(hdr[offBoot:])
	seq := binary.BigEndian.Uint64(hdr[offSeq:])
	switch {
	case sender == 0 || boot == 0 || seq == 0:
		return 0, nil, s.reject(kindBadAuth, sender, fmt.Errorf("seal: frame with zero sender (%d), boot (%d) or sequence (%d): %w",
			sender, boot, seq, pfsync.ErrBadAuth))
	case sender == s.node:
		return 0, nil, s.reject(kindReplay, sender, fmt.Errorf("seal: frame carries our own node id %d (reflected, or a node misconfigured with our id): %w",
			sender, pfsync.ErrReplay))
	}

	s.mu.Lock()
	prk, ok := s.prks[keyID]
	if !ok {
		s.mu.Unlock()
		return 0, nil, s.reject(kindUnknownKey, sender, fmt.Errorf("seal: frame from node %d under key id %d: %w", sender, keyID, pfsync.ErrUnknownKey))
	}
	gen := s.gen
	p := s.peers[sender]
	var aead cipher.AEAD
	fresh, derive := false, false
	switch {
	case p.supersedes(boot, epoch):
		return 0, nil, s.rejectStale(p, sender, boot, epoch)
	case p != nil && boot == p.boot:
		if !p.win.check(seq) {
			s.mu.Unlock()
			return 0, nil, s.reject(kindReplay, sender, fmt.Errorf("seal: frame from node %d sequence %d already seen or too old: %w", sender, seq, pfsync.ErrReplay))
		}
		aead = p.aeads[keyID]
		if aead == nil {
			// The run is authenticated; deriving its key for another
			// configured key id is bounded by the number of keys.
			var err error
			if aead, err = trafficAEAD(prk, keyID, sender, boot, epoch); err != nil {
				s.mu.Unlock()
				return 0, nil, err
			}
			p.aeads[keyID] = aead
		}
	default:
		if p == nil && len(s.peers) >= s.maxPeers {
			s.mu.Unlock()
			return 0, nil, s.reject(kindBadAuth, sender, fmt.Errorf("seal: frame from node %d: already tracking %d senders (MaxSenders): %w",
				sender, s.maxPeers, pfsync.ErrBadAuth))
		}
		fresh = true
		if aead = s.cachedAEAD(keyID, sender, boot, epoch); aead != nil {
			break
		}
		// A tagged epoch was drawn by a holder of a PSK: deriving its
		// key is worth it whatever else arrives. An untagged one (a
		// forgery, or a run begun under a key since removed) spends
		// the claimed sender's budget, so a flood naming one sender
		// neither starves another nor a tagged run of the same one.
		if !s.vouched(sender, boot, epoch) {
			b := &s.untracked
			if p != nil {
				b = &p.derive
			}
			if !b.allow(time.Now()) {
				s.mu.Unlock()
				s.stats.throttled.Add(1)
				return 0, nil, s.reject(kindBadAuth, sender, fmt.Errorf("seal: frame from node %d opens boot %d epoch %016x (untagged): new-epoch key derivations over NewEpochRate: %w",
					sender, boot, epoch, pfsync.ErrBadAuth))
			}
		}
		derive = true
	}
	s.mu.Unlock()

	if derive {
		var err error
		if aead, err = trafficAEAD(prk, keyID, sender, boot, epoch); err != nil {
			return 0, nil, err
		}
		s.stats.derived.Add(1)
		s.mu.Lock()
		if gen == s.gen {
			s.runs[s.nextRun] = cachedRun{keyID: keyID, sender: sender, boot: boot, epoch: epoch, aead: aead}
			s.nextRun = (s.nextRun + 1) % runCache
		}
		s.mu.Unlock()
	}
	out, err := aead.Open(dst, hdr[offNonce:HeaderLen], frame[HeaderLen:], hdr)
	if err != nil {
		return 0, nil, s.reject(kindBadAuth, sender, fmt.Errorf("seal: frame from node %d boot %d sequence %d: %w", sender, boot, seq, pfsync.ErrBadAuth))
	}

	if s.afterDecrypt != nil {
		s.afterDecrypt()
	}

	s.mu.Lock()
	p = s.peers[sender]
	switch {
	case p.supersedes(boot, epoch):
		// Superseded by a frame opened concurrently.
		return 0, nil, s.rejectStale(p, sender, boot, epoch)
	case p == nil || boot > p.boot:
		if p == nil {
			if len(s.peers) >= s.maxPeers {
				s.mu.Unlock()
				return 0, nil, s.reject(kindBadAuth, sender, fmt.Errorf("seal: frame from node %d: already tracking %d senders (MaxSenders): %w",
					sender, s.maxPeers, pfsync.ErrBadAuth))
			}
			p = &peer{derive: newBucket(s.rate)}
			s.peers[sender] = p
		}
		*p = peer{boot: boot, epoch: epoch, aeads: make(map[uint8]cipher.AEAD, 2), derive: p.derive}
		s.log.Info("seal: new run of sender authenticated", "peer", uint32(sender), "boot", boot, "epoch", fmt.Sprintf("%016x", epoch))
	}
	if fresh && gen == s.gen && p.aeads[keyID] == nil {
		p.aeads[keyID] = aead
	}
	if !p.win.mark(seq) {
		s.mu.Unlock()
		return 0, nil, s.reject(kindReplay, sender, fmt.Errorf("seal: frame from node %d sequence %d already seen or too old: %w", sender, seq, pfsync.ErrReplay))
	}
	s.mu.Unlock()
	s.stats.opened.Add(1)
	return sender, out, nil
}

// supersedes reports whether p, the newest authenticated run of a sender
// (nil: none yet), supersedes the run (boot, epoch) of a frame: p has a later
// boot, or the same boot under another epoch. Open asks twice, with s.mu
// held both times: before decrypting, to reject a stale frame without the
// work, and after, because a concurrent Open may have authenticated a newer
// run in between.
func (p *peer) supersedes(boot uint32, epoch uint64) bool {
	return p != nil && (boot < p.boot || boot == p.boot && epoch != p.epoch)
}

// rejectStale rejects a frame of the run (boot, epoch) that p supersedes. It
// is called with s.mu held and releases it before counting and logging.
func (s *Sealer) rejectStale(p *peer, sender pfsync.NodeID, boot uint32, epoch uint64) error {
	pb, pe := p.boot, p.epoch
	s.mu.Unlock()
	return s.reject(kindStale, sender, fmt.Errorf("seal: frame from node %d boot %d epoch %016x; newest is boot %d epoch %016x: %w",
		sender, boot, epoch, pb, pe, pfsync.ErrStaleEpoch))
}

// Stats returns a snapshot of the counters.
func (s *Sealer) Stats() Stats {
	return Stats{
		Sealed:     s.stats.sealed.Load(),
		Opened:     s.stats.opened.Load(),
		BadAuth:    s.stats.kinds[kindBadAuth].Load(),
		Replay:     s.stats.kinds[kindReplay].Load(),
		StaleEpoch: s.stats.kinds[kindStale].Load(),
		UnknownKey: s.stats.kinds[kindUnknownKey].Load(),
		Truncated:  s.stats.kinds[kindTruncated].Load(),
		Throttled:  s.stats.throttled.Load(),
		Derived:    s.stats.derived.Load(),
	}
}

// reject counts a rejected frame, logs a rate-limited summary, and returns
// err.
func (s *Sealer) reject(k kind, sender pfsync.NodeID, err error) error {
	s.stats.kinds[k].Add(1)
	if held, ok := s.limiter.Allow(k, time.Now()); ok {
		s.log.Warn("seal: rejected frames", "kind", k.String(), "count", held+1, "peer", uint32(sender), "last", err.Error())
	}
	return err
}

type counters struct {
	sealed, opened, throttled, derived atomic.Uint64
	kinds                              [numKinds]atomic.Uint64
}

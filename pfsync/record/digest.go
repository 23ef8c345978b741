package record

// Hash returns the protocol-v1 hash of one version of one record: FNV-1a 64
// over the 20 bytes creator (4), num (8) and version (8), all big-endian,
// followed by the MurmurHash3 fmix64 finalizer so that consecutive versions
// spread over all 64 bits. The function is part of the wire protocol (bulk
// end and anti-entropy digests compare values computed on different nodes)
// and must never change within a protocol version; it is deliberately not
// hash/maphash, whose seed is random per process.
func Hash(id ID, version uint64) uint64 {
	h := uint64(fnvOffset)
	h = fnvU32(h, id.Creator)
	h = fnvU64(h, id.Num)
	h = fnvU64(h, version)
	return fmix64(h)
}

// Bucket returns the anti-entropy bucket of id among n buckets (n ≥ 1; n < 1
// is treated as 1). It hashes the ID without the version, so every version
// of a record lands in the same bucket.
func Bucket(id ID, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint64(fnvOffset)
	h = fnvU32(h, id.Creator)
	h = fnvU64(h, id.Num)
	return int(fmix64(h) % uint64(n))
}

// Digest summarises a set of (ID, Version) pairs: their number and the sum
// modulo 2^64 of their Hash. The sum is independent of order and
// incremental — Add and Remove are exact inverses — so a node can keep the
// digest of its table up to date as records change and compare it with a
// peer's (BULK_END, anti-entropy DIGEST). The zero value is the empty set.
type Digest struct {
	Count uint64
	Sum   uint64
}

// Add adds one record version to the set.
func (d *Digest) Add(id ID, version uint64) {
	d.Count++
	d.Sum += Hash(id, version)
}

// Remove removes one record version previously added.
func (d *Digest) Remove(id ID, version uint64) {
	d.Count--
	d.Sum -= Hash(id, version)
}

// Combine adds every member of o to d (the union of disjoint sets).
func (d *Digest) Combine(o Digest) {
	d.Count += o.Count
	d.Sum += o.Sum
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvU32(h uint64, v uint32) uint64 {
	for i := 24; i >= 0; i -= 8 {
		h ^= uint64(byte(v >> i))
		h *= fnvPrime
	}
	return h
}

func fnvU64(h, v uint64) uint64 {
	for i := 56; i >= 0; i -= 8 {
		h ^= uint64(byte(v >> i))
		h *= fnvPrime
	}
	return h
}

// fmix64 is MurmurHash3's 64-bit finalizer.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

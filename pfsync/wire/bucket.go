package wire

import (
	"math/bits"

	"github.com/gocarp/gocarp/pfsync/record"
)

// Buckets is how many ranges a bulk transfer splits the records into, by
// record.Bucket(id, Buckets). The sender sends the records bucket by bucket
// and vouches for each finished range of buckets with a BulkMark, so the
// receiver verifies a transfer piece by piece and asks again only for the
// buckets that failed. It is part of the protocol.
const Buckets = 256

// BucketOf returns the bulk bucket of id: record.Bucket(id, Buckets).
func BucketOf(id record.ID) int { return record.Bucket(id, Buckets) }

// BucketSet is a set of bulk buckets (bit b: bucket b). The zero value is
// the empty set.
type BucketSet [Buckets / 64]uint64

// AllBuckets returns the set of every bucket.
func AllBuckets() BucketSet {
	var s BucketSet
	for i := range s {
		s[i] = ^uint64(0)
	}
	return s
}

// Has reports whether bucket b is in the set (false outside 0..Buckets-1).
func (s BucketSet) Has(b int) bool {
	return b >= 0 && b < Buckets && s[b/64]&(1<<(b%64)) != 0
}

// Add adds bucket b (ignored outside 0..Buckets-1).
func (s *BucketSet) Add(b int) {
	if b >= 0 && b < Buckets {
		s[b/64] |= 1 << (b % 64)
	}
}

// AddCoarse adds every bucket that lies in bucket b of a coarser split into
// n buckets (n divides Buckets, as the anti-entropy digest's 64 do): since
// record.Bucket is a hash modulo the bucket count, those are b, b+n, b+2n...
// A bad n or b adds nothing.
func (s *BucketSet) AddCoarse(b, n int) {
	if n < 1 || Buckets%n != 0 || b < 0 || b >= n {
		return
	}
	for k := b; k < Buckets; k += n {
		s.Add(k)
	}
}

// Len returns the number of buckets in the set.
func (s BucketSet) Len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// Empty reports whether the set has no bucket.
func (s BucketSet) Empty() bool { return s == BucketSet{} }

// Without returns the buckets of s that are not in o.
func (s BucketSet) Without(o BucketSet) BucketSet {
	for i := range s {
		s[i] &^= o[i]
	}
	return s
}

// Union returns the buckets in s or o.
func (s BucketSet) Union(o BucketSet) BucketSet {
	for i := range s {
		s[i] |= o[i]
	}
	return s
}

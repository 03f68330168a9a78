package relay

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"iter"
	"slices"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	negstorage "github.com/nbd-wtf/go-nostr/nip77/negentropy/storage"
)

// negVector is a NIP-77 session's sorted (created_at, id) list, as
// go-nostr's negentropy reads it (negentropy.Storage). go-nostr's own
// vector keeps each id as a 64-character hex string (88 bytes an event,
// with the string's header); this keeps the 32 bytes (40 an event), and
// hex-encodes only the few ids a message names.
type negVector struct {
	items []negItem
	acc   negstorage.Accumulator
}

type negItem struct {
	createdAt int64
	id        [32]byte
}

// negItemBytes is what one event of a session holds.
const negItemBytes = 40

func compareNegItems(a, b negItem) int {
	return cmp.Or(cmp.Compare(a.createdAt, b.createdAt), bytes.Compare(a.id[:], b.id[:]))
}

// insert adds an event; seal must be called once all are in.
func (v *negVector) insert(createdAt int64, id []byte) {
	var it negItem
	it.createdAt = createdAt
	copy(it.id[:], id)
	v.items = append(v.items, it)
}

// seal sorts the list and gives back the room the listing left over.
func (v *negVector) seal() {
	slices.SortFunc(v.items, compareNegItems)
	if cap(v.items)-len(v.items) > len(v.items)/8 {
		v.items = slices.Clone(v.items) // append's growth left up to half unused
	}
}

func (v *negVector) item(i int) negentropy.Item {
	it := &v.items[i]
	return negentropy.Item{Timestamp: nostr.Timestamp(it.createdAt), ID: hex.EncodeToString(it.id[:])}
}

func (v *negVector) Size() int { return len(v.items) }

func (v *negVector) Range(begin, end int) iter.Seq2[int, negentropy.Item] {
	return func(yield func(int, negentropy.Item) bool) {
		for i := begin; i < end; i++ {
			if !yield(i, v.item(i)) {
				return
			}
		}
	}
}

func (v *negVector) GetBound(i int) negentropy.Bound {
	if i < len(v.items) {
		return negentropy.Bound{Item: v.item(i)}
	}
	return negentropy.InfiniteBound
}

// FindLowerBound is the index of the first item in [begin, end) not
// below bound, whose id may be a prefix (hex) of an id.
func (v *negVector) FindLowerBound(begin, end int, bound negentropy.Bound) int {
	ts := int64(bound.Timestamp)
	prefix, err := hex.DecodeString(bound.ID)
	less := func(it *negItem) bool {
		if it.createdAt != ts {
			return it.createdAt < ts
		}
		if err != nil { // an odd prefix: compare as the library does, in hex
			return hex.EncodeToString(it.id[:]) < bound.ID
		}
		return bytes.Compare(it.id[:], prefix) < 0
	}
	lo, hi := begin, end
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if less(&v.items[mid]) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (v *negVector) Fingerprint(begin, end int) string {
	v.acc.Reset()
	for i := begin; i < end; i++ {
		v.acc.AddBytes(v.items[i].id[:])
	}
	return v.acc.GetFingerprint(end - begin)
}

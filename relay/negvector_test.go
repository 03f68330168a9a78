package relay

import (
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy/storage/vector"
)

// negVector answers every question of negentropy.Storage as go-nostr's
// vector does, on lists with many created_at ties, and bounds of every
// kind: exact items, id prefixes, times between items, infinity.
func TestNegVectorAgreesWithGoNostrVector(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 50 {
		mine, theirs := &negVector{}, vector.New()
		n := rng.IntN(300)
		for range n {
			var id [32]byte
			for i := range id {
				id[i] = byte(rng.IntN(4)) // shared prefixes
			}
			id[31] = byte(rng.IntN(256))
			ts := int64(1000 + rng.IntN(20))
			mine.insert(ts, id[:])
			theirs.Insert(nostr.Timestamp(ts), hex.EncodeToString(id[:]))
		}
		mine.seal()
		theirs.Seal()
		// go-nostr keeps a repeated item twice too; so does negVector.
		if mine.Size() != theirs.Size() {
			t.Fatalf("round %d: size %d, want %d", round, mine.Size(), theirs.Size())
		}
		for i := range n + 1 {
			if got, want := mine.GetBound(i), theirs.GetBound(i); got != want {
				t.Fatalf("round %d: bound %d = %v, want %v", round, i, got, want)
			}
		}
		for range 200 {
			a := rng.IntN(n + 1)
			b := a + rng.IntN(n+1-a)
			if got, want := mine.Fingerprint(a, b), theirs.Fingerprint(a, b); got != want {
				t.Fatalf("round %d: fingerprint [%d,%d) = %s, want %s", round, a, b, got, want)
			}
			var bound negentropy.Bound
			switch rng.IntN(4) {
			case 0:
				bound = negentropy.InfiniteBound
			case 1:
				bound = theirs.GetBound(rng.IntN(n + 1))
			default:
				prefix := make([]byte, rng.IntN(4))
				for i := range prefix {
					prefix[i] = byte(rng.IntN(4))
				}
				bound = negentropy.Bound{Item: negentropy.Item{Timestamp: nostr.Timestamp(1000 + rng.IntN(21)), ID: hex.EncodeToString(prefix)}}
			}
			if got, want := mine.FindLowerBound(a, b, bound), theirs.FindLowerBound(a, b, bound); got != want {
				t.Fatalf("round %d: lower bound of %v in [%d,%d) = %d, want %d", round, bound, a, b, got, want)
			}
			for i, it := range mine.Range(a, b) {
				if want := theirs.GetBound(i).Item; it != want {
					t.Fatalf("round %d: item %d = %v, want %v", round, i, it, want)
				}
			}
		}
	}
}

func TestCheckNegMessage(t *testing.T) {
	valid := []string{
		"61",       // nothing to reconcile
		"61000000", // infinity, no prefix, skip
		"6100000100112233445566778899aabbccddeeff",                                        // a fingerprint
		"6100000201" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", // one id
		"618a0102abcd0200", // a bound with a 2-byte-delta time and a 2-byte prefix, an empty id list
	}
	for _, h := range valid {
		b, _ := hex.DecodeString(h)
		if err := checkNegMessage(b); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	invalid := []string{
		"",
		"61000002ffffffff0f", // four billion ids in no bytes
		"6100000203" + "00112233445566778899aabbcc", // three ids, a part of one sent
		"610021",                   // a 33-byte prefix
		"61000003",                 // an unknown mode
		"6100000100112233",         // a short fingerprint
		"61ffffffffffffffffffff01", // a varint of ten bytes
	}
	for _, h := range invalid {
		b, _ := hex.DecodeString(h)
		if err := checkNegMessage(b); err == nil {
			t.Errorf("%s accepted", h)
		}
	}
}

// BenchmarkNegSessionBytesPerEvent measures what a NIP-77 session's list
// holds per event, against go-nostr's vector.
func BenchmarkNegSessionBytesPerEvent(b *testing.B) {
	const n = 100_000
	ids := make([][32]byte, n)
	for i := range ids {
		ids[i][0], ids[i][1], ids[i][2] = byte(i), byte(i>>8), byte(i>>16)
	}
	measure := func(build func() any) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		v := build()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(v)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	var mine, theirs float64
	for range b.N {
		mine = measure(func() any {
			v := &negVector{}
			for i := range ids {
				v.insert(int64(i), ids[i][:])
			}
			v.seal()
			return v
		})
		theirs = measure(func() any {
			v := vector.New()
			for i := range ids {
				v.Insert(nostr.Timestamp(i), hex.EncodeToString(ids[i][:]))
			}
			v.Seal()
			return v
		})
	}
	b.ReportMetric(mine, "B/event")
	b.ReportMetric(theirs, "go-nostr-B/event")
}

package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/wisp-relay/wisp/storage"
)

// BenchmarkDuplicateLookup compares the relay's lookups of a re-sent event
// among 20,000 stored notes of about 500 bytes: Has reads the id index
// only, StoredSig also the event's row.
func BenchmarkDuplicateLookup(b *testing.B) {
	ctx := context.Background()
	s := openTestStore(b)
	c := newCorpus(50)
	var ids []string
	sig := strings.Repeat("5a", 64)
	for range 40 {
		items := make([]storage.Item, 500)
		for i := range items {
			it := c.item()
			it.Event.Content = strings.Repeat("lorem ipsum ", 35)
			it.Event.ID = it.Event.GetID()
			it.Event.Sig = sig
			it.Raw, _ = it.Event.MarshalJSON()
			items[i] = it
		}
		res, err := s.Save(ctx, items)
		if err != nil {
			b.Fatal(err)
		}
		for i, it := range items {
			if res[i].Outcome == storage.Stored && (it.Event.Kind == 1 || it.Event.Kind == 7) {
				ids = append(ids, it.Event.ID)
			}
		}
	}
	b.Run("Has", func(b *testing.B) {
		i := 0
		b.ReportAllocs()
		cpu0 := processCPU(b)
		for b.Loop() {
			if ok, err := s.Has(ctx, ids[i%len(ids)]); err != nil || !ok {
				b.Fatal(ok, err)
			}
			i += 7919
		}
		reportCPUPerOp(b, processCPU(b)-cpu0)
	})
	b.Run("StoredSig", func(b *testing.B) {
		i := 0
		b.ReportAllocs()
		cpu0 := processCPU(b)
		for b.Loop() {
			if got, ok, err := s.StoredSig(ctx, ids[i%len(ids)]); err != nil || !ok || got != sig {
				b.Fatal(got, ok, err)
			}
			i += 7919
		}
		reportCPUPerOp(b, processCPU(b)-cpu0)
	})
}

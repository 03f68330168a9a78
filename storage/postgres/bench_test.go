package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// corpus makes plausible events, the same as storage/sqlite's benchmarks
// (same seed, same mix), so that figures compare: authors post notes that
// mention, reply to and react to earlier events, with hashtags and some
// replaceable and addressable kinds. Events are hashed, not signed.
type corpus struct {
	rng     *rand.Rand
	authors []string
	ids     []string
	now     int64
	n       int
}

func newCorpus(authors int) *corpus {
	c := &corpus{rng: rand.New(rand.NewPCG(1, 2)), now: 1_700_000_000}
	for i := range authors {
		h := sha256.Sum256(fmt.Appendf(nil, "author %d", i))
		c.authors = append(c.authors, hex.EncodeToString(h[:]))
	}
	return c
}

func (c *corpus) item() storage.Item {
	c.n++
	c.now += int64(c.rng.IntN(3)) // frequent created_at ties
	ev := &nostr.Event{
		PubKey:    c.authors[c.rng.IntN(len(c.authors))],
		CreatedAt: nostr.Timestamp(c.now),
		Content:   fmt.Sprintf("event %d: the quick brown fox jumps over the lazy dog", c.n),
		Tags:      nostr.Tags{},
	}
	switch x := c.rng.IntN(100); {
	case x < 65:
		ev.Kind = 1
		if len(c.ids) > 0 && c.rng.IntN(2) == 0 {
			ev.Tags = append(ev.Tags, nostr.Tag{"e", c.ids[c.rng.IntN(len(c.ids))], "", "reply"})
		}
		ev.Tags = append(ev.Tags, nostr.Tag{"p", c.authors[c.rng.IntN(len(c.authors))]})
		ev.Tags = append(ev.Tags, nostr.Tag{"t", fmt.Sprint("topic", c.rng.IntN(20))})
	case x < 90:
		ev.Kind = 7
		if len(c.ids) > 0 {
			ev.Tags = append(ev.Tags, nostr.Tag{"e", c.ids[c.rng.IntN(len(c.ids))]})
		}
		ev.Tags = append(ev.Tags, nostr.Tag{"p", c.authors[c.rng.IntN(len(c.authors))]})
		ev.Content = "+"
	case x < 95:
		ev.Kind = []int{0, 3, 10002}[c.rng.IntN(3)]
	default:
		ev.Kind = 30023
		ev.Tags = append(ev.Tags, nostr.Tag{"d", fmt.Sprint("article", c.rng.IntN(10))}, nostr.Tag{"t", "long"})
	}
	ev.ID = ev.GetID()
	c.ids = append(c.ids, ev.ID)
	raw, err := ev.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return storage.Item{Event: ev, Raw: raw}
}

// load saves n corpus events in batches of 500.
func (c *corpus) load(tb testing.TB, s *Store, n int) {
	tb.Helper()
	for n > 0 {
		batch := make([]storage.Item, min(n, 500))
		for i := range batch {
			batch[i] = c.item()
		}
		if _, err := s.Save(context.Background(), batch); err != nil {
			tb.Fatal(err)
		}
		n -= len(batch)
	}
}

func BenchmarkSaveBatch(b *testing.B) {
	for _, search := range []bool{false, true} {
		for _, size := range []int{1, 100, 500} {
			b.Run(fmt.Sprintf("search=%v/size=%d", search, size), func(b *testing.B) {
				var kinds []int
				if search {
					kinds = []int{1, 30023}
				}
				s := openTestStore(b, Options{SearchKinds: kinds})
				c := newCorpus(200)
				batches := make([][]storage.Item, b.N)
				for i := range batches {
					batches[i] = make([]storage.Item, size)
					for j := range batches[i] {
						batches[i][j] = c.item()
					}
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if _, err := s.Save(ctx, batches[i]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkSaveTwoStores is BenchmarkSaveBatch with batches of 100 from two
// stores on one database at once, as two relay processes: saves take turns
// (the write lock), so this measures what the lock costs and what two
// writers still gain (one builds its batch while the other commits).
func BenchmarkSaveTwoStores(b *testing.B) {
	url := pg.Database(b)
	stores := []*Store{openURL(b, url, Options{}), openURL(b, url, Options{})}
	const size = 100
	cs := []*corpus{newCorpus(200), newCorpus(201)}
	batches := make([][][]storage.Item, 2)
	for w := range batches {
		for range b.N {
			batch := make([]storage.Item, size)
			for j := range batch {
				batch[j] = cs[w].item()
			}
			batches[w] = append(batches[w], batch)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	done := make(chan error, 2)
	for w, s := range stores {
		go func() {
			for i := range b.N {
				if _, err := s.Save(ctx, batches[w][i]); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range stores {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*b.N*size)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkQuery(b *testing.B) {
	const total = 20_000
	s := openTestStore(b, Options{SearchKinds: []int{1}})
	c := newCorpus(200)
	c.load(b, s, total)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }
	popular := c.ids[total/2]
	shapes := []struct {
		name    string
		filters []nostr.Filter
	}{
		{"ids", []nostr.Filter{{IDs: c.ids[100:120]}}},
		{"author", []nostr.Filter{{Authors: c.authors[:1], Limit: 100}}},
		{"author-kind", []nostr.Filter{{Authors: c.authors[:1], Kinds: []int{1}, Limit: 100}}},
		{"follows", []nostr.Filter{{Authors: c.authors[:50], Kinds: []int{1}, Limit: 100}}},
		{"kind", []nostr.Filter{{Kinds: []int{1}, Limit: 100}}},
		{"tag-p", []nostr.Filter{{Tags: nostr.TagMap{"p": c.authors[:1]}, Limit: 100}}},
		{"tag-t", []nostr.Filter{{Tags: nostr.TagMap{"t": {"topic3"}}, Limit: 100}}},
		{"tag-e-kinds", []nostr.Filter{{Tags: nostr.TagMap{"e": {popular}}, Kinds: []int{1, 7}, Limit: 100}}},
		{"window", []nostr.Filter{{Since: ts(c.now - 2000), Until: ts(c.now - 1000), Limit: 500}}},
		{"recent", []nostr.Filter{{Limit: 500}}},
		{"thread", []nostr.Filter{{IDs: []string{popular}}, {Tags: nostr.TagMap{"e": {popular}}, Limit: 500}, {Kinds: []int{0}, Authors: c.authors[:20]}}},
		{"search-rare", []nostr.Filter{{Search: "12345", Limit: 20}}},
		{"search-common", []nostr.Filter{{Search: "fox", Limit: 20}}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for range b.N {
				if _, err := s.Query(ctx, sh.filters, func([]byte) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/float64(b.N), "events/op")
		})
	}
	b.Run("count-reactions", func(b *testing.B) {
		for range b.N {
			if _, _, err := s.Count(ctx, []nostr.Filter{{Tags: nostr.TagMap{"e": {popular}}, Kinds: []int{7}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

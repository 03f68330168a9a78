package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// corpus makes plausible events: authors post notes that mention, reply to
// and react to earlier events, with hashtags and some replaceable and
// addressable kinds. Events are hashed, not signed: the store does not verify.
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

func BenchmarkSaveBatch(b *testing.B) {
	for _, size := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s := openTestStore(b)
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
			cpu0 := processCPU(b)
			for i := range b.N {
				if _, err := s.Save(ctx, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			cpu := processCPU(b) - cpu0
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
			// The writer is serial: its CPU per event, not the wall time
			// on a shared machine, bounds ingest.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*size), "cpu-µs/event")
		})
	}
}

func BenchmarkQuery(b *testing.B) {
	const total = 20_000
	s := openTestStore(b)
	c := newCorpus(200)
	ctx := context.Background()
	for range total / 500 {
		batch := make([]storage.Item, 500)
		for i := range batch {
			batch[i] = c.item()
		}
		if _, err := s.Save(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Optimize(ctx); err != nil {
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
		// What clients send most: a home feed of 150 follows, notifications,
		// profiles of 100 authors.
		{"home", []nostr.Filter{{Authors: c.authors[:150], Kinds: []int{1, 6, 7}, Limit: 300}}},
		{"notify", []nostr.Filter{{Tags: nostr.TagMap{"p": c.authors[1:2]}, Kinds: []int{1, 6, 7, 9735}, Limit: 100}}},
		{"profiles", []nostr.Filter{{Kinds: []int{0}, Authors: c.authors[:100]}}},
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
}

// reportCPUPerOp reports cpu, the process's CPU time over the loop, per
// operation: steadier than wall time on a shared machine.
func reportCPUPerOp(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// noteBatches makes n batches of size events of the corpus's mix of kinds
// (all kind 1 with onlyNotes) with note-sized content (about 350 bytes, 55
// words), as the writer sees them under load.
func noteBatches(n, size int, onlyNotes bool) [][]storage.Item {
	c := newCorpus(200)
	words := strings.Fields("nostr relay bitcoin lightning zap note the of and a to in is it you that he was for on are with as I his they be at one have this from or had by hot word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find")
	batches := make([][]storage.Item, n)
	for i := range batches {
		batches[i] = make([]storage.Item, size)
		for j := range batches[i] {
			it := c.item()
			if onlyNotes {
				it.Event.Kind = 1
			}
			var sb strings.Builder
			for k := 0; sb.Len() < 350; k++ {
				sb.WriteString(words[(i*7919+j*104729+k*31)%len(words)])
				sb.WriteByte(' ')
			}
			it.Event.Content = sb.String()
			it.Event.ID = it.Event.GetID()
			it.Raw, _ = it.Event.MarshalJSON()
			batches[i][j] = it
		}
	}
	return batches
}

// BenchmarkSaveSearchCost measures what the NIP-50 index adds to Save:
// Save leaves every event to IndexSearch, so batches should cost about
// what they cost with search off.
func BenchmarkSaveSearchCost(b *testing.B) {
	for _, kinds := range [][]int{{}, {1, 30023}} {
		for _, size := range []int{loadedBatch, 100, 500, 2000} {
			b.Run(fmt.Sprintf("kinds=%v/size=%d", kinds, size), func(b *testing.B) {
				s, err := Open(context.Background(), filepath.Join(b.TempDir(), "wisp.db"), Options{SearchKinds: kinds, manualUpkeep: true})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				batches := noteBatches(b.N, size, false)
				b.ResetTimer()
				for i := range b.N {
					if _, err := s.Save(context.Background(), batches[i]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer() // not Close's checkpoint
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/event")
			})
		}
	}
}

// BenchmarkIndexSearch measures IndexSearch's cost per event by chunk
// size, over notes (all of a search kind: the costliest chunk) saved in big
// batches, so that all of them wait for it. The chunk size that keeps one
// call to a few tens of milliseconds comes from here.
func BenchmarkIndexSearch(b *testing.B) {
	for _, chunk := range []int{100, 500, 1000, 2000, 5000} {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), "wisp.db"), Options{SearchKinds: []int{1, 30023}, manualUpkeep: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const batch = 500
			for _, items := range noteBatches((b.N*chunk+batch-1)/batch, batch, true) {
				if _, err := s.Save(context.Background(), items); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				n, err := s.IndexSearch(context.Background(), chunk)
				if err != nil || n != chunk {
					b.Fatalf("indexed %d, %v", n, err)
				}
			}
			b.StopTimer() // not Close's checkpoint
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*chunk), "µs/event")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/chunk")
		})
	}
}

// BenchmarkSearchTail measures a search (query and count) over 20,000
// notes when the last tail of them are not indexed yet, which the search
// reads without the index: what bounding the tail (upkeep.go's
// searchTailMax) buys. "common" words are in half the notes (the corpus
// has few words), "absent" ones in none.
func BenchmarkSearchTail(b *testing.B) {
	const total = 20000
	for _, tail := range []int{0, 1000, 5000, 20000} {
		ctx := context.Background()
		s, err := Open(ctx, filepath.Join(b.TempDir(), "wisp.db"), Options{SearchKinds: []int{1}, manualUpkeep: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, items := range noteBatches(total/500, 500, true) {
			if _, err := s.Save(ctx, items); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.IndexSearch(ctx, total-tail); err != nil {
			b.Fatal(err)
		}
		if lag, err := s.SearchLag(ctx); lag != int64(tail) || err != nil {
			b.Fatalf("lag %d %v, want %d", lag, err, tail)
		}
		for _, q := range []struct{ name, search string }{{"common", "lightning zap"}, {"absent", "unicorn"}} {
			b.Run(fmt.Sprintf("tail=%d/%s", tail, q.name), func(b *testing.B) {
				filters := []nostr.Filter{{Search: q.search, Limit: 20}}
				for range b.N {
					if _, err := s.Query(ctx, filters, func([]byte) error { return nil }); err != nil {
						b.Fatal(err)
					}
					if _, _, err := s.Count(ctx, filters); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		s.Close()
	}
}

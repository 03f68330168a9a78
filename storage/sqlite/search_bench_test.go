package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-relay/wisp/storage"
)

// BenchmarkSaveSearchCost measures what the NIP-50 index adds to Save, with
// note-sized content (about 350 bytes, 55 words) and batches of the sizes
// the writer sees under load.
func BenchmarkSaveSearchCost(b *testing.B) {
	for _, kinds := range [][]int{{}, {1, 30023}} {
		for _, size := range []int{100, 500, 2000} {
			b.Run(fmt.Sprintf("kinds=%v/size=%d", kinds, size), func(b *testing.B) {
				s, err := Open(context.Background(), filepath.Join(b.TempDir(), "wisp.db"), Options{SearchKinds: kinds})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				c := newCorpus(200)
				words := strings.Fields("nostr relay bitcoin lightning zap note the of and a to in is it you that he was for on are with as I his they be at one have this from or had by hot word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find")
				batches := make([][]storage.Item, b.N)
				for i := range batches {
					batches[i] = make([]storage.Item, size)
					for j := range batches[i] {
						it := c.item()
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
				b.ResetTimer()
				for i := range b.N {
					if _, err := s.Save(context.Background(), batches[i]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/event")
			})
		}
	}
}

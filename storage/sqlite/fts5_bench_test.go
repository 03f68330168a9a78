//go:build sqlite_fts5

package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// BenchmarkRankFTS5 compares wisp's search (FTS4, ranked by BM25 in Go from
// matchinfo) with SQLite FTS5's own bm25() over the same 20,000 notes, each
// reading the 20 best events' JSON. It needs FTS5, which mattn/go-sqlite3
// compiles only with its build tag, so it is not part of `go test ./...`:
//
//	go test -tags sqlite_fts5 -run '^$' -bench RankFTS5 ./storage/sqlite
func BenchmarkRankFTS5(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "wisp.db"), Options{SearchKinds: []int{1}, manualUpkeep: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, items := range noteBatches(40, 500, true) {
		if _, err := s.Save(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.IndexSearch(ctx, 20000); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		"CREATE VIRTUAL TABLE fts5_bench USING fts5(content, tokenize = 'unicode61 remove_diacritics 2')",
		"INSERT INTO fts5_bench (rowid, content) SELECT seq, json_extract(raw, '$.content') FROM events WHERE kind = 1",
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	for _, search := range []string{"lightning zap", "unicorn"} {
		b.Run("go-bm25/"+search, func(b *testing.B) {
			filters := []nostr.Filter{{Search: search, Limit: 20}}
			for range b.N {
				if _, err := s.Query(ctx, filters, func([]byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("fts5-bm25/"+search, func(b *testing.B) {
			match := `"` + search + `"`
			if search == "lightning zap" {
				match = `"lightning" "zap"`
			}
			for range b.N {
				rows, err := s.r.QueryContext(ctx, `SELECT CAST(e.raw AS BLOB) FROM fts5_bench
					JOIN events AS e ON e.seq = fts5_bench.rowid
					WHERE fts5_bench MATCH ? ORDER BY bm25(fts5_bench) LIMIT 20`, match)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
					var raw []byte
					if err := rows.Scan(&raw); err != nil {
						b.Fatal(err)
					}
				}
				rows.Close()
			}
		})
	}
}

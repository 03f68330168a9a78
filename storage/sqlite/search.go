package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-50 search on an FTS4 table (events_search, migration 3). FTS4 rather
// than FTS5 because mattn/go-sqlite3 compiles FTS4 in by default and FTS5
// only with a build tag, which plain `go test ./...` would not set.
//
// The index holds the content of the events of the kinds in search_kinds,
// keyed by seq; triggers on events add and remove rows inside the writer's
// transaction, so a stored event is searchable as soon as it is committed
// and a deleted or replaced one is gone from the index with it.

var _ storage.Searcher = (*Store)(nil)

// maxSearchCandidates bounds the work of one search filter: relevance is
// ranked among at most this many matches, the most recently stored first.
const maxSearchCandidates = 10000

// SearchKinds returns the kinds whose content is indexed for search.
func (s *Store) SearchKinds() []int { return slices.Clone(s.searchKinds) }

// configureSearch reads the indexed kinds and, when want is not nil and
// differs, indexes the stored events of the kinds added and drops those of
// the kinds removed, in one transaction. It returns the kinds now indexed.
func configureSearch(ctx context.Context, db *sql.DB, want []int) ([]int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("configure search: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	rows, err := tx.QueryContext(ctx, "SELECT kind FROM search_kinds ORDER BY kind")
	if err != nil {
		return nil, fmt.Errorf("configure search: read kinds: %w", err)
	}
	have := []int{}
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, fmt.Errorf("configure search: read kinds: %w", err)
		}
		have = append(have, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("configure search: read kinds: %w", err)
	}
	if want == nil {
		return have, nil
	}
	want = slices.Clone(want)
	slices.Sort(want)
	want = slices.Compact(want)
	for _, k := range want {
		if k < 0 || k > 65535 {
			return nil, fmt.Errorf("configure search: kind %d is not 0 to 65535", k)
		}
	}
	if slices.Equal(have, want) {
		return have, nil
	}
	for _, k := range have {
		if slices.Contains(want, k) {
			continue
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM events_search WHERE docid IN (SELECT seq FROM events WHERE kind = ?)", k); err != nil {
			return nil, fmt.Errorf("configure search: unindex kind %d: %w", k, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM search_kinds WHERE kind = ?", k); err != nil {
			return nil, fmt.Errorf("configure search: unindex kind %d: %w", k, err)
		}
	}
	for _, k := range want {
		if slices.Contains(have, k) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events_search (docid, content)
			SELECT seq, json_extract(raw, '$.content') FROM events WHERE kind = ?`, k); err != nil {
			return nil, fmt.Errorf("configure search: index kind %d: %w", k, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO search_kinds (kind) VALUES (?)", k); err != nil {
			return nil, fmt.Errorf("configure search: index kind %d: %w", k, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("configure search: commit: %w", err)
	}
	return want, nil
}

// buildSearchQuery turns a filter with Search into a query of candidate
// rows (seq, created_at, id, matchinfo), most recently stored first, for
// runSearch to rank. ok is false when the filter can match nothing.
func buildSearchQuery(f *nostr.Filter, now int64) (q builtQuery, ok bool, err error) {
	if f.Limit <= 0 && f.LimitZero {
		return q, false, nil
	}
	expr, _, ok := matchExpr(f.Search)
	if !ok {
		return q, false, nil
	}
	var b queryBuilder
	b.sql.WriteString(`SELECT e.seq, e.created_at, e.id, matchinfo(events_search, 'pcnalx')
		FROM events_search JOIN events AS e ON e.seq = events_search.docid`)
	b.cond("events_search MATCH ?", expr)
	if !filterConds(&b, f) {
		return q, false, nil
	}
	b.cond("(e.expiration IS NULL OR e.expiration > ?)", now)
	b.sql.WriteString(" ORDER BY events_search.docid DESC LIMIT ?")
	b.args = append(b.args, maxSearchCandidates)
	if len(b.args) > maxParams {
		return q, false, fmt.Errorf("%d values in one filter: %w", len(b.args), storage.ErrBadQuery)
	}
	return builtQuery{sql: b.sql.String(), args: b.args, search: true, limit: f.Limit}, true, nil
}

// runSearch ranks the candidates of a search query by relevance (BM25),
// keeps the best q.limit, and reads their JSON, appending them to out in
// rank order.
func runSearch(ctx context.Context, tx *sql.Tx, q builtQuery, seen map[[32]byte]struct{}, out *[]row) error {
	rs, err := tx.QueryContext(ctx, q.sql, q.args...)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	type candidate struct {
		row
		seq int64
	}
	var cands []candidate
	var id, info sql.RawBytes
	for rs.Next() {
		var c candidate
		if err := rs.Scan(&c.seq, &c.createdAt, &id, &info); err != nil {
			rs.Close()
			return fmt.Errorf("search: scan: %w", err)
		}
		copy(c.id[:], id)
		c.score, c.ranked = bm25(info), true
		cands = append(cands, c)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("search: %w", err)
	}
	slices.SortFunc(cands, func(a, b candidate) int { return compareRows(a.row, b.row) })
	if q.limit > 0 && len(cands) > q.limit {
		cands = cands[:q.limit]
	}

	st, err := tx.PrepareContext(ctx, "SELECT raw FROM events WHERE seq = ?")
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	defer st.Close()
	for _, c := range cands {
		if seen != nil {
			if _, dup := seen[c.id]; dup {
				continue
			}
			seen[c.id] = struct{}{}
		}
		if err := st.QueryRowContext(ctx, c.seq).Scan(&c.raw); err != nil {
			return fmt.Errorf("search: read event: %w", err)
		}
		*out = append(*out, c.row)
	}
	return nil
}

// BM25 parameters, the usual ones.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// bm25 scores one row from FTS4's matchinfo 'pcnalx' (one column): the sum
// over the search words of idf × saturated term frequency, normalised by
// the length of the content against the average.
func bm25(mi []byte) float64 {
	n := len(mi) / 4
	u := func(i int) float64 {
		if i >= n {
			return 0
		}
		return float64(binary.NativeEndian.Uint32(mi[4*i:]))
	}
	phrases, cols := int(u(0)), int(u(1))
	if cols != 1 {
		return 0
	}
	docs, avgLen, length := u(2), u(3), u(4)
	if avgLen <= 0 {
		avgLen = 1
	}
	norm := bm25K1 * (1 - bm25B + bm25B*length/avgLen)
	score := 0.0
	for p := range phrases {
		x := 5 + 3*p
		tf, withHits := u(x), u(x+2)
		// Lucene's idf, which stays positive for common words.
		idf := math.Log(1 + (docs-withHits+0.5)/(withHits+0.5))
		score += idf * tf * (bm25K1 + 1) / (tf + norm)
	}
	return score
}

// compareRank orders ranked (search) rows before others, the best score
// first; 0 leaves the order to created_at and id.
func compareRank(a, b row) int {
	switch {
	case a.ranked && !b.ranked:
		return -1
	case !a.ranked && b.ranked:
		return 1
	case a.ranked:
		return cmp.Compare(b.score, a.score)
	}
	return 0
}

package postgres

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
)

// Query runs every filter in one SQL statement, so in one snapshot, with the
// watermark read in the same statement; see storage.Store.
func (s *Store) Query(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	rows, watermark, err := s.read(ctx, filters)
	s.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	for i := range rows {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		if err := fn(rows[i].raw); err != nil {
			return 0, err
		}
	}
	return watermark, nil
}

type row struct {
	id        [32]byte
	createdAt int64
	score     float64 // relevance of a search result
	ranked    bool    // a search result, ordered by score
	raw       []byte
}

// compareRows orders search results first, by relevance, then newest first,
// then by lowest id.
func compareRows(a, b row) int {
	switch {
	case a.ranked && !b.ranked:
		return -1
	case !a.ranked && b.ranked:
		return 1
	case a.ranked:
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(b.createdAt, a.createdAt); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}

// queryCols are what every branch of a query statement returns: id,
// created_at, relevance (search only), the JSON, and the watermark (only
// its own branch).
const (
	queryCols    = "e.id, e.created_at, NULL::float8, e.raw, NULL::bigint"
	watermarkRow = "SELECT NULL::bytea, NULL::bigint, NULL::float8, NULL::bytea, (SELECT coalesce(max(seq), 0) FROM events)"
)

// buildQuery returns the statement serving filters: the watermark's row and
// one parenthesised branch per filter that can match, joined by UNION ALL.
func buildQuery(filters []nostr.Filter, now int64) (string, []any) {
	var p params
	var b strings.Builder
	b.WriteString(watermarkRow)
	for i := range filters {
		f := &filters[i]
		limit, ok := limitOf(f)
		if !ok {
			continue
		}
		fp, ok := parseFilter(f)
		if !ok {
			continue
		}
		var branch string
		if f.Search != "" {
			if branch, ok = searchBranch(&p, &fp, f.Search, now, limit); !ok {
				continue
			}
		} else {
			branch = selectFilter(&p, &fp, now, queryCols, true, limit)
		}
		b.WriteString(" UNION ALL (")
		b.WriteString(branch)
		b.WriteString(")")
	}
	return b.String(), p.args
}

// searchBranch is the branch of a search filter: the newest
// maxSearchCandidates matches, ranked, the best limit of them (0: all);
// the JSON is read for those only. Only events of the indexed kinds have a
// vector, so with search off nothing matches.
func searchBranch(p *params, fp *filterParts, search string, now int64, limit int) (string, bool) {
	query, ok := searchQuery(search)
	if !ok {
		return "", false
	}
	q := "(" + p.add(query) + "::text)::tsquery"
	var w where
	w.and("e.search @@ " + q)
	filterConds(&w, p, fp, now)
	sql := fmt.Sprintf(`SELECT c.id, c.created_at, c.score, e.raw, NULL::bigint FROM (
		SELECT m.seq, m.id, m.created_at, ts_rank(m.search, %s, %d)::float8 AS score FROM (
			SELECT e.seq, e.id, e.created_at, e.search FROM events AS e%s ORDER BY e.seq DESC LIMIT %s
		) AS m ORDER BY score DESC, m.created_at DESC, m.id`, q, rankNormalization, w.String(), p.add(maxSearchCandidates))
	if limit > 0 {
		sql += " LIMIT " + p.add(limit)
	}
	sql += ") AS c JOIN events AS e ON e.seq = c.seq"
	return sql, true
}

// read runs the query statement and returns its rows merged, without
// repeats, in order, and the watermark.
func (s *Store) read(ctx context.Context, filters []nostr.Filter) ([]row, int64, error) {
	sql, args := buildQuery(filters, time.Now().Unix())
	rs, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, queryErr(ctx, err)
	}
	var (
		out       []row
		watermark int64
		id, raw   []byte
		created   *int64
		score     *float64
		wm        *int64
	)
	seen := map[[32]byte]bool{}
	_, err = pgx.ForEachRow(rs, []any{&id, &created, &score, &raw, &wm}, func() error {
		if wm != nil {
			watermark = *wm
			return nil
		}
		if len(id) != 32 || created == nil {
			return fmt.Errorf("row with a %d-byte id", len(id))
		}
		r := row{id: [32]byte(id), createdAt: *created, raw: raw}
		if score != nil {
			r.score, r.ranked = *score, true
		}
		if len(filters) > 1 {
			if seen[r.id] {
				return nil
			}
			seen[r.id] = true
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, 0, queryErr(ctx, err)
	}
	// One filter's rows come in order, unless it is a search (ranked rows
	// are joined with their JSON after ranking).
	if !slices.IsSortedFunc(out, compareRows) {
		slices.SortFunc(out, compareRows)
	}
	return out, watermark, nil
}

// queryErr says why a query failed: a cancelled context, rather than what
// the driver saw of it.
func queryErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("query: %w", ctxErr)
	}
	return fmt.Errorf("query: %w", err)
}

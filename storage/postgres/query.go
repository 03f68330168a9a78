package postgres

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
)

// A Query reads its events a page at a time, so that what it holds in
// memory is bounded however many events match and however slowly the
// caller takes them, and it holds no connection (and no snapshot) while
// the caller takes them.
//
// The first page is one statement: the watermark and a branch per filter,
// so one snapshot and one round trip, which is all most queries need. A
// filter whose results did not fit goes on in a later statement after the
// last row it read, in the results' order (created_at descending, then
// id), among the events with a sequence number up to the watermark. Since
// saves commit in seq order (the write lock, see save.go), those are
// exactly the events of the first snapshot, less what was deleted in
// between; an event stored later is never among them (the relay sends it
// live). Each branch reads at most pageRows rows, of which a stream keeps
// its share of PageBytes (the rest are read again with the next page).
//
// Search results are ranked in the first statement (ids, scores, no JSON);
// their JSON is read in later statements, a page at a time, best first. A
// result deleted since the ranking is passed over.
//
// Several filters are merged as they are read, as in the SQLite engine:
// each is a stream in the same order, the smallest head goes first, a
// stream that runs dry while the database holds more is read on first, and
// an event that matches several filters comes from each stream with the
// same key, so its repeats are adjacent.

// DefaultPageBytes is the default of Options.PageBytes.
const DefaultPageBytes = 1 << 20

// pageRows bounds the rows one branch of a page reads: about a page of
// notes, so that an answer past a page reads little it lets go.
const pageRows = 500

type row struct {
	id        [32]byte
	createdAt int64
	score     float64 // relevance of a search result
	ranked    bool    // a search result, ordered by score
	raw       []byte
	seq       int64 // a search result's, to read its JSON
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

// stream is one filter's results on their way to the caller.
type stream struct {
	fp     filterParts
	search string // the tsquery of a search filter, "" for others
	ranked []row  // a search: the results still to read, best first, no JSON
	rows   []row  // read and not handed on yet, in order
	after  *row   // where the next page starts: the last row read
	left   int    // rows the filter's limit still allows; -1: no limit
	asked  int    // rows the last page of a plain filter read at most
	more   bool   // the database may hold more of its rows
}

// pager is one Query.
type pager struct {
	s         *Store
	pool      *pgxpool.Pool // the primary's, or the replica's (Options.ReadURL)
	now       int64
	streams   []*stream
	watermark int64
	first     bool // the first page is not read yet
}

// Query runs the filters a page at a time; see storage.Store and above.
// It reads from the replica when there is one (Options.ReadURL).
func (s *Store) Query(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) (int64, error) {
	return s.query(ctx, s.read, filters, fn)
}

// query is Query on pool.
func (s *Store) query(ctx context.Context, pool *pgxpool.Pool, filters []nostr.Filter, fn func(raw []byte) error) (int64, error) {
	p := &pager{s: s, pool: pool, now: time.Now().Unix(), first: true}
	for i := range filters {
		if st, ok := newStream(&filters[i]); ok {
			p.streams = append(p.streams, st)
		}
	}
	if err := p.read(ctx, p.streams); err != nil {
		return 0, err
	}
	var (
		last   row // the last row handed on, for repeats of several filters
		any    bool
		ranked map[[32]byte]bool // ranked rows handed on, when search and other filters mix
		dry    []*stream
	)
	several := len(p.streams) > 1
	if several && slices.ContainsFunc(p.streams, func(st *stream) bool { return st.search != "" }) {
		ranked = map[[32]byte]bool{}
	}
	for {
		dry = dry[:0]
		for _, st := range p.streams {
			if len(st.rows) == 0 && st.more {
				dry = append(dry, st)
			}
		}
		if len(dry) > 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("query: %w", err)
			}
			if err := p.read(ctx, dry); err != nil {
				return 0, err
			}
			continue
		}
		var next *stream
		for _, st := range p.streams {
			if len(st.rows) > 0 && (next == nil || compareRows(st.rows[0], next.rows[0]) < 0) {
				next = st
			}
		}
		if next == nil {
			return p.watermark, nil
		}
		r := next.rows[0]
		next.rows[0] = row{} // the JSON is the caller's now
		next.rows = next.rows[1:]
		if several {
			if any && compareRows(last, r) == 0 {
				continue
			}
			last, any = r, true
			// Ranked rows all come first, so the set holds only theirs.
			if ranked != nil {
				if ranked[r.id] {
					continue
				}
				if r.ranked {
					ranked[r.id] = true
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		if err := fn(r.raw); err != nil {
			return 0, err
		}
	}
}

// pageSQLFor returns the statement of the first page of filters, or with
// after of the page after that key (for plan tests).
func (s *Store) pageSQLFor(filters []nostr.Filter, now int64, after *row) (string, []any) {
	p := &pager{s: s, now: now, first: after == nil, watermark: 1 << 40}
	for i := range filters {
		if st, ok := newStream(&filters[i]); ok {
			st.after = after
			p.streams = append(p.streams, st)
		}
	}
	return p.pageSQL(p.streams)
}

// newStream prepares a filter; ok is false when it can match nothing.
func newStream(f *nostr.Filter) (*stream, bool) {
	limit, ok := limitOf(f)
	if !ok {
		return nil, false
	}
	fp, ok := parseFilter(f)
	if !ok {
		return nil, false
	}
	st := &stream{fp: fp, left: -1, more: true}
	if limit > 0 {
		st.left = limit
	}
	if f.Search != "" {
		if st.search, ok = searchQuery(f.Search); !ok {
			return nil, false
		}
	}
	return st, true
}

// The columns of every branch of a page's statement: the stream's number
// (-1 for the watermark's row), id, created_at, relevance (search only),
// the JSON, and n: the watermark or a search result's seq.
const watermarkRow = "SELECT -1, NULL::bytea, NULL::bigint, NULL::float8, NULL::bytea, (SELECT coalesce(max(seq), 0) FROM events)"

// pageSQL is the statement reading the next page of streams (numbered by
// their index in p.streams): with the watermark and the searches' ranking
// on the first page.
func (p *pager) pageSQL(streams []*stream) (string, []any) {
	var args params
	var b strings.Builder
	if p.first {
		b.WriteString(watermarkRow)
	}
	for _, st := range streams {
		k := strconv.Itoa(slices.Index(p.streams, st))
		var branch string
		switch {
		case st.search != "" && p.first:
			branch = rankBranch(&args, st, k, p.now)
		case st.search != "":
			branch = rankedJSONBranch(&args, st, k)
		default:
			branch = plainBranch(&args, st, k, p.now, p.watermark)
		}
		if b.Len() > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("(" + branch + ")")
	}
	return b.String(), args.args
}

// plainBranch reads the next rows of a filter without search, up to
// pageRows (read merges up to its share of bytes of them, see there).
func plainBranch(p *params, st *stream, k string, now, watermark int64) string {
	var after *pageKey
	if st.after != nil {
		after = &pageKey{st.after.createdAt, st.after.id, watermark}
	}
	limit := pageRows
	if st.left >= 0 {
		limit = min(limit, st.left)
	}
	st.asked = limit
	return selectFilter(p, &st.fp, now, k+", e.id, e.created_at, NULL::float8, e.raw, NULL::bigint", true, limit, after)
}

// rankBranch ranks a search filter's matches: the newest
// maxSearchCandidates of them, the best limit (all, without one), with
// their seq and no JSON. Only events of the indexed kinds have a vector,
// so with search off nothing matches.
func rankBranch(p *params, st *stream, k string, now int64) string {
	q := "(" + p.add(st.search) + "::text)::tsquery"
	var w where
	w.and("e.search @@ " + q)
	filterConds(&w, p, &st.fp, now)
	sql := fmt.Sprintf(`SELECT %s, m.id, m.created_at, ts_rank(m.search, %s, %d)::float8 AS score, NULL::bytea, m.seq FROM (
		SELECT e.seq, e.id, e.created_at, e.search FROM events AS e%s ORDER BY e.seq DESC LIMIT %s
	) AS m ORDER BY score DESC, m.created_at DESC, m.id`, k, q, rankNormalization, w.String(), p.add(maxSearchCandidates))
	if st.left > 0 {
		sql += " LIMIT " + p.add(st.left)
	}
	return sql
}

// rankedJSONBranch reads the JSON of the next ranked results, best first,
// up to pageRows (read keeps up to its share of bytes of them).
func rankedJSONBranch(p *params, st *stream, k string) string {
	n := min(len(st.ranked), pageRows)
	seqs, scores := make([]int64, n), make([]float64, n)
	for i, r := range st.ranked[:n] {
		seqs[i], scores[i] = r.seq, r.score
	}
	return "SELECT " + k + ", e.id, e.created_at, u.score, e.raw, e.seq " +
		"FROM unnest(" + p.add(seqs) + "::bigint[], " + p.add(scores) + "::float8[]) WITH ORDINALITY AS u (seq, score, ord) " +
		"JOIN events AS e ON e.seq = u.seq ORDER BY u.ord"
}

// read reads the next page of streams in one statement.
func (p *pager) read(ctx context.Context, streams []*stream) error {
	if len(streams) == 0 && !p.first {
		return nil
	}
	if err := p.s.enter(); err != nil {
		return err
	}
	defer p.s.mu.RUnlock()
	sql, args := p.pageSQL(streams)
	if sql == "" {
		return nil
	}
	// Each page is bounded on its own: the caller may take its time
	// between pages.
	ctx, cancel := p.s.bounded(ctx)
	defer cancel()
	rs, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return queryErr(ctx, err)
	}
	// Each stream keeps rows up to its share of the page's bytes (at
	// least one); the statement's further rows of it are read and let go,
	// and read again with the next page. Most answers fit in one page, so
	// cutting here costs less than cutting in SQL.
	share := max(1, p.s.pageBytes/max(1, len(streams)))
	var (
		k          int
		id, raw    []byte
		created, n *int64
		score      *float64
		got        = map[*stream]int{}   // rows read, per stream
		kept       = map[*stream]int{}   // bytes kept, per stream
		cut        = map[*stream]bool{}  // full: rows past the share let go
		lastSeq    = map[*stream]int64{} // the last search result whose JSON was kept
	)
	_, err = pgx.ForEachRow(rs, []any{&k, &id, &created, &score, &raw, &n}, func() error {
		if k < 0 {
			p.watermark = *n
			return nil
		}
		if k >= len(p.streams) || len(id) != 32 || created == nil {
			return fmt.Errorf("row of stream %d with a %d-byte id", k, len(id))
		}
		st := p.streams[k]
		got[st]++
		r := row{id: [32]byte(id), createdAt: *created, raw: raw}
		if score != nil {
			r.score, r.ranked = *score, true
		}
		if st.search != "" && raw == nil { // the ranking
			r.seq = *n
			st.ranked = append(st.ranked, r)
			return nil
		}
		if cut[st] {
			return nil
		}
		st.rows = append(st.rows, r)
		if st.search != "" {
			lastSeq[st] = *n
		}
		if kept[st] += len(raw); kept[st] >= share {
			cut[st] = true
		}
		return nil
	})
	if err != nil {
		return queryErr(ctx, err)
	}
	for _, st := range streams {
		switch {
		case st.search != "" && p.first:
			st.more = len(st.ranked) > 0
		case st.search != "":
			// Done with the results up to the last whose JSON was kept
			// (those before it that did not come were deleted), or with
			// all that were asked for when none came.
			done := min(len(st.ranked), pageRows)
			if last, ok := lastSeq[st]; ok {
				done = slices.IndexFunc(st.ranked, func(r row) bool { return r.seq == last }) + 1
			}
			st.ranked = st.ranked[done:]
			st.more = len(st.ranked) > 0
		default:
			n := len(st.rows) // kept: all of the page's rows are this stream's
			if st.left > 0 {
				st.left -= n
			}
			st.more = st.left != 0 && n > 0 && (cut[st] || got[st] == st.asked)
			if st.more {
				last := st.rows[len(st.rows)-1]
				last.raw = nil
				st.after = &last
			}
		}
	}
	p.first = false
	return nil
}

// queryErr says why a query failed: a cancelled context, rather than what
// the driver saw of it.
func queryErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("query: %w", ctxErr)
	}
	return fmt.Errorf("query: %w", err)
}

package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/mattn/go-sqlite3"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/unicode61"
)

// NIP-50 search on an FTS4 table (events_search, migration 3). FTS4 rather
// than FTS5 because mattn/go-sqlite3 compiles FTS4 in by default and FTS5
// only with a build tag, which plain `go test ./...` would not set.
//
// The index holds the content of the events of the kinds in search_kinds,
// keyed by seq. It follows the events instead of being written with them:
// indexing inside the writer's transaction cost the single writer more than
// storing the event. search_state.indexed (migration 4) is the seq up to
// which the index is complete; the events above it, the tail, are searched
// without it: their content is matched in Go by unicode61.Matches,
// which splits and folds words exactly as the index's tokenizer does, in
// the same read snapshot as the index. So a stored event is searchable as
// soon as it is committed, indexed or not, and search results are the same
// either way. A delete trigger removes a deleted or replaced event from the
// index with its row.
//
// Who moves the watermark: IndexSearch, called by the store's own
// background work (searchIndexer in upkeep.go), indexes the tail in
// chunks, one INSERT ... SELECT each: FTS4 writes its pending terms out as
// a new segment at every statement, which made the old insert trigger cost
// a segment per event. Save never indexes: even a lone event's index write
// (a segment, and FTS4's incremental merging) held the writer long enough
// to show in live delivery latency (wisp bench fan-out p99: 9-16 ms with
// it, 5-9 without).

var _ storage.Searcher = (*Store)(nil)

// maxSearchCandidates bounds the work of one search filter: relevance is
// ranked among at most this many matches, the most recently stored first.
const maxSearchCandidates = 10000

// loadedBatch: a Save batch of more events means a queue at the writer
// (it batches whatever waits when it gets to it), so clients are writing
// hard and IndexSearch had better wait; see LoadedBatches.
const loadedBatch = 8

// searchMatchFunc is the SQL function (searchMatch, registered on every
// connection) that matches a tail event's content: the search's terms
// joined by spaces, and the content.
const searchMatchFunc = "wisp_search_match"

// tailContent is the content of the event e as the index would get it.
const tailContent = "CAST(json_extract(e.raw, '$.content') AS TEXT)"

// searchMatch is searchMatchFunc: whether content holds every one of the
// space-separated terms. Terms never hold a space (it separates words).
func searchMatch(terms string, content any) bool {
	var text string
	switch v := content.(type) {
	case string:
		text = v
	case []byte:
		text = string(v)
	default: // NULL: no content, nothing to find
		return false
	}
	var arr [unicode61.MaxTerms]string
	ts := arr[:0]
	for t := range strings.SplitSeq(terms, " ") {
		ts = append(ts, t)
	}
	return unicode61.Matches(ts, text)
}

// SearchKinds returns the kinds whose content is indexed for search.
func (s *Store) SearchKinds() []int { return slices.Clone(s.searchKinds) }

// SearchMatcher matches live events as a stored search finds them: an
// indexed kind, and the search's words in the content as the index's
// tokenizer splits it (unicode61 reproduces it).
func (s *Store) SearchMatcher(search string) func(ev *nostr.Event) bool {
	terms, kinds := unicode61.Terms(search), s.searchKinds
	return func(ev *nostr.Event) bool {
		return slices.Contains(kinds, ev.Kind) && unicode61.Matches(terms, ev.Content)
	}
}

// indexRangeSQL indexes the events of the search kinds with seq in (?, ?].
// Ascending seq order is what FTS4 adds cheapest.
const indexRangeSQL = `INSERT INTO events_search (docid, content)
	SELECT seq, json_extract(raw, '$.content') FROM events
	WHERE seq > ? AND seq <= ? AND kind IN (SELECT kind FROM search_kinds)
	ORDER BY seq`

// IndexSearch indexes the events above the index's watermark, up to chunk
// of them (the search kinds' content is indexed, other kinds only passed
// over), in one write transaction, and returns how many it passed; fewer
// than chunk means the index has caught up. A chunk holds the writer for
// its duration (BenchmarkIndexSearch: 10-13 µs per note); searchIndexer
// decides when (see SearchLag and LoadedBatches), and Close runs it until
// it returns less than chunk.
func (s *Store) IndexSearch(ctx context.Context, chunk int) (int, error) {
	if chunk <= 0 {
		return 0, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("index search: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	var from int64
	if err := tx.QueryRowContext(ctx, "SELECT indexed FROM search_state").Scan(&from); err != nil {
		return 0, fmt.Errorf("index search: read watermark: %w", err)
	}
	var (
		to sql.NullInt64
		n  int
	)
	if err := tx.QueryRowContext(ctx, "SELECT max(seq), count(*) FROM (SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
		from, chunk).Scan(&to, &n); err != nil {
		return 0, fmt.Errorf("index search: find chunk: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, indexRangeSQL, from, to.Int64); err != nil {
		return 0, fmt.Errorf("index search: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE search_state SET indexed = ?", to.Int64); err != nil {
		return 0, fmt.Errorf("index search: move watermark: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("index search: commit: %w", err)
	}
	return n, nil
}

// SearchLag returns how far the search index is behind the events, in
// sequence numbers: at least the number of events not indexed yet.
func (s *Store) SearchLag(ctx context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	var lag int64
	err := s.r.QueryRowContext(ctx,
		"SELECT max(0, (SELECT coalesce(max(seq), 0) FROM events) - indexed) FROM search_state").Scan(&lag)
	if err != nil {
		return 0, fmt.Errorf("search lag: %w", err)
	}
	return lag, nil
}

// LoadedBatches returns how many Save batches since Open had more than
// loadedBatch events. The writer batches whatever waits for it, so a big
// batch means a queue: sampled twice, a change says the relay is under
// write load and indexing had better wait.
func (s *Store) LoadedBatches() int64 { return s.loadedBatches.Load() }

// configureSearch reads the indexed kinds and, when want is not nil and
// differs, indexes the stored events of the kinds added (up to the
// watermark: the tail is IndexSearch's) and drops those of the kinds
// removed, in one transaction. It returns the kinds now indexed.
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
	if len(have) == 0 {
		// With no kind indexed the index is complete up to any seq: start
		// from the newest event, so that all of the new kinds' stored events
		// are indexed now, as when search was first turned on, rather than
		// left to a tail that every search would read.
		if _, err := tx.ExecContext(ctx,
			"UPDATE search_state SET indexed = max(indexed, (SELECT coalesce(max(seq), 0) FROM events))"); err != nil {
			return nil, fmt.Errorf("configure search: move watermark: %w", err)
		}
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
			SELECT seq, json_extract(raw, '$.content') FROM events
			WHERE kind = ? AND seq <= (SELECT indexed FROM search_state) ORDER BY seq`, k); err != nil {
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

// buildSearchQuery turns a filter with Search into two queries of
// candidate rows, most recently stored first, for runSearch to rank: the
// indexed matches (seq, created_at, id, matchinfo) and the tail's (seq,
// created_at, id, content). ok is false when the filter can match nothing.
func buildSearchQuery(f *nostr.Filter, now int64) (q builtQuery, ok bool, err error) {
	if f.Limit <= 0 && f.LimitZero {
		return q, false, nil
	}
	expr, terms, ok := matchExpr(f.Search)
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

	// The tail's rows that may match; runSearch matches them in Go, which
	// costs less than calling back into Go from SQL for each.
	var t queryBuilder
	t.sql.WriteString("SELECT e.seq, e.created_at, e.id, " + tailContent + " FROM events AS e NOT INDEXED")
	tailConds(&t, f, terms, false)
	t.cond("(e.expiration IS NULL OR e.expiration > ?)", now)
	t.sql.WriteString(" ORDER BY e.seq DESC")
	if n := max(len(b.args), len(t.args)); n > maxParams {
		return q, false, fmt.Errorf("%d values in one filter: %w", n, storage.ErrBadQuery)
	}
	return builtQuery{sql: b.sql.String(), args: b.args, search: true, limit: f.Limit,
		terms: terms, tailSQL: t.sql.String(), tailArgs: t.args}, true, nil
}

// tailConds adds to b, on the events row "e", the conditions of a search
// filter f over the tail: above the index's watermark, of a search kind,
// f's other fields, and the content's words: every one of terms with
// match, else only a cheap test that rules out most contents without them
// (unicode61.TermSubstring). The watermark is read in the statement, so it is
// the snapshot's, the one the index's half of the search sees too. NOT
// INDEXED on e keeps the planner on the seq range (the tail is small)
// rather than on an index over all events.
func tailConds(b *queryBuilder, f *nostr.Filter, terms []string, match bool) {
	b.cond("e.seq > (SELECT indexed FROM search_state)")
	b.cond("e.kind IN (SELECT kind FROM search_kinds)")
	filterConds(b, f) // its false was seen by the caller's first pass
	for _, t := range terms {
		if unicode61.TermSubstring(t) { // a word: no LIKE wildcard in it
			b.cond(tailContent+" LIKE ?", "%"+t+"%")
		}
	}
	if match {
		b.cond(searchMatchFunc+"(?, "+tailContent+")", strings.Join(terms, " "))
	}
}

// searchStats are the collection statistics BM25 needs.
type searchStats struct {
	docs, avgLen float64
	hits         []float64 // per term, the documents holding it
}

// rankSearch ranks the candidates of a search query by relevance (BM25)
// in the read transaction open on c and returns the best q.limit of them
// in rank order, without their JSON (pages.go reads it).
//
// Ranking the tail: its matches are scored like indexed ones, by the same
// BM25 over the same words (unicode61.CountTerms counts them as the index
// does), with the index's collection statistics extended by the tail's
// matches. Ranking therefore does not depend on whether an event has been
// indexed yet, beyond the small drift of those statistics. The candidates
// are the maxSearchCandidates most recently stored matches: the tail's
// first, since it is newer than everything indexed.
func rankSearch(ctx context.Context, c *sqlite3.SQLiteConn, q builtQuery) ([]row, error) {
	type candidate struct {
		row
		tf     []float64
		length float64
	}
	var cands []candidate
	dest := make([]driver.Value, 4)
	// scanKey reads the seq, created_at and id every candidate query starts with.
	scanKey := func(c *candidate) error {
		c.seq, _ = dest[0].(int64)
		c.createdAt, _ = dest[1].(int64)
		id, _ := dest[2].([]byte)
		if len(id) != 32 {
			return fmt.Errorf("row with a %d-byte id", len(id))
		}
		copy(c.id[:], id)
		return nil
	}

	args, err := driverArgs(q.tailArgs)
	if err != nil {
		return nil, fmt.Errorf("search tail: %w", err)
	}
	tf := make([]int, len(q.terms))
	var tailLen float64
	errEnough := errors.New("enough candidates")
	err = queryRows(ctx, c, q.tailSQL, args, dest, func() error {
		var content string // the bytes as stored, as the index reads them
		switch v := dest[3].(type) {
		case string:
			content = v
		case []byte:
			content = string(v)
		}
		var cd candidate
		cd.length = float64(unicode61.CountTerms(q.terms, content, tf))
		if slices.Contains(tf, 0) {
			return nil
		}
		if err := scanKey(&cd); err != nil {
			return err
		}
		cd.tf = make([]float64, len(tf))
		for i, n := range tf {
			cd.tf[i] = float64(n)
		}
		tailLen += cd.length
		cands = append(cands, cd)
		if len(cands) >= maxSearchCandidates {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("search tail: %w", err)
	}
	tailDocs := len(cands)

	var stats searchStats
	if room := maxSearchCandidates - len(cands); room > 0 {
		qargs := slices.Clone(q.args)
		qargs[len(qargs)-1] = room
		args, err := driverArgs(qargs)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		err = queryRows(ctx, c, q.sql, args, dest, func() error {
			var cd candidate
			if err := scanKey(&cd); err != nil {
				return err
			}
			info, _ := dest[3].([]byte)
			cd.tf, cd.length = parseMatchinfo(info, len(q.terms), &stats)
			cands = append(cands, cd)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
	}
	// Every tail match holds every term; index stats are zero if nothing
	// indexed matched.
	if tailDocs > 0 {
		if stats.hits == nil {
			stats.hits = make([]float64, len(q.terms))
		}
		n := float64(tailDocs)
		stats.avgLen = (stats.avgLen*stats.docs + tailLen) / (stats.docs + n)
		stats.docs += n
		for i := range stats.hits {
			stats.hits[i] += n
		}
	}
	out := make([]row, len(cands))
	for i := range cands {
		cands[i].score, cands[i].ranked = bm25(&stats, cands[i].tf, cands[i].length), true
		out[i] = cands[i].row
	}
	slices.SortFunc(out, compareRows)
	if q.limit > 0 && len(out) > q.limit {
		out = out[:q.limit]
	}
	return slices.Clip(out), nil
}

// BM25 parameters, the usual ones.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// parseMatchinfo reads FTS4's matchinfo 'pcnalx' (one column) of a row with
// terms phrases: the row's occurrences of each term and its length in
// tokens, and the index's statistics into st (the same in every row).
func parseMatchinfo(mi []byte, terms int, st *searchStats) (tf []float64, length float64) {
	n := len(mi) / 4
	u := func(i int) float64 {
		if i >= n {
			return 0
		}
		return float64(binary.NativeEndian.Uint32(mi[4*i:]))
	}
	tf = make([]float64, terms)
	if phrases, cols := int(u(0)), int(u(1)); phrases != terms || cols != 1 {
		return tf, 0
	}
	st.docs, st.avgLen = u(2), u(3)
	if st.hits == nil {
		st.hits = make([]float64, terms)
	}
	for p := range terms {
		x := 5 + 3*p
		tf[p], st.hits[p] = u(x), u(x+2)
	}
	return tf, u(4)
}

// bm25 scores a document: the sum over the search words of idf × saturated
// term frequency, normalised by the length of the content against the
// average.
func bm25(st *searchStats, tf []float64, length float64) float64 {
	if len(st.hits) != len(tf) {
		return 0 // no statistics: a matchinfo not of this search
	}
	avgLen := st.avgLen
	if avgLen <= 0 {
		avgLen = 1
	}
	norm := bm25K1 * (1 - bm25B + bm25B*length/avgLen)
	score := 0.0
	for p, f := range tf {
		withHits := st.hits[p]
		// Lucene's idf, which stays positive for common words.
		idf := math.Log(1 + (st.docs-withHits+0.5)/(withHits+0.5))
		score += idf * f * (bm25K1 + 1) / (f + norm)
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

package sqlite

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// maxParams bounds the parameters of one filter's statement, under SQLite's
// limit of 32766.
const maxParams = 30000

// row is one event read by a query.
type row struct {
	seq       int64 // set for search results
	createdAt int64
	id        [32]byte
	raw       []byte
	score     float64 // relevance of a search result
	ranked    bool    // a search result, ordered by score
}

// idSet remembers the ids of events already given, so that the results of
// several filters are merged without repeats. With one filter there is
// nothing to merge: the nil set finds no repeats and costs nothing.
type idSet map[[32]byte]struct{}

func newIDSet(filters int) idSet {
	if filters > 1 {
		return idSet{}
	}
	return nil
}

// first reports whether id is seen for the first time, and remembers it.
func (s idSet) first(id [32]byte) bool {
	if s == nil {
		return true
	}
	if _, dup := s[id]; dup {
		return false
	}
	s[id] = struct{}{}
	return true
}

// watermarkSQL is a read snapshot's watermark: the highest seq in it.
const watermarkSQL = "SELECT coalesce(max(seq), 0) FROM events"

// compareRows orders search results first, by relevance, then newest
// first, then by lowest id.
func compareRows(a, b row) int {
	if c := compareRank(a, b); c != 0 {
		return c
	}
	if c := cmp.Compare(b.createdAt, a.createdAt); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}

// selectEvents is what a query built by buildQuery reads: created_at, id
// and the JSON. The JSON is read as a BLOB: the driver then copies it
// into one []byte, where TEXT costs a string and a conversion.
const selectEvents = "SELECT e.created_at, e.id, CAST(e.raw AS BLOB)"

// builtQuery is one filter as SQL with its bound parameters.
type builtQuery struct {
	sql  string
	args []any
	// search: a NIP-50 query whose rows runSearch ranks, keeping the best
	// limit of them (0: all).
	search bool
	limit  int
	// A search's terms, and its query of the tail: the events the index
	// has not got to yet (see search.go).
	terms    []string
	tailSQL  string
	tailArgs []any
}

type tagCond struct {
	name   string
	values []string
}

// buildQuery turns a filter into one SELECT of (created_at, id, raw), newest
// first. ok is false when the filter can match nothing, following go-nostr's
// Filter.Matches: a nil list is no constraint, an empty one matches nothing.
// Beyond it: ids and authors that are not 64 lowercase hex match nothing, as
// does a tag key that is not one ASCII letter (only those are indexed), a
// search (NIP-50 is not supported) and limit 0 given explicitly.
//
// Values are always bound parameters; the SQL text depends only on the
// filter's shape, so the reader's statement cache is reused.
func buildQuery(f *nostr.Filter, now int64) (q builtQuery, ok bool, err error) {
	return buildPage(f, now, page{})
}

// page says which part of a filter's results a query reads: those after
// row after (nil: from the newest), at most limit of them (0: the filter's
// limit). See pages.go.
type page struct {
	after *row
	limit int
	// A probe's part of the results (probe.go): byCreated reads the
	// created_at index newest first, from the bound fromAt on when set;
	// belowAt keeps the results older than it.
	byCreated bool
	fromAt    *int64
	belowAt   *int64
}

// buildPage is buildQuery for one page of the filter's results.
func buildPage(f *nostr.Filter, now int64, p page) (q builtQuery, ok bool, err error) {
	if f.Search != "" || (f.Limit <= 0 && f.LimitZero) {
		return q, false, nil
	}
	var ids, authors, kinds []any
	if f.IDs != nil {
		if ids = hexArgs(f.IDs); len(ids) == 0 {
			return q, false, nil
		}
	}
	if f.Authors != nil {
		if authors = hexArgs(f.Authors); len(authors) == 0 {
			return q, false, nil
		}
	}
	if f.Kinds != nil {
		if len(f.Kinds) == 0 {
			return q, false, nil
		}
		ks := slices.Clone(f.Kinds)
		slices.Sort(ks)
		for _, k := range slices.Compact(ks) {
			kinds = append(kinds, k)
		}
	}
	var tags []tagCond
	for name, values := range f.Tags {
		if values == nil {
			continue
		}
		if !evkey.IndexedTagName(name) || len(values) == 0 {
			return q, false, nil
		}
		vs := slices.Clone(values)
		slices.Sort(vs)
		tags = append(tags, tagCond{name, slices.Compact(vs)})
	}
	if f.Since != nil && f.Until != nil && *f.Since > *f.Until {
		return q, false, nil
	}
	// The first tag condition may drive the query from the tags indexes: a
	// single-valued one is joined (its index then yields rows in order), a
	// multi-valued one becomes an IN subquery (a join would repeat events
	// that carry several of the values). Prefer single values, then the
	// usually selective e, a and p tags; sorting also makes the SQL text
	// independent of map order.
	slices.SortFunc(tags, func(a, b tagCond) int {
		return cmp.Or(
			cmp.Compare(min(len(a.values), 2), min(len(b.values), 2)),
			cmp.Compare(tagRank(a.name), tagRank(b.name)),
			strings.Compare(a.name, b.name))
	})

	var b queryBuilder
	b.sql.WriteString(selectEvents + " FROM events AS e")
	if p.byCreated {
		b.sql.WriteString(" INDEXED BY events_created")
	}
	order := "e.created_at"
	inSubquery := false
	if len(tags) > 0 && len(tags[0].values) == 1 {
		t := tags[0]
		tags = tags[1:]
		order = "t.created_at"
		b.sql.WriteString(" JOIN tags AS t ON t.seq = e.seq")
		b.cond("t.name = ?", t.name)
		b.cond("t.value = ?", t.values[0])
		// Repeated on t so that the tags indexes can take them as bounds.
		if kinds != nil {
			b.cond(inList("t.kind", len(kinds)), kinds...)
		}
		b.timeBounds("t.created_at", f)
	} else if len(tags) > 0 {
		t := tags[0]
		tags = tags[1:]
		var sub queryBuilder
		sub.sql.WriteString("e.seq IN (SELECT seq FROM tags")
		sub.cond("name = ?", t.name)
		sub.cond(inList("value", len(t.values)), strArgs(t.values)...)
		if kinds != nil {
			sub.cond(inList("kind", len(kinds)), kinds...)
		}
		sub.timeBounds("created_at", f)
		sub.sql.WriteString(")")
		b.cond(sub.sql.String(), sub.args...)
		inSubquery = true
	}
	if ids != nil {
		b.cond(inList("e.id", len(ids)), ids...)
	}
	if authors != nil {
		b.cond(inList("e.pubkey", len(authors)), authors...)
	}
	// Kinds and time bounds already inside the subquery are not repeated on
	// e: the planner would then walk events_kind or events_created and
	// probe the subquery for each row instead of reading just its rows.
	if !inSubquery {
		if kinds != nil {
			b.cond(inList("e.kind", len(kinds)), kinds...)
		}
		b.timeBounds("e.created_at", f)
	}
	for _, t := range tags {
		var sub queryBuilder
		sub.sql.WriteString("EXISTS (SELECT 1 FROM tags AS x")
		sub.cond("x.seq = e.seq")
		sub.cond("x.name = ?", t.name)
		sub.cond(inList("x.value", len(t.values)), strArgs(t.values)...)
		sub.sql.WriteString(")")
		b.cond(sub.sql.String(), sub.args...)
	}
	if p.fromAt != nil {
		b.cond("e.created_at >= ?", *p.fromAt)
	}
	if p.belowAt != nil {
		b.cond("e.created_at < ?", *p.belowAt)
	}
	if p.after != nil {
		// Keyset pagination in the order of the results: older, or as old
		// with a higher id. The plain bound lets the index range start there.
		b.cond(order+" <= ?", p.after.createdAt)
		b.cond("("+order+" < ? OR e.id > ?)", p.after.createdAt, p.after.id[:])
	}
	b.cond("(e.expiration IS NULL OR e.expiration > ?)", now)
	fmt.Fprintf(&b.sql, " ORDER BY %s DESC, e.id", order)
	limit := f.Limit
	if p.limit > 0 {
		limit = p.limit
	}
	if limit > 0 {
		b.sql.WriteString(" LIMIT ?")
		b.args = append(b.args, limit)
	}
	if len(b.args) > maxParams {
		return q, false, fmt.Errorf("%d values in one filter: %w", len(b.args), storage.ErrBadQuery)
	}
	return builtQuery{sql: b.sql.String(), args: b.args}, true, nil
}

// queryBuilder accumulates a WHERE clause and its arguments.
type queryBuilder struct {
	sql   strings.Builder
	args  []any
	where bool
}

// cond adds a WHERE condition with its arguments.
func (b *queryBuilder) cond(expr string, args ...any) {
	if b.where {
		b.sql.WriteString(" AND ")
	} else {
		b.sql.WriteString(" WHERE ")
		b.where = true
	}
	b.sql.WriteString(expr)
	b.args = append(b.args, args...)
}

func (b *queryBuilder) timeBounds(col string, f *nostr.Filter) {
	if f.Since != nil {
		b.cond(col+" >= ?", int64(*f.Since))
	}
	if f.Until != nil {
		b.cond(col+" <= ?", int64(*f.Until))
	}
}

// inList returns "col = ?" or "col IN (?, ?, ...)" for n values.
func inList(col string, n int) string {
	if n == 1 {
		return col + " = ?"
	}
	return col + " IN (?" + strings.Repeat(", ?", n-1) + ")"
}

// hexArgs decodes 64-hex values into distinct BLOB arguments, dropping those
// that cannot match any stored id or pubkey.
func hexArgs(values []string) []any {
	keys := make([][32]byte, 0, len(values))
	for _, v := range values {
		var k [32]byte
		if evkey.DecodeHex32(v, &k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	keys = slices.Compact(keys)
	out := make([]any, len(keys))
	for i := range keys {
		out[i] = keys[i][:]
	}
	return out
}

func strArgs(values []string) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

// tagRank orders tag names by how selective they usually are.
func tagRank(name string) int {
	if i := strings.Index("eapq", name); i >= 0 {
		return i
	}
	return 4
}

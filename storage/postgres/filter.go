package postgres

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// A filter becomes SQL whose text depends only on the filter's shape (which
// fields, one value or several), with every value a parameter, lists as
// arrays; pgx caches one prepared statement per text.

// params collects the arguments of one statement.
type params struct{ args []any }

// add appends an argument and returns its placeholder.
func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// where collects the conditions of one WHERE clause.
type where struct{ conds []string }

func (w *where) and(cond string) { w.conds = append(w.conds, cond) }

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// filterParts is a filter with its values decoded, deduplicated and sorted.
type filterParts struct {
	ids, authors [][]byte // nil: no condition
	kinds        []int32  // nil: no condition
	tags         []tagCond
	since, until *int64
}

type tagCond struct {
	name   string
	values [][]byte
}

// parseFilter decodes f. ok is false when f can match nothing, following
// go-nostr's Filter.Matches: a nil list is no constraint, an empty one
// matches nothing. Beyond it: ids and authors that are not 64 lowercase hex
// match nothing, as does a tag key that is not one ASCII letter (only those
// are indexed) and since after until. Search and limits are the caller's.
func parseFilter(f *nostr.Filter) (fp filterParts, ok bool) {
	if f.IDs != nil {
		if fp.ids = hexArgs(f.IDs); len(fp.ids) == 0 {
			return fp, false
		}
	}
	if f.Authors != nil {
		if fp.authors = hexArgs(f.Authors); len(fp.authors) == 0 {
			return fp, false
		}
	}
	if f.Kinds != nil {
		if len(f.Kinds) == 0 {
			return fp, false
		}
		for _, k := range f.Kinds {
			fp.kinds = append(fp.kinds, int32(k))
		}
		slices.Sort(fp.kinds)
		fp.kinds = slices.Compact(fp.kinds)
	}
	for name, values := range f.Tags {
		if values == nil {
			continue
		}
		if !evkey.IndexedTagName(name) || len(values) == 0 {
			return fp, false
		}
		vs := make([][]byte, len(values))
		for i, v := range values {
			vs[i] = append([]byte{}, v...)
		}
		slices.SortFunc(vs, bytes.Compare)
		fp.tags = append(fp.tags, tagCond{name, slices.CompactFunc(vs, bytes.Equal)})
	}
	// The first tag may drive the query from tags_value: prefer one with a
	// single value, then the usually selective e, a and p tags; sorting
	// also makes the SQL text independent of map order.
	slices.SortFunc(fp.tags, func(a, b tagCond) int {
		return cmp.Or(
			cmp.Compare(min(len(a.values), 2), min(len(b.values), 2)),
			cmp.Compare(tagRank(a.name), tagRank(b.name)),
			strings.Compare(a.name, b.name))
	})
	if f.Since != nil {
		v := int64(*f.Since)
		fp.since = &v
	}
	if f.Until != nil {
		v := int64(*f.Until)
		fp.until = &v
	}
	if fp.since != nil && fp.until != nil && *fp.since > *fp.until {
		return fp, false
	}
	return fp, true
}

// tagRank orders tag names by how selective they usually are.
func tagRank(name string) int {
	if i := strings.Index("eapq", name); i >= 0 {
		return i
	}
	return 4
}

// hexArgs decodes 64-hex values into distinct, sorted byte strings,
// dropping those that cannot match any stored id or pubkey.
func hexArgs(values []string) [][]byte {
	out := make([][]byte, 0, len(values))
	for _, v := range values {
		var k [32]byte
		if evkey.DecodeHex32(v, &k) {
			out = append(out, k[:])
		}
	}
	slices.SortFunc(out, bytes.Compare)
	return slices.CompactFunc(out, bytes.Equal)
}

// in is "col = $n" for one value, "col = ANY($n)" for several: an index
// scan on an equality yields its rows in index order, one on an array
// does not.
func in[T any](p *params, col string, values []T) string {
	if len(values) == 1 {
		return col + " = " + p.add(values[0])
	}
	return col + " = ANY(" + p.add(values) + ")"
}

func timeBounds(w *where, p *params, col string, fp *filterParts) {
	if fp.since != nil {
		w.and(col + " >= " + p.add(*fp.since))
	}
	if fp.until != nil {
		w.and(col + " <= " + p.add(*fp.until))
	}
}

// tagExists is the condition that the event e.seq (col) carries a tag.
func tagExists(p *params, col string, t tagCond) string {
	var w where
	w.and("x.seq = " + col)
	w.and("x.name = " + p.add(t.name))
	w.and(in(p, "x.value", t.values))
	return "EXISTS (SELECT 1 FROM tags AS x" + w.String() + ")"
}

// notExpired is the condition that e has not expired by now.
func notExpired(p *params, now int64) string {
	return "(e.expiration IS NULL OR e.expiration > " + p.add(now) + ")"
}

// selectFilter returns a SELECT of cols (over the events row "e") of the
// events matching fp and not expired by now, ordered by order (the rows'
// order, "" for none) and cut to limit (0: no limit). It picks the driving
// index as the SQLite engine does: a single-valued tag is joined, its
// index then yielding rows in order; a multi-valued one is an IN subquery
// (a join would repeat events carrying several of the values); otherwise
// the events indexes.
//
// after, when not nil, starts the rows after a key in that order, among
// the events stored up to a sequence number: a later page of a query.
func selectFilter(p *params, fp *filterParts, now int64, cols string, ordered bool, limit int, after *pageKey) string {
	var w where
	from := "events AS e"
	created := "e.created_at"
	tags := fp.tags
	inSubquery := false
	switch {
	case len(tags) > 0 && len(tags[0].values) == 1:
		t := tags[0]
		tags = tags[1:]
		from += " JOIN tags AS t ON t.seq = e.seq"
		created = "t.created_at"
		w.and("t.name = " + p.add(t.name))
		w.and("t.value = " + p.add(t.values[0]))
		// Repeated on t so that tags_value takes them as bounds.
		if fp.kinds != nil {
			w.and(in(p, "t.kind", fp.kinds))
		}
		timeBounds(&w, p, "t.created_at", fp)
	case len(tags) > 0:
		t := tags[0]
		tags = tags[1:]
		var sub where
		sub.and("name = " + p.add(t.name))
		sub.and(in(p, "value", t.values))
		if fp.kinds != nil {
			sub.and(in(p, "kind", fp.kinds))
		}
		timeBounds(&sub, p, "created_at", fp)
		w.and("e.seq IN (SELECT seq FROM tags" + sub.String() + ")")
		inSubquery = true
	}
	if fp.ids != nil {
		w.and(in(p, "e.id", fp.ids))
	}
	if fp.authors != nil {
		w.and(in(p, "e.pubkey", fp.authors))
	}
	if !inSubquery {
		if fp.kinds != nil {
			w.and(in(p, "e.kind", fp.kinds))
		}
		timeBounds(&w, p, "e.created_at", fp)
	}
	for _, t := range tags {
		w.and(tagExists(p, "e.seq", t))
	}
	w.and(notExpired(p, now))
	if after != nil {
		c, id := p.add(after.createdAt), p.add(after.id[:])
		w.and(created + " <= " + c)
		w.and("(" + created + " < " + c + " OR e.id > " + id + ")")
		w.and("e.seq <= " + p.add(after.maxSeq))
	}
	sql := "SELECT " + cols + " FROM " + from + w.String()
	if ordered {
		sql += " ORDER BY " + created + " DESC, e.id"
	}
	if limit > 0 {
		sql += " LIMIT " + p.add(limit)
	}
	return sql
}

// pageKey is where a later page of a filter's results starts: after the
// row (createdAt, id) in the results' order, among the events with a
// sequence number up to maxSeq.
type pageKey struct {
	createdAt int64
	id        [32]byte
	maxSeq    int64
}

// filterConds adds every condition of fp on the events row "e", tags as
// EXISTS probes: for queries not driven by selectFilter's index choice
// (search).
func filterConds(w *where, p *params, fp *filterParts, now int64) {
	if fp.ids != nil {
		w.and(in(p, "e.id", fp.ids))
	}
	if fp.authors != nil {
		w.and(in(p, "e.pubkey", fp.authors))
	}
	if fp.kinds != nil {
		w.and(in(p, "e.kind", fp.kinds))
	}
	timeBounds(w, p, "e.created_at", fp)
	for _, t := range fp.tags {
		w.and(tagExists(p, "e.seq", t))
	}
	w.and(notExpired(p, now))
}

// limitOf is a filter's limit for Query: ok is false for limit 0 given
// explicitly (nothing), 0 means none.
func limitOf(f *nostr.Filter) (limit int, ok bool) {
	if f.Limit <= 0 {
		return 0, !f.LimitZero
	}
	return f.Limit, true
}

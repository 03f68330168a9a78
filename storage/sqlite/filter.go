package sqlite

import (
	"slices"
	"sort"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
	"github.com/wisp-relay/wisp/storage/internal/unicode61"
)

// idAuthorConds adds f's ids and authors conditions on the events row "e".
// ok is false when a list is given but holds no usable value.
func idAuthorConds(b *queryBuilder, f *nostr.Filter) (ok bool) {
	if f.IDs != nil {
		ids := hexArgs(f.IDs)
		if len(ids) == 0 {
			return false
		}
		b.cond(inList("e.id", len(ids)), ids...)
	}
	if f.Authors != nil {
		authors := hexArgs(f.Authors)
		if len(authors) == 0 {
			return false
		}
		b.cond(inList("e.pubkey", len(authors)), authors...)
	}
	return true
}

// filterConds adds to b every condition of f on the events row "e", except
// search and limit, with the same meaning as buildQuery: a nil list is no
// constraint, an empty one or one without a usable value matches nothing, as
// does a tag key that is not one ASCII letter. Tag conditions are EXISTS
// probes of the tags primary key. ok is false when f can match nothing.
//
// It serves the queries that are not driven by buildQuery's index choice:
// search, and the expired-event correction of Count.
func filterConds(b *queryBuilder, f *nostr.Filter) (ok bool) {
	if !idAuthorConds(b, f) {
		return false
	}
	if f.Kinds != nil {
		kinds := kindArgs(f.Kinds)
		if len(kinds) == 0 {
			return false
		}
		b.cond(inList("e.kind", len(kinds)), kinds...)
	}
	if f.Since != nil && f.Until != nil && *f.Since > *f.Until {
		return false
	}
	b.timeBounds("e.created_at", f)
	// Sorted names keep the SQL text independent of map order.
	names := make([]string, 0, len(f.Tags))
	for name, values := range f.Tags {
		if values == nil {
			continue
		}
		if !evkey.IndexedTagName(name) || len(values) == 0 {
			return false
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		vs := slices.Clone(f.Tags[name])
		slices.Sort(vs)
		vs = slices.Compact(vs)
		var sub queryBuilder
		sub.sql.WriteString("EXISTS (SELECT 1 FROM tags AS x")
		sub.cond("x.seq = e.seq")
		sub.cond("x.name = ?", name)
		sub.cond(inList("x.value", len(vs)), strArgs(vs)...)
		sub.sql.WriteString(")")
		b.cond(sub.sql.String(), sub.args...)
	}
	return true
}

// kindArgs returns the distinct kinds, sorted, as arguments.
func kindArgs(kinds []int) []any {
	ks := slices.Clone(kinds)
	slices.Sort(ks)
	ks = slices.Compact(ks)
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = k
	}
	return out
}

// matchExpr is the FTS4 MATCH expression for a NIP-50 search string: every
// word quoted, so that nothing in it is query syntax, and all required;
// words are its terms, as unicode61.Matches takes them. ok is false
// when the search has no words (it then matches nothing).
func matchExpr(search string) (expr string, words []string, ok bool) {
	words = unicode61.Terms(search)
	if len(words) == 0 {
		return "", nil, false
	}
	b := make([]byte, 0, len(search)+3*len(words))
	for i, w := range words {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, '"')
		b = append(b, w...) // letters, digits and marks only: no quote inside
		b = append(b, '"')
	}
	return string(b), words, true
}

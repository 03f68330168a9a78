package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip45/hyperloglog"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// NIP-45 COUNT. A count reads indexes only: each filter becomes a SELECT of
// the matching events' seq that an index covers (the seq is the rowid, which
// every index carries), and the count is taken over those. Expired events
// that the sweep has not purged yet are not in the indexes' way: they are
// few, found through the partial expiration index, and subtracted.

var _ storage.HLLCounter = (*Store)(nil)

// DefaultCountCap is how many events Count counts before it answers
// approximately, unless Options.CountCap says otherwise.
const DefaultCountCap = 1_000_000

// Count counts the events matching any of the filters; see storage.Store.
func (s *Store) Count(ctx context.Context, filters []nostr.Filter) (int64, bool, error) {
	n, approx, _, err := s.count(ctx, filters, -1)
	return n, approx, err
}

// CountHLL counts like Count and computes NIP-45's HyperLogLog registers;
// see storage.HLLCounter. This reads each counted event's pubkey, so it
// costs one row lookup per event.
func (s *Store) CountHLL(ctx context.Context, filters []nostr.Filter, offset int) (int64, bool, []byte, error) {
	if offset < 0 || offset > 24 {
		return 0, false, nil, fmt.Errorf("count: hll offset %d: %w", offset, storage.ErrBadQuery)
	}
	return s.count(ctx, filters, offset)
}

func (s *Store) count(ctx context.Context, filters []nostr.Filter, hllOffset int) (int64, bool, []byte, error) {
	now := time.Now().Unix()
	all := false // some filter matches every event
	var sels []builtQuery
	for i := range filters {
		f := &filters[i]
		if matchesAll(f) {
			all = true
			continue
		}
		q, ok, err := buildCountSelect(f)
		if err != nil {
			return 0, false, nil, fmt.Errorf("count filter %d: %w", i, err)
		}
		if ok {
			sels = append(sels, q)
		}
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, false, nil, storage.ErrClosed
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, false, nil, fmt.Errorf("count: begin: %w", err)
	}
	defer tx.Rollback() // read only: nothing to commit

	switch {
	case hllOffset >= 0:
		return s.countHLL(ctx, tx, filters, all, sels, hllOffset, now)
	case all:
		// The running count, less what has expired but is not purged yet.
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT n FROM event_count").Scan(&n); err != nil {
			return 0, false, nil, fmt.Errorf("count: %w", err)
		}
		expired, err := countExpired(ctx, tx, nil, now)
		if err != nil {
			return 0, false, nil, err
		}
		return n - expired, false, nil, nil
	case len(sels) == 0:
		return 0, false, nil, nil
	}

	var b queryBuilder
	b.sql.WriteString("SELECT count(*) FROM (")
	if len(sels) == 1 {
		b.sql.WriteString(sels[0].sql)
		b.args = append(b.args, sels[0].args...)
	} else {
		for i, q := range sels {
			if i > 0 {
				b.sql.WriteString(" UNION ")
			}
			b.sql.WriteString("SELECT seq FROM (")
			b.sql.WriteString(q.sql)
			b.sql.WriteString(" LIMIT ?)")
			b.args = append(b.args, q.args...)
			b.args = append(b.args, s.countCap+1)
		}
	}
	b.sql.WriteString(" LIMIT ?)")
	b.args = append(b.args, s.countCap+1)
	var n int64
	if err := tx.QueryRowContext(ctx, b.sql.String(), b.args...).Scan(&n); err != nil {
		return 0, false, nil, fmt.Errorf("count: %w", err)
	}
	if n > int64(s.countCap) {
		return int64(s.countCap), true, nil, nil
	}
	expired, err := countExpired(ctx, tx, filters, now)
	if err != nil {
		return 0, false, nil, err
	}
	return n - expired, false, nil, nil
}

// countHLL streams the pubkeys of the matching events into the registers.
func (s *Store) countHLL(ctx context.Context, tx *sql.Tx, filters []nostr.Filter, all bool, sels []builtQuery, offset int, now int64) (int64, bool, []byte, error) {
	var b queryBuilder
	b.sql.WriteString("SELECT e.pubkey, e.expiration FROM (")
	switch {
	case all:
		b.sql.WriteString("SELECT seq FROM events")
	case len(sels) == 0:
		return 0, false, make([]byte, 256), nil
	default:
		for i, q := range sels {
			if i > 0 {
				b.sql.WriteString(" UNION ")
			}
			b.sql.WriteString(q.sql)
			b.args = append(b.args, q.args...)
		}
	}
	b.sql.WriteString(" LIMIT ?) AS m JOIN events AS e ON e.seq = m.seq")
	b.args = append(b.args, s.countCap+1)
	rs, err := tx.QueryContext(ctx, b.sql.String(), b.args...)
	if err != nil {
		return 0, false, nil, fmt.Errorf("count: %w", err)
	}
	defer rs.Close()
	hll := hyperloglog.New(offset)
	var n, seen int64
	var pubkey sql.RawBytes
	var exp sql.NullInt64
	for rs.Next() {
		if err := rs.Scan(&pubkey, &exp); err != nil {
			return 0, false, nil, fmt.Errorf("count: scan: %w", err)
		}
		if seen++; seen > int64(s.countCap) {
			return int64(s.countCap), true, nil, nil
		}
		if exp.Valid && exp.Int64 <= now {
			continue
		}
		if len(pubkey) == 32 {
			hll.AddBytes(pubkey)
		}
		n++
	}
	if err := rs.Err(); err != nil {
		return 0, false, nil, fmt.Errorf("count: %w", err)
	}
	return n, false, hll.GetRegisters(), nil
}

// countExpired counts the events that match any of filters (all events when
// filters is nil) and have expired by now but are not purged yet, reading
// only the partial expiration index and those rows.
func countExpired(ctx context.Context, tx *sql.Tx, filters []nostr.Filter, now int64) (int64, error) {
	var b queryBuilder
	b.sql.WriteString("SELECT count(*) FROM events AS e INDEXED BY events_expiration")
	b.cond("e.expiration <= ?", now)
	if filters != nil {
		var ors []string
		for i := range filters {
			var c queryBuilder
			if !filterConds(&c, &filters[i]) {
				continue
			}
			if filters[i].Search != "" {
				expr, terms, ok := matchExpr(filters[i].Search)
				if !ok {
					continue
				}
				// Indexed, or in the tail and matching (see tailConds).
				c.cond(`(e.seq IN (SELECT docid FROM events_search WHERE events_search MATCH ?)
					OR (e.seq > (SELECT indexed FROM search_state) AND e.kind IN (SELECT kind FROM search_kinds)
						AND `+searchMatchFunc+"(?, "+tailContent+")))", expr, strings.Join(terms, " "))
			}
			// c's text is " WHERE a AND b"; an empty filter gives "".
			cond := strings.TrimPrefix(c.sql.String(), " WHERE ")
			if cond == "" {
				cond = "1"
			}
			ors = append(ors, "("+cond+")")
			b.args = append(b.args, c.args...)
		}
		if len(ors) == 0 {
			return 0, nil
		}
		b.sql.WriteString(" AND (" + strings.Join(ors, " OR ") + ")")
	}
	var n int64
	if err := tx.QueryRowContext(ctx, b.sql.String(), b.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count expired: %w", err)
	}
	return n, nil
}

// matchesAll reports whether f matches every stored event (limits aside).
func matchesAll(f *nostr.Filter) bool {
	if f.IDs != nil || f.Authors != nil || f.Kinds != nil || f.Since != nil || f.Until != nil || f.Search != "" {
		return false
	}
	for _, v := range f.Tags {
		if v != nil {
			return false
		}
	}
	return true
}

// buildCountSelect turns a filter into a SELECT of the distinct seq of the
// events it matches, expiration and limit aside, that indexes alone can
// answer where the filter allows: a filter on one tag (plus kinds and time)
// reads only the tags index, one on ids, authors, kinds and time only the
// events indexes. ok is false when the filter can match nothing. The rules
// are buildQuery's.
func buildCountSelect(f *nostr.Filter) (q builtQuery, ok bool, err error) {
	var b queryBuilder
	switch {
	case f.Search != "":
		// The indexed matches and the tail's (see search.go): disjoint, as
		// the index holds nothing above its watermark.
		expr, terms, ok := matchExpr(f.Search)
		if !ok {
			return q, false, nil
		}
		var ix, tail queryBuilder
		ix.sql.WriteString("SELECT e.seq FROM events AS e")
		ix.cond("e.seq IN (SELECT docid FROM events_search WHERE events_search MATCH ?)", expr)
		if !filterConds(&ix, f) {
			return q, false, nil
		}
		tail.sql.WriteString("SELECT e.seq FROM events AS e NOT INDEXED")
		tailConds(&tail, f, terms, true)
		// Wrapped, so that a UNION with other filters' selects cannot bind
		// to one half only.
		b.sql.WriteString("SELECT seq FROM (" + ix.sql.String() + " UNION ALL " + tail.sql.String() + ")")
		b.args = append(append(b.args, ix.args...), tail.args...)
	case hasTags(f):
		if ok := tagCountSelect(&b, f); !ok {
			return q, false, nil
		}
	default:
		b.sql.WriteString("SELECT e.seq FROM events AS e")
		if !filterConds(&b, f) {
			return q, false, nil
		}
	}
	if len(b.args) > maxParams {
		return q, false, fmt.Errorf("%d values in one filter: %w", len(b.args), storage.ErrBadQuery)
	}
	return builtQuery{sql: b.sql.String(), args: b.args}, true, nil
}

func hasTags(f *nostr.Filter) bool {
	for _, v := range f.Tags {
		if v != nil {
			return true
		}
	}
	return false
}

// tagCountSelect drives the count from the tags index of the filter's most
// selective tag (as buildQuery picks it); the events table is joined only
// for ids and authors.
func tagCountSelect(b *queryBuilder, f *nostr.Filter) bool {
	var tags []tagCond
	for name, values := range f.Tags {
		if values == nil {
			continue
		}
		if !evkey.IndexedTagName(name) || len(values) == 0 {
			return false
		}
		vs := slices.Clone(values)
		slices.Sort(vs)
		tags = append(tags, tagCond{name, slices.Compact(vs)})
	}
	slices.SortFunc(tags, func(a, b tagCond) int {
		return cmp.Or(
			cmp.Compare(min(len(a.values), 2), min(len(b.values), 2)),
			cmp.Compare(tagRank(a.name), tagRank(b.name)),
			strings.Compare(a.name, b.name))
	})
	if f.Since != nil && f.Until != nil && *f.Since > *f.Until {
		return false
	}
	t := tags[0]
	if len(t.values) > 1 {
		// An event may carry several of the values.
		b.sql.WriteString("SELECT DISTINCT t.seq FROM tags AS t")
	} else {
		b.sql.WriteString("SELECT t.seq FROM tags AS t")
	}
	if f.IDs != nil || f.Authors != nil {
		b.sql.WriteString(" JOIN events AS e ON e.seq = t.seq")
	}
	b.cond("t.name = ?", t.name)
	b.cond(inList("t.value", len(t.values)), strArgs(t.values)...)
	if f.Kinds != nil {
		kinds := kindArgs(f.Kinds)
		if len(kinds) == 0 {
			return false
		}
		b.cond(inList("t.kind", len(kinds)), kinds...)
	}
	b.timeBounds("t.created_at", f)
	if !idAuthorConds(b, f) {
		return false
	}
	for _, x := range tags[1:] {
		var sub queryBuilder
		sub.sql.WriteString("EXISTS (SELECT 1 FROM tags AS x")
		sub.cond("x.seq = t.seq")
		sub.cond("x.name = ?", x.name)
		sub.cond(inList("x.value", len(x.values)), strArgs(x.values)...)
		sub.sql.WriteString(")")
		b.cond(sub.sql.String(), sub.args...)
	}
	return true
}

package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"math"
	"slices"

	"github.com/mattn/go-sqlite3"
	"github.com/nbd-wtf/go-nostr"
)

// A filter of many authors with a limit (a client's home feed: the authors
// of hundreds of follows, kinds 1, 6 and 7, the newest 100 to 500) matches
// a large share of the newest events. Served from the pubkey indexes, as
// any authors filter is, SQLite reads every event of every author and
// sorts them all for the newest few hundred: 18 ms for 150 of 200 authors
// in BenchmarkQuery/home. Read from the created_at index newest first
// instead, it stops as soon as it has its limit, but when the authors are
// few among many that walk is long. So such a filter probes: it reads the
// created_at index only as far back as the rows × limit newest events
// (a bound found from the index alone), and if that does not give it its
// limit, the rest comes from the usual plan, for the events older than the
// bound. The results are the same either way and in the same order (the
// probe's are all newer than the rest's); the probe costs at most a bounded
// walk when it finds too little.

// probeTuning says when a filter probes and how far; the zero value is
// the default. Tests set it low, so that the few events of a fuzz input
// take the probe's paths too (Options.probe).
type probeTuning struct {
	// minAuthors is the fewest authors for which a filter probes: with
	// fewer, the pubkey indexes hold few enough events to sort.
	minAuthors int
	// rows is how many of the newest events the probe reads for each
	// result it wants: enough when the filter matches one event in rows.
	rows int
}

func (t probeTuning) withDefaults() probeTuning {
	if t.minAuthors <= 0 {
		t.minAuthors = 20
	}
	if t.rows <= 0 {
		t.rows = 8
	}
	return t
}

// probeable says whether f is served by a probe: many authors and a
// limit, no ids, tags or search (those have indexes of their own), and
// not only replaceable kinds (of those an author has one each, so the
// pubkey indexes hold few to sort).
func (t probeTuning) probeable(f *nostr.Filter) bool {
	if len(f.Authors) < t.minAuthors || f.IDs != nil || f.Limit <= 0 || f.Search != "" {
		return false
	}
	for _, v := range f.Tags {
		if v != nil {
			return false
		}
	}
	if f.Kinds != nil && !slices.ContainsFunc(f.Kinds, func(k int) bool { return !nostr.IsReplaceableKind(k) }) {
		return false
	}
	return true
}

// probeBoundSQL finds the created_at of the (offset+1)th newest event up
// to an until bound, from the created_at index alone.
const probeBoundSQL = "SELECT created_at FROM events INDEXED BY events_created WHERE created_at <= ? ORDER BY created_at DESC LIMIT 1 OFFSET ?"

// readProbe reads the first page of a probeable filter: the newest events
// from the created_at index down to the bound, then, if they are fewer than
// the limit, the older ones by the filter's usual plan.
func (p *pager) readProbe(ctx context.Context, c *sqlite3.SQLiteConn, st *stream, share int, bytes *int) (int, error) {
	until := int64(1<<63 - 1)
	if st.f.Until != nil {
		until = int64(*st.f.Until)
	}
	dest := make([]driver.Value, 1)
	var bound *int64
	err := queryRows(ctx, c, probeBoundSQL, []driver.NamedValue{
		{Ordinal: 1, Value: until}, {Ordinal: 2, Value: min(int64(st.f.Limit), math.MaxInt64/int64(p.s.probe.rows)) * int64(p.s.probe.rows)},
	}, dest, func() error {
		if v, ok := dest[0].(int64); ok {
			bound = &v
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// No bound: the events up to until are few, and the probe reads them all.
	q, ok, err := buildPage(st.f, p.now, page{byCreated: true, fromAt: bound})
	if err != nil || !ok {
		return 0, err
	}
	n, err := p.readQuery(ctx, c, st, q, share, bytes)
	if err != nil || n >= st.f.Limit || bound == nil {
		return n, err
	}
	q, ok, err = buildPage(st.f, p.now, page{belowAt: bound, limit: st.f.Limit - n})
	if err != nil || !ok {
		return n, err
	}
	m, err := p.readQuery(ctx, c, st, q, share, bytes)
	if err != nil && !errors.Is(err, errPageFull) {
		return n, err
	}
	return n + m, err
}

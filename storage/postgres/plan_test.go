package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
)

// explain returns PostgreSQL's plan of a statement with its arguments, one
// line per node.
func explain(t *testing.T, s *Store, sql string, args []any) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, sql)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestQueryPlans checks that the filter shapes of storage/sqlite's plan test
// are served from indexes on PostgreSQL: no plan reads the events or tags
// table whole (Seq Scan), and the obvious index is the one used.
//
// PostgreSQL plans by cost, from statistics, so the check runs where the
// choice is the real one: 20,000 plausible events (the benchmarks' corpus,
// fixed seed), then ANALYZE, so that the statistics are those of that data
// and not of an empty table (where a sequential scan of a few pages is
// rightly cheapest) nor of whatever autovacuum last sampled. The values in
// the filters are ones the data holds (an author with 1% of the events, a
// popular reply target, a topic), so an index wins by its selectivity, not
// because a value is missing. Shapes that match most of the table without
// a limit are left out: for them a sequential scan is the right plan (the
// SQLite test's unselective windows are narrowed here to 1% of the data).
// Queries run with plan_cache_mode=force_custom_plan (see Open), so these
// plans, made with the arguments, are the ones queries get.
func TestQueryPlans(t *testing.T) {
	s := openTestStore(t, Options{SearchKinds: []int{1}})
	c := newCorpus(100)
	c.load(t, s, 20_000)
	if _, err := s.pool.Exec(context.Background(), "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }
	author, author2 := c.authors[3], c.authors[4]
	popular := c.ids[10_000]
	mid := c.now - (c.now-1_700_000_000)/2
	cases := []struct {
		name string
		f    nostr.Filter
		want string // in the plan, when the shape has an obvious best index
		// bulk: without its limit the filter matches much of the table, so
		// a count of it may rightly read the table whole.
		bulk bool
	}{
		{name: "ids", f: nostr.Filter{IDs: []string{c.ids[5], c.ids[6]}}, want: "events_id"},
		{name: "one id", f: nostr.Filter{IDs: []string{c.ids[5]}}, want: "events_id"},
		{name: "authors", f: nostr.Filter{Authors: []string{author}, Limit: 100}, want: "events_pubkey"},
		{name: "many authors", f: nostr.Filter{Authors: []string{author, author2}, Limit: 100}},
		{name: "kinds", f: nostr.Filter{Kinds: []int{1}, Limit: 100}, bulk: true},
		{name: "many kinds", f: nostr.Filter{Kinds: []int{1, 6, 7}, Limit: 100}, bulk: true},
		{name: "rare kind", f: nostr.Filter{Kinds: []int{30023}, Limit: 100}, want: "events_kind"},
		{name: "authors kinds", f: nostr.Filter{Authors: []string{author}, Kinds: []int{1}, Limit: 100}, want: "events_pubkey_kind"},
		{name: "authors kinds replaceable", f: nostr.Filter{Authors: []string{author, author2}, Kinds: []int{0, 3, 10002}}},
		{name: "tag e", f: nostr.Filter{Tags: nostr.TagMap{"e": {popular}}, Limit: 100}, want: "tags_value"},
		{name: "tag p", f: nostr.Filter{Tags: nostr.TagMap{"p": {author}}, Limit: 100}, want: "tags_value"},
		{name: "tag t", f: nostr.Filter{Tags: nostr.TagMap{"t": {"topic3"}}, Limit: 100}, want: "tags_value"},
		{name: "tag d", f: nostr.Filter{Tags: nostr.TagMap{"d": {"article3"}}, Limit: 100}, want: "tags_value"},
		{name: "tag many values", f: nostr.Filter{Tags: nostr.TagMap{"p": {author, author2}}, Limit: 100}, want: "tags_value"},
		{name: "two tags", f: nostr.Filter{Tags: nostr.TagMap{"p": {author}, "t": {"topic1", "topic2"}}, Limit: 100}, want: "tags_value"},
		{name: "tag kind", f: nostr.Filter{Kinds: []int{7}, Tags: nostr.TagMap{"e": {popular}}, Limit: 100}, want: "tags_value"},
		{name: "tag kinds", f: nostr.Filter{Kinds: []int{1, 7}, Tags: nostr.TagMap{"e": {popular}}, Limit: 100}, want: "tags_value"},
		{name: "tag many values kind", f: nostr.Filter{Kinds: []int{7}, Tags: nostr.TagMap{"e": {popular, c.ids[9_000]}}, Limit: 100}, want: "tags_value"},
		{name: "tag many values since", f: nostr.Filter{Since: ts(mid), Tags: nostr.TagMap{"e": {popular, c.ids[9_000]}}, Limit: 100}, want: "tags_value"},
		{name: "tag author", f: nostr.Filter{Authors: []string{author}, Tags: nostr.TagMap{"p": {author2}}, Limit: 100}},
		{name: "addressable", f: nostr.Filter{Authors: []string{author}, Kinds: []int{30023}, Tags: nostr.TagMap{"d": {"article3"}}}},
		{name: "tag since until", f: nostr.Filter{Tags: nostr.TagMap{"t": {"topic3"}}, Since: ts(mid), Until: ts(mid + 100), Limit: 10}, want: "tags_value"},
		{name: "authors since", f: nostr.Filter{Authors: []string{author}, Since: ts(mid), Limit: 10}, want: "events_pubkey"},
		{name: "kinds until", f: nostr.Filter{Kinds: []int{1}, Until: ts(mid), Limit: 10}, bulk: true},
		{name: "ids kinds", f: nostr.Filter{IDs: []string{c.ids[5]}, Kinds: []int{1}}, want: "events_id"},
		{name: "since until", f: nostr.Filter{Since: ts(mid), Until: ts(mid + 200)}, want: "events_created"},
		{name: "since until limit", f: nostr.Filter{Since: ts(mid), Until: ts(mid + 200), Limit: 500}, want: "events_created"},
		{name: "since limit", f: nostr.Filter{Since: ts(1_700_000_000), Limit: 500}, want: "events_created", bulk: true},
		{name: "empty limit", f: nostr.Filter{Limit: 500}, want: "events_created", bulk: true},
		{name: "search rare", f: nostr.Filter{Search: "12345", Limit: 10}, want: "events_search"},
		{name: "search kind author", f: nostr.Filter{Search: "12345 fox", Kinds: []int{1}, Authors: []string{author}, Limit: 10}},
		{name: "search tag since", f: nostr.Filter{Search: "12345", Tags: nostr.TagMap{"t": {"topic3"}}, Since: ts(mid), Limit: 10}},
	}
	now := time.Now().Unix()
	check := func(t *testing.T, what, sql string, args []any, want string) {
		t.Helper()
		plan := explain(t, s, sql, args)
		all := strings.Join(plan, "\n")
		if strings.Contains(all, "Seq Scan on events") || strings.Contains(all, "Seq Scan on tags") {
			t.Errorf("%s reads a table whole:\n%s\n%s", what, sql, all)
		}
		if want != "" && !strings.Contains(all, want) {
			t.Errorf("%s does not use %s:\n%s\n%s", what, want, sql, all)
		}
		if testing.Verbose() {
			t.Logf("%s\n%s", sql, all)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sql, args := s.pageSQLFor([]nostr.Filter{tc.f}, now, nil)
			check(t, "query", sql, args, tc.want)
			if tc.f.Search == "" { // a later page starts after a key
				sql, args = s.pageSQLFor([]nostr.Filter{tc.f}, now, &row{createdAt: mid, id: [32]byte{0x80}})
				check(t, "later page", sql, args, "")
			}
			f := tc.f
			f.Limit = 0
			var p params
			sel, ok := countSelects(&p, []nostr.Filter{f}, now, "e.seq")
			if !ok {
				t.Fatal("count: no select")
			}
			if !tc.bulk {
				check(t, "count", sel, p.args, "")
			}
		})
	}
	t.Run("expiry", func(t *testing.T) {
		check(t, "expiry", "SELECT seq FROM events WHERE expiration IS NOT NULL AND expiration <= $1 LIMIT $2", []any{now, 1000}, "events_expiration")
	})
	t.Run("retention kinds", func(t *testing.T) {
		check(t, "retention", "SELECT min(kind) FROM events WHERE kind > $1 AND kind <= $2", []any{0, 65535}, "events_kind")
	})
}

package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// TestQueryPlans checks that every representative filter shape is served
// from an index: no line of its plan scans the events (or tags) table. Only
// a filter with nothing selective may walk an index in order, and that must
// be the created_at index.
//
// It runs on an empty database and again on one holding plausible data after
// ANALYZE, since planner statistics can change the plans.
func TestQueryPlans(t *testing.T) {
	t.Run("empty", func(t *testing.T) { checkPlans(t, openTestStore(t)) })
	t.Run("analyzed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "wisp.db")
		s, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := newCorpus(100)
		for range 4 {
			batch := make([]storage.Item, 500)
			for i := range batch {
				batch[i] = c.item()
			}
			if _, err := s.Save(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.w.Exec("ANALYZE"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkPlans(t, s)
	})
}

func checkPlans(t *testing.T, s *Store) {
	hex := strings.Repeat("ab", 32)
	hex2 := strings.Repeat("cd", 32)
	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }

	cases := []struct {
		name        string
		f           nostr.Filter
		unselective bool
		want        string // in the plan, when the shape has an obvious best index
	}{
		{name: "ids", f: nostr.Filter{IDs: []string{hex, hex2}}},
		{name: "one id", f: nostr.Filter{IDs: []string{hex}}},
		{name: "authors", f: nostr.Filter{Authors: []string{hex}, Limit: 100}},
		{name: "many authors", f: nostr.Filter{Authors: []string{hex, hex2}, Limit: 100}},
		{name: "kinds", f: nostr.Filter{Kinds: []int{1}, Limit: 100}},
		{name: "many kinds", f: nostr.Filter{Kinds: []int{1, 6, 7}, Limit: 100}},
		{name: "authors kinds", f: nostr.Filter{Authors: []string{hex}, Kinds: []int{1}, Limit: 100}, want: "events_pubkey_kind (pubkey=? AND kind=?)"},
		{name: "authors kinds replaceable", f: nostr.Filter{Authors: []string{hex, hex2}, Kinds: []int{0, 3, 10002}}},
		{name: "tag e", f: nostr.Filter{Tags: nostr.TagMap{"e": {hex}}, Limit: 100}, want: "tags_value (name=? AND value=?)"},
		{name: "tag p", f: nostr.Filter{Tags: nostr.TagMap{"p": {hex}}, Limit: 100}},
		{name: "tag t", f: nostr.Filter{Tags: nostr.TagMap{"t": {"nostr"}}, Limit: 100}},
		{name: "tag d", f: nostr.Filter{Tags: nostr.TagMap{"d": {"x"}}, Limit: 100}},
		{name: "tag many values", f: nostr.Filter{Tags: nostr.TagMap{"p": {hex, hex2}}, Limit: 100}},
		{name: "two tags", f: nostr.Filter{Tags: nostr.TagMap{"p": {hex}, "t": {"a", "b"}}, Limit: 100}},
		{name: "tag kind", f: nostr.Filter{Kinds: []int{7}, Tags: nostr.TagMap{"e": {hex}}, Limit: 100}, want: "SEARCH t USING COVERING INDEX tags_value (name=? AND value=?)"},
		{name: "tag kinds", f: nostr.Filter{Kinds: []int{1, 7}, Tags: nostr.TagMap{"e": {hex}}, Limit: 100}},
		{name: "tag many values kind", f: nostr.Filter{Kinds: []int{7}, Tags: nostr.TagMap{"e": {hex, hex2}}, Limit: 100}, want: "SEARCH tags USING COVERING INDEX tags_value (name=? AND value=?)"},
		{name: "tag many values since", f: nostr.Filter{Since: ts(100), Tags: nostr.TagMap{"e": {hex, hex2}}, Limit: 100}, want: "SEARCH tags USING COVERING INDEX tags_value (name=? AND value=? AND created_at>?)"},
		{name: "tag author", f: nostr.Filter{Authors: []string{hex}, Tags: nostr.TagMap{"p": {hex2}}, Limit: 100}},
		{name: "addressable", f: nostr.Filter{Authors: []string{hex}, Kinds: []int{30023}, Tags: nostr.TagMap{"d": {"x"}}}},
		{name: "tag since until", f: nostr.Filter{Tags: nostr.TagMap{"t": {"x"}}, Since: ts(100), Until: ts(200), Limit: 10}},
		{name: "authors since", f: nostr.Filter{Authors: []string{hex}, Since: ts(100), Limit: 10}},
		{name: "kinds until", f: nostr.Filter{Kinds: []int{1}, Until: ts(100), Limit: 10}},
		{name: "ids kinds", f: nostr.Filter{IDs: []string{hex}, Kinds: []int{1}}},
		{name: "since until", f: nostr.Filter{Since: ts(100), Until: ts(200)}, unselective: true},
		{name: "since until limit", f: nostr.Filter{Since: ts(100), Until: ts(200), Limit: 500}, unselective: true},
		{name: "since limit", f: nostr.Filter{Since: ts(100), Limit: 500}, unselective: true},
		{name: "empty limit", f: nostr.Filter{Limit: 500}, unselective: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, ok, err := buildQuery(&tc.f, 1000)
			if err != nil || !ok {
				t.Fatalf("buildQuery: ok=%v err=%v", ok, err)
			}
			plan := explain(t, s, q)
			for _, line := range plan {
				if strings.HasPrefix(line, "SCAN ") && !tc.unselective {
					t.Errorf("plan scans a table:\n%s\n%s", q.sql, strings.Join(plan, "\n"))
				}
				if strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, "USING INDEX events_created") {
					t.Errorf("plan scans without the created_at index:\n%s\n%s", q.sql, strings.Join(plan, "\n"))
				}
			}
			if tc.want != "" && !strings.Contains(strings.Join(plan, "\n"), tc.want) {
				t.Errorf("plan does not use %q:\n%s\n%s", tc.want, q.sql, strings.Join(plan, "\n"))
			}
			if tc.unselective && !strings.Contains(strings.Join(plan, "\n"), "events_created") {
				t.Errorf("unselective filter does not use the created_at index:\n%s\n%s", q.sql, strings.Join(plan, "\n"))
			}
			if testing.Verbose() {
				t.Logf("%s\n%s", q.sql, strings.Join(plan, "\n"))
			}
		})
	}
}

// explain returns the detail column of EXPLAIN QUERY PLAN, one line per step.
func explain(t *testing.T, s *Store, q builtQuery) []string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q.sql, q.args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, q.sql)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

package sqlite

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// A filter of many authors with a limit probes the created_at index and,
// when that finds too few, reads the rest by the usual plan: its results are
// the newest matches, lowest id first on a tie, whichever way they were
// found, and the same when read a page at a time (PageBytes 1).
func TestProbeGivesTheNewestMatches(t *testing.T) {
	c := newCorpus(60)
	var items []storage.Item
	for range 3000 {
		items = append(items, c.item())
	}
	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }
	mid := c.now - 1500
	cases := map[string]nostr.Filter{
		// Half the authors: the probe finds the limit.
		"probe enough": {Authors: c.authors[:30], Kinds: []int{1, 6, 7}, Limit: 200},
		// A rare kind: the probe finds few, the rest comes from below its bound.
		"probe then the rest": {Authors: c.authors[:25], Kinds: []int{30023}, Limit: 60},
		// More than is stored up to until: no bound, the probe reads all.
		"no bound":     {Authors: c.authors[:40], Until: ts(c.now - 2900), Limit: 500},
		"until, since": {Authors: c.authors[10:50], Kinds: []int{1}, Since: ts(mid - 600), Until: ts(mid), Limit: 80},
		"limit 1":      {Authors: c.authors, Limit: 1},
		// Fewer authors do not probe; the same answer either way.
		"few authors": {Authors: c.authors[:5], Kinds: []int{1}, Limit: 50},
	}
	if n := len(items); n > 5000 {
		t.Fatalf("%d items: the default limit would cut the reference query", n)
	}
	for _, opts := range []Options{{}, {PageBytes: 1}} {
		s := openTestStoreWith(t, opts)
		if _, err := s.Save(context.Background(), items); err != nil {
			t.Fatal(err)
		}
		// What is stored: replaceable and addressable events replace others.
		stored := map[string]bool{}
		all, _ := queryIDs(t, s, []nostr.Filter{{}}, func(int) {})
		for _, id := range all {
			stored[id] = true
		}
		for name, f := range cases {
			var want []*nostr.Event
			for _, it := range items {
				if stored[it.Event.ID] && f.Matches(it.Event) {
					want = append(want, it.Event)
				}
			}
			slices.SortFunc(want, func(a, b *nostr.Event) int {
				return cmp.Or(cmp.Compare(b.CreatedAt, a.CreatedAt), strings.Compare(a.ID, b.ID))
			})
			want = want[:min(len(want), f.Limit)]
			if len(want) == 0 {
				t.Fatalf("%s: nothing matches; the case tests nothing", name)
			}
			got, _ := queryIDs(t, s, []nostr.Filter{f}, func(int) {})
			if len(got) != len(want) {
				t.Errorf("PageBytes %d, %s: %d events, want %d", opts.PageBytes, name, len(got), len(want))
				continue
			}
			for i := range want {
				if got[i] != want[i].ID {
					t.Errorf("PageBytes %d, %s: event %d is %s, want %s", opts.PageBytes, name, i, got[i][:8], want[i].ID[:8])
					break
				}
			}
		}
	}
}

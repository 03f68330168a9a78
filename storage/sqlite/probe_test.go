package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
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

// The probe returns exactly what the usual plan returns, on small stores
// of many created_at ties, replaced versions, deletions and expired
// events, for feed filters of every shape it takes: each store is queried
// with the probe taken at once (one or two events deep for each result) and
// with the probe off, a page of the default size, of a few events or of one.
func TestProbeMatchesTheUsualPlan(t *testing.T) {
	ctx := context.Background()
	authors := []string{strings.Repeat("1a", 32), strings.Repeat("2b", 32), strings.Repeat("3c", 32)}
	var feed []string // two of the authors and many who wrote nothing
	feed = append(feed, authors[:2]...)
	for i := range 20 {
		feed = append(feed, strings.Repeat(fmt.Sprintf("%02x", 0x40+i), 32))
	}
	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }
	var shapes []nostr.Filter
	for limit := 1; limit <= 6; limit++ {
		shapes = append(shapes,
			nostr.Filter{Authors: feed, Limit: limit},
			nostr.Filter{Authors: feed, Kinds: []int{1, 7}, Limit: limit},
			nostr.Filter{Authors: feed, Kinds: []int{1, 0, 30023}, Limit: limit},
			nostr.Filter{Authors: feed, Until: ts(1003), Limit: limit},
			nostr.Filter{Authors: feed, Since: ts(1002), Limit: limit},
			nostr.Filter{Authors: feed, Kinds: []int{7}, Since: ts(1001), Until: ts(1004), Limit: limit},
		)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	probed := 0
	for run := range 60 {
		tuning := []probeTuning{{minAuthors: 1, rows: 1}, {minAuthors: 1, rows: 2}}[run%2]
		s := openTestStoreWith(t, Options{ReadConns: 1, PageBytes: []int{DefaultPageBytes, 700, 1}[run%3], probe: tuning})
		var evs []*nostr.Event
		var log strings.Builder
		for range 4 + rng.IntN(24) {
			ev := &nostr.Event{
				PubKey:    authors[rng.IntN(len(authors))],
				CreatedAt: nostr.Timestamp(1000 + rng.IntN(6)),
				Kind:      []int{1, 1, 1, 7, 7, 0, 30023, 5}[rng.IntN(8)],
				Content:   fmt.Sprint(len(evs)), // distinct ids
				Tags:      nostr.Tags{},
			}
			switch {
			case ev.Kind == 30023:
				ev.Tags = append(ev.Tags, nostr.Tag{"d", []string{"a", "b"}[rng.IntN(2)]})
			case ev.Kind == 5 && len(evs) > 0:
				ev.Tags = append(ev.Tags, nostr.Tag{"e", evs[rng.IntN(len(evs))].ID})
			case rng.IntN(5) == 0:
				ev.Tags = append(ev.Tags, nostr.Tag{"expiration", []string{"1", "99999999999"}[rng.IntN(2)]})
			}
			ev.ID = ev.GetID()
			evs = append(evs, ev)
			fmt.Fprintf(&log, "  %s kind %d at %d by %s tags %v\n", ev.ID[:8], ev.Kind, ev.CreatedAt, ev.PubKey[:4], ev.Tags)
		}
		for start := 0; start < len(evs); {
			end := min(len(evs), start+1+rng.IntN(6))
			var batch []storage.Item
			for _, ev := range evs[start:end] {
				raw, err := ev.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, storage.Item{Event: ev, Raw: raw})
			}
			if _, err := s.Save(ctx, batch); err != nil {
				t.Fatal(err)
			}
			start = end
		}
		for _, f := range shapes {
			if !s.probe.probeable(&f) {
				t.Fatalf("%v does not probe", f)
			}
			got, _ := queryIDs(t, s, []nostr.Filter{f}, func(int) {})
			s.probe.minAuthors = math.MaxInt // the usual plan
			want, _ := queryIDs(t, s, []nostr.Filter{f}, func(int) {})
			// And merged with another filter, which reads each row's key.
			other := nostr.Filter{Kinds: []int{0}}
			wantBoth, _ := queryIDs(t, s, []nostr.Filter{f, other}, func(int) {})
			s.probe = tuning
			gotBoth, _ := queryIDs(t, s, []nostr.Filter{f, other}, func(int) {})
			if !slices.Equal(got, want) || !slices.Equal(gotBoth, wantBoth) {
				t.Fatalf("run %d (%+v, page %d bytes), filter %v:\n got %v\nwant %v\nmerged with %v:\n got %v\nwant %v\nevents:\n%s",
					run, tuning, s.pageBytes, f, short(got), short(want), other, short(gotBoth), short(wantBoth), log.String())
			}
			if len(want) > 0 {
				probed++
			}
		}
	}
	if probed < 500 {
		t.Fatalf("only %d queries found anything: the runs test little", probed)
	}
}

func short(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:8]
	}
	return out
}

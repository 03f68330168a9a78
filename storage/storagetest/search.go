package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-50 search, for engines that are a storage.Searcher: a search finds
// exactly the events the engine's own matcher (SearchMatcher, the relay's
// live matching) matches; how words are split is the engine's, and how
// results rank, within the rules tested here.

// searcher returns the fixture's store as a Searcher, or skips the test.
func (f *fixture) searcher() storage.Searcher {
	f.t.Helper()
	sr, ok := f.s.(storage.Searcher)
	if !ok {
		f.t.Skip("engine does not search")
	}
	return sr
}

// contents returns the content of the events the filters serve, in order.
func (f *fixture) contents(filters ...nostr.Filter) []string {
	f.t.Helper()
	var out []string
	_, err := f.s.Query(context.Background(), filters, func(raw []byte) error {
		var ev nostr.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		out = append(out, ev.Content)
		return nil
	})
	if err != nil {
		f.t.Fatalf("query %v: %v", filters, err)
	}
	return out
}

func (f *fixture) count(filters ...nostr.Filter) int64 {
	f.t.Helper()
	n, approx, err := f.s.Count(context.Background(), filters)
	if err != nil || approx {
		f.t.Fatalf("count %v: %d (approximate %v), %v", filters, n, approx, err)
	}
	return n
}

// twice runs check, then the engine's background upkeep, then check again:
// results must not depend on whether an engine's index has caught up.
func (f *fixture) twice(check func(when string)) {
	f.t.Helper()
	check("before upkeep")
	f.settle()
	check("after upkeep")
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func testSearch(t *testing.T, f *fixture) {
	sr := f.searcher()
	if k := sr.SearchKinds(); !slices.Equal(k, []int{1, 30023}) {
		t.Fatalf("search kinds %v, want [1 30023]", k)
	}
	alice, bob := newKey(t), newKey(t)
	f.save(items(
		event(t, alice, 1, 100, nil, "Nostr relays are simple"),
		event(t, alice, 1, 101, nil, "I like nostr, and I like relays: nostr nostr"),
		event(t, bob, 1, 102, nostr.Tags{{"t", "go"}}, "a relay in Go"),
		event(t, bob, 1, 103, nil, "nostrich is not nostr's word boundary test"),
		event(t, alice, 7, 104, nil, "nostr"), // not a searchable kind
		event(t, bob, 30023, 105, nostr.Tags{{"d", "article"}}, "A long article about NOSTR and relays"),
		event(t, alice, 1, 106, nil, "Crème brûlée recipe"),
		event(t, bob, 1, 107, nil, "ÉCOLE école ecole"),
	))
	allNostr := []string{
		"I like nostr, and I like relays: nostr nostr", "Nostr relays are simple",
		"A long article about NOSTR and relays", "nostrich is not nostr's word boundary test",
	}
	cases := []struct {
		f    nostr.Filter
		want []string // in any order
	}{
		{nostr.Filter{Search: "nostr"}, allNostr},
		{nostr.Filter{Search: "NOSTR relays"}, allNostr[:3]},
		{nostr.Filter{Search: "relay"}, []string{"a relay in Go"}}, // whole words: no stemming
		{nostr.Filter{Search: "nostrich"}, []string{"nostrich is not nostr's word boundary test"}},
		{nostr.Filter{Search: "brûlée"}, []string{"Crème brûlée recipe"}},
		{nostr.Filter{Search: "brulee"}, nil}, // accents must match
		{nostr.Filter{Search: "école"}, []string{"ÉCOLE école ecole"}},
		{nostr.Filter{Search: "nothing-here"}, nil},
		{nostr.Filter{Search: "include:spam relay"}, []string{"a relay in Go"}}, // an extension is ignored
		{nostr.Filter{Search: "language:en"}, nil},                              // no words: nothing
		{nostr.Filter{Search: `"relay" OR nostr*`}, nil},                        // no query syntax: OR is a word
		{nostr.Filter{Search: "relay & go | !"}, []string{"a relay in Go"}},     // nor PostgreSQL's
		{nostr.Filter{Search: "relay go"}, []string{"a relay in Go"}},           // every word, anywhere
		{nostr.Filter{Search: "relay nostr"}, nil},                              // every word is required
		{nostr.Filter{Search: "   "}, nil},
		{nostr.Filter{Search: "nostr", Kinds: []int{30023}}, []string{"A long article about NOSTR and relays"}},
		{nostr.Filter{Search: "nostr", Kinds: []int{7}}, nil},
		{nostr.Filter{Search: "nostr", Authors: []string{bob.pk}}, allNostr[2:]},
		{nostr.Filter{Search: "relay", Tags: nostr.TagMap{"t": {"go"}}}, []string{"a relay in Go"}},
		{nostr.Filter{Search: "relay", Tags: nostr.TagMap{"t": {"rust"}}}, nil},
		{nostr.Filter{Search: "nostr", Since: ts(102), Until: ts(104)}, []string{"nostrich is not nostr's word boundary test"}},
		{nostr.Filter{Search: "nostr", LimitZero: true}, nil},
	}
	f.twice(func(when string) {
		for _, c := range cases {
			if got := f.contents(c.f); !slices.Equal(sorted(got), sorted(c.want)) {
				t.Errorf("%s: %v:\n got %q\nwant %q", when, c.f, got, c.want)
			}
			if n := f.count(c.f); !c.f.LimitZero && n != int64(len(c.want)) {
				t.Errorf("%s: count %v: %d, want %d", when, c.f, n, len(c.want))
			}
		}
		if got := f.contents(nostr.Filter{Search: "nostr", Limit: 2}); len(got) != 2 {
			t.Errorf("%s: limit 2 served %d", when, len(got))
		}
		// A search beside a plain filter: the search's results first, no
		// event twice.
		got := f.contents(nostr.Filter{Search: "go"}, nostr.Filter{Authors: []string{bob.pk}, Kinds: []int{1}})
		if len(got) != 3 || got[0] != "a relay in Go" || slices.Contains(got[1:], "a relay in Go") {
			t.Errorf("%s: search beside a plain filter: %q", when, got)
		}
		if n := f.count(nostr.Filter{Search: "nostr", Kinds: []int{1}}, nostr.Filter{Search: "relay"}); n != 4 {
			t.Errorf("%s: count of two searches %d, want 4", when, n)
		}
	})
}

// Ranking: among contents of one length, more occurrences of the words
// first; among contents holding them as often, the shorter first; equal
// relevance, newest first.
func testSearchRanking(t *testing.T, f *fixture) {
	f.searcher()
	k := newKey(t)
	f.save(items(
		event(t, k, 1, 100, nil, "zap zap zap one two"),
		event(t, k, 1, 101, nil, "zap one two three four"),
		event(t, k, 1, 102, nil, "zap zap one two three"),
		event(t, k, 1, 103, nil, "relay one"),
		event(t, k, 1, 105, nil, "relay one two three four five six seven"),
		event(t, k, 1, 104, nil, "relay one two three"),
		event(t, k, 1, 200, nil, "tie tie"),
		event(t, k, 1, 201, nil, "tie tie"),
		event(t, k, 1, 199, nil, "tie tie"),
	))
	f.twice(func(when string) {
		for _, c := range []struct {
			f    nostr.Filter
			want []string
		}{
			{nostr.Filter{Search: "zap"}, []string{"zap zap zap one two", "zap zap one two three", "zap one two three four"}},
			{nostr.Filter{Search: "ZAP", Limit: 2}, []string{"zap zap zap one two", "zap zap one two three"}},
			{nostr.Filter{Search: "relay"}, []string{"relay one", "relay one two three", "relay one two three four five six seven"}},
		} {
			if got := f.contents(c.f); !slices.Equal(got, c.want) {
				t.Errorf("%s: %v:\n got %q\nwant %q", when, c.f, got, c.want)
			}
		}
		var at []nostr.Timestamp
		_, err := f.s.Query(context.Background(), filters(nostr.Filter{Search: "tie"}), func(raw []byte) error {
			var ev nostr.Event
			err := json.Unmarshal(raw, &ev)
			at = append(at, ev.CreatedAt)
			return err
		})
		if err != nil || !slices.Equal(at, []nostr.Timestamp{201, 200, 199}) {
			t.Errorf("%s: ties not newest first: %v %v", when, at, err)
		}
	})
}

// Deleted, replaced, expired and vanished events leave search with their
// row; the configured kinds survive a restart, and changing them indexes or
// drops what is stored.
func testSearchFollowsChanges(t *testing.T, f *fixture) {
	f.searcher()
	k, gone := newKey(t), newKey(t)
	now := time.Now().Unix()
	note := event(t, k, 1, 100, nil, "ephemeral thoughts")
	f.save(items(note,
		event(t, k, 30023, 100, nostr.Tags{{"d", "a"}}, "draft thoughts"),
		event(t, k, 0, 100, nil, "thoughts about me"),
		event(t, k, 1, 100, nostr.Tags{{"expiration", fmt.Sprint(now - 1)}}, "expired thoughts"),
		event(t, gone, 1, now-10, nil, "vanishing thoughts"),
	))
	f.settle()
	if got := f.contents(nostr.Filter{Search: "thoughts"}); len(got) != 3 {
		t.Fatalf("before: %q", got)
	}
	f.save(items(
		event(t, k, 30023, 200, nostr.Tags{{"d", "a"}}, "final text"),
		deletion(t, k, 300, []string{note.Event.ID}, nil),
		event(t, gone, 62, now, nostr.Tags{{"relay", "ALL_RELAYS"}}, ""),
	))
	f.twice(func(when string) {
		if got := f.contents(nostr.Filter{Search: "thoughts"}); len(got) != 0 {
			t.Errorf("%s: replaced, deleted, expired and vanished events found: %q", when, got)
		}
		if n := f.count(nostr.Filter{Search: "thoughts"}); n != 0 {
			t.Errorf("%s: count %d", when, n)
		}
		if got := f.contents(nostr.Filter{Search: "final"}); !slices.Equal(got, []string{"final text"}) {
			t.Errorf("%s: new version: %q", when, got)
		}
	})
	if _, err := f.s.DeleteExpired(context.Background(), now); err != nil {
		t.Fatal(err)
	}

	f.reopen(Options{}) // nil kinds: the database's
	if k := f.searcher().SearchKinds(); !slices.Equal(k, []int{1, 30023}) {
		t.Errorf("kinds after reopening with nil: %v", k)
	}
	f.reopen(Options{SearchKinds: []int{1, 0}})
	if k := f.searcher().SearchKinds(); !slices.Equal(k, []int{0, 1}) {
		t.Errorf("kinds after reopening with [1 0]: %v", k)
	}
	f.twice(func(when string) {
		if got := f.contents(nostr.Filter{Search: "thoughts"}); !slices.Equal(got, []string{"thoughts about me"}) {
			t.Errorf("%s: after adding kind 0: %q", when, got)
		}
		if got := f.contents(nostr.Filter{Search: "final"}); len(got) != 0 {
			t.Errorf("%s: after removing kind 30023: %q", when, got)
		}
	})
	f.reopen(Options{SearchKinds: []int{}})
	if got := f.contents(nostr.Filter{Search: "thoughts"}); len(got) != 0 || len(f.searcher().SearchKinds()) != 0 {
		t.Errorf("search off still finds %q", got)
	}
	if s, err := f.db(Options{SearchKinds: []int{70000}}); err == nil {
		s.Close()
		t.Error("kind 70000 accepted")
	}
}

// Searches find exactly what the engine's SearchMatcher, the relay's live
// matching, finds, whatever the words: punctuation, case, accents, long
// words, repeated words, NUL characters and very long contents.
func testSearchWords(t *testing.T, f *fixture) {
	f.searcher()
	k := newKey(t)
	long := strings.Repeat("w", 3000)
	var many strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&many, "filler%d ", i%50)
	}
	many.WriteString("needle")
	contents := []string{
		"x_y-z don't C++ 1.5 v2.0",
		"see https://example.com/path?q=nostr#frag and mail@host.org",
		"#hashtag @mention $ticker",
		"visible\x00hidden",
		"ÉCOLE Straße ΣΊΣΥΦΟΣ İstanbul ǅemal",
		"日本語のテキスト、中文文本。한국어",
		"emoji😀between🎉words",
		long + " short",
		strings.Repeat("echo ", 1000) + "end",
		many.String(),
		"\u0301leading combining mark a\u0300",
		"tab\tnew\nline\rcarriage",
	}
	var batch []storage.Item
	for i, c := range contents {
		batch = append(batch, event(t, k, 1, int64(100+i), nil, c))
	}
	f.save(batch)
	queries := []string{
		"x", "y", "z", "don", "t", "c", "1", "5", "v2", "0", "https", "example", "com", "path", "q", "nostr", "frag",
		"mail", "host", "org", "hashtag", "mention", "ticker", "visible", "hidden", "école", "strasse", "straße",
		"σίσυφος", "istanbul", "i̇stanbul", "ǆemal", "日本語のテキスト", "中文文本", "한국어", "emoji", "between", "words",
		long, strings.ToUpper(long), long[:2999], "short", "echo", "end", "echo end", "needle", "filler7 needle",
		"leading", "a\u0300", "a", "tab", "new", "line", "carriage", "example.com", "host.org",
	}
	f.twice(func(when string) {
		for _, q := range queries {
			match := f.searcher().SearchMatcher(q)
			var want []string
			for _, c := range contents {
				if match(&nostr.Event{Kind: 1, Content: c}) {
					want = append(want, c)
				}
			}
			if got := f.contents(nostr.Filter{Search: q}); !slices.Equal(sorted(got), sorted(want)) {
				t.Errorf("%s: search %.40q:\n got %.60q\nwant %.60q", when, q, got, want)
			}
		}
	})
}

// Every event a search serves holds every word of the search, and it serves
// every one that does: random texts over a small vocabulary with case,
// accents and punctuation, against random searches.
func testSearchNeverServesNonMatches(t *testing.T, f *fixture) {
	f.searcher()
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := []string{"nostr", "Nostr", "NOSTR", "relay", "relays", "zap", "zaps", "café", "cafe", "CAFÉ", "go", "gopher", "über", "uber", "日本", "e\u0301cole"}
	seps := []string{" ", ", ", ".", "\n", "-", "'", "!", "#", "😀", ":", "&", "|"}
	text := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(seps[rng.IntN(len(seps))])
			}
			b.WriteString(vocab[rng.IntN(len(vocab))])
		}
		return b.String()
	}
	k := newKey(t)
	var batch []storage.Item
	for i := range 300 {
		batch = append(batch, event(t, k, 1, int64(i), nil, text(1+rng.IntN(6))))
	}
	f.save(batch)
	searches := make([]string, 200)
	for i := range searches {
		searches[i] = text(1 + rng.IntN(3))
	}
	f.twice(func(when string) {
		for _, q := range searches {
			match := f.searcher().SearchMatcher(q)
			got := f.contents(nostr.Filter{Search: q, Limit: 1000})
			for _, c := range got {
				if !match(&nostr.Event{Kind: 1, Content: c}) {
					t.Errorf("%s: search %q served %q, which lacks a word", when, q, c)
				}
			}
			want := 0
			for _, it := range batch {
				if match(&nostr.Event{Kind: 1, Content: it.Event.Content}) {
					want++
				}
			}
			if len(got) != want {
				t.Errorf("%s: search %q served %d events, %d hold its words", when, q, len(got), want)
			}
		}
	})
}

package sqlite

import (
	"context"
	"encoding/json"

	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/unicode61"
)

type searchFixture struct {
	t *testing.T
	s *Store
}

func openSearchStore(t *testing.T, path string, kinds []int) *Store {
	t.Helper()
	// The tests decide when the index catches up.
	s, err := Open(context.Background(), path, Options{ReadConns: 2, SearchKinds: kinds, manualUpkeep: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func signed(t testing.TB, sk string, kind int, createdAt int64, content string, tags ...nostr.Tag) storage.Item {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(createdAt), Content: content, Tags: nostr.Tags(tags)}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	raw, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return storage.Item{Event: ev, Raw: raw}
}

func (f searchFixture) save(its ...storage.Item) {
	f.t.Helper()
	if _, err := f.s.Save(context.Background(), its); err != nil {
		f.t.Fatal(err)
	}
}

// events returns what the filters serve, in order.
func (f searchFixture) events(filters ...nostr.Filter) []*nostr.Event {
	f.t.Helper()
	var out []*nostr.Event
	_, err := f.s.Query(context.Background(), filters, func(raw []byte) error {
		var ev nostr.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		out = append(out, &ev)
		return nil
	})
	if err != nil {
		f.t.Fatalf("query %v: %v", filters, err)
	}
	return out
}

func contents(evs []*nostr.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Content
	}
	return out
}

func TestSearch(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1, 30023})
	defer s.Close()
	f := searchFixture{t, s}
	alice, bob := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	bobPK, _ := nostr.GetPublicKey(bob)
	f.save(
		signed(t, alice, 1, 100, "Nostr relays are simple"),
		signed(t, alice, 1, 101, "I like nostr, and I like relays: nostr nostr"),
		signed(t, bob, 1, 102, "a relay in Go", nostr.Tag{"t", "go"}),
		signed(t, bob, 1, 103, "nostrich is not nostr's word boundary test"),
		signed(t, alice, 7, 104, "nostr"), // not a searchable kind
		signed(t, bob, 30023, 105, "A long article about NOSTR and relays", nostr.Tag{"d", "article"}),
		signed(t, alice, 1, 106, "Crème brûlée recipe"),
		signed(t, bob, 1, 107, "ÉCOLE école ecole"),
	)
	search := func(q string, more ...func(*nostr.Filter)) []string {
		fl := nostr.Filter{Search: q, Limit: 100}
		for _, m := range more {
			m(&fl)
		}
		return contents(f.events(fl))
	}
	cases := []struct {
		q    string
		more []func(*nostr.Filter)
		want []string // in rank order
	}{
		// Relevance (BM25): more occurrences first, then shorter content.
		{"nostr", nil, []string{
			"I like nostr, and I like relays: nostr nostr", // 3 in 10 words
			"Nostr relays are simple",                      // 1 in 4
			"A long article about NOSTR and relays",        // 1 in 7
			"nostrich is not nostr's word boundary test",   // 1 in 8
		}},
		// Both words in 4 beat one word thrice and the other once in 10.
		{"NOSTR relays", nil, []string{
			"Nostr relays are simple",
			"I like nostr, and I like relays: nostr nostr",
			"A long article about NOSTR and relays",
		}},
		{"relay", nil, []string{"a relay in Go"}}, // whole words: no stemming
		{"nostrich", nil, []string{"nostrich is not nostr's word boundary test"}},
		{"brûlée", nil, []string{"Crème brûlée recipe"}},
		{"brulee", nil, nil}, // accents must match
		{"école", nil, []string{"ÉCOLE école ecole"}},
		{"nothing-here", nil, nil},
		{"include:spam relay", nil, []string{"a relay in Go"}}, // an extension is ignored
		{"language:en", nil, nil},                              // no words: nothing
		{`"relay" OR nostr*`, nil, nil},                        // no query syntax: OR is a word
		{"relay go", nil, []string{"a relay in Go"}},           // every word, anywhere
		{"relay nostr", nil, nil},                              // every word is required
		{"nostr", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Kinds = []int{30023} }}, []string{"A long article about NOSTR and relays"}},
		{"nostr", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Kinds = []int{7} }}, nil},
		{"nostr", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Authors = []string{bobPK} }}, []string{
			"A long article about NOSTR and relays",
			"nostrich is not nostr's word boundary test",
		}},
		{"relay", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Tags = nostr.TagMap{"t": {"go"}} }}, []string{"a relay in Go"}},
		{"relay", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Tags = nostr.TagMap{"t": {"rust"}} }}, nil},
		{"nostr", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Since = ts(102); fl.Until = ts(104) }}, []string{"nostrich is not nostr's word boundary test"}},
		{"nostr", []func(*nostr.Filter){func(fl *nostr.Filter) { fl.Limit = 2 }}, []string{
			"I like nostr, and I like relays: nostr nostr",
			"Nostr relays are simple",
		}},
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			got := search(c.q, c.more...)
			if !slices.Equal(got, c.want) {
				t.Errorf("search %q:\n got %q\nwant %q", c.q, got, c.want)
			}
		})
	}

	// Ties in relevance: newest first.
	f.save(signed(t, alice, 1, 200, "tie tie"), signed(t, bob, 1, 201, "tie tie"), signed(t, alice, 1, 199, "tie tie"))
	if got := f.events(nostr.Filter{Search: "tie", Limit: 10}); len(got) != 3 ||
		got[0].CreatedAt != 201 || got[1].CreatedAt != 200 || got[2].CreatedAt != 199 {
		t.Errorf("ties not newest first: %v", got)
	}

	// A search filter beside a plain one: search results first, no repeats.
	got := f.events(nostr.Filter{Search: "go", Limit: 10}, nostr.Filter{Authors: []string{bobPK}, Kinds: []int{1}, Limit: 10})
	if len(got) == 0 || got[0].Content != "a relay in Go" {
		t.Errorf("mixed filters: %q", contents(got))
	}
	seen := map[string]bool{}
	for _, ev := range got {
		if seen[ev.ID] {
			t.Errorf("event %s served twice", ev.ID)
		}
		seen[ev.ID] = true
	}

	// Count serves search too.
	if n, approx, err := s.Count(context.Background(), []nostr.Filter{{Search: "nostr"}}); n != 4 || approx || err != nil {
		t.Errorf("count search nostr: %d %v %v, want 4", n, approx, err)
	}
	if n, _, err := s.Count(context.Background(), []nostr.Filter{{Search: "nostr", Kinds: []int{1}}, {Search: "relay"}}); n != 4 || err != nil {
		t.Errorf("count two searches: %d %v, want 4", n, err)
	}
}

// Deleted, replaced and expired events leave the index with their row;
// changing the configured kinds reindexes what is stored.
func TestSearchFollowsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s := openSearchStore(t, path, []int{1, 30023})
	f := searchFixture{t, s}
	sk := nostr.GeneratePrivateKey()
	note := signed(t, sk, 1, 100, "ephemeral thoughts")
	v1 := signed(t, sk, 30023, 100, "draft thoughts", nostr.Tag{"d", "a"})
	profile := signed(t, sk, 0, 100, "thoughts about me")
	f.save(note, v1, profile)
	catchUp(t, s, 100) // in the index, so that deleting must take them out of it
	if got := contents(f.events(nostr.Filter{Search: "thoughts"})); len(got) != 2 {
		t.Fatalf("before: %q", got)
	}
	f.save(signed(t, sk, 30023, 200, "final text", nostr.Tag{"d", "a"}))
	f.save(signed(t, sk, 5, 300, "", nostr.Tag{"e", note.Event.ID}))
	if got := contents(f.events(nostr.Filter{Search: "thoughts"})); len(got) != 0 {
		t.Errorf("replaced and deleted events still found: %q", got)
	}
	if got := contents(f.events(nostr.Filter{Search: "final"})); !slices.Equal(got, []string{"final text"}) {
		t.Errorf("new version: %q", got)
	}
	var rows int
	if err := s.r.QueryRow("SELECT count(*) FROM events_search").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("index rows %d (%v), want 0: the deleted and replaced ones gone, the new one not indexed yet", rows, err)
	}
	catchUp(t, s, 100)
	if err := s.r.QueryRow("SELECT count(*) FROM events_search").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("index rows %d (%v), want 1", rows, err)
	}
	s.Close()

	// nil keeps the setting; a new list reindexes.
	s = openSearchStore(t, path, nil)
	if k := s.SearchKinds(); !slices.Equal(k, []int{1, 30023}) {
		t.Errorf("kinds after reopening with nil: %v", k)
	}
	s.Close()
	s = openSearchStore(t, path, []int{0, 1})
	f = searchFixture{t, s}
	if got := contents(f.events(nostr.Filter{Search: "thoughts"})); !slices.Equal(got, []string{"thoughts about me"}) {
		t.Errorf("after adding kind 0: %q", got)
	}
	if got := contents(f.events(nostr.Filter{Search: "final"})); len(got) != 0 {
		t.Errorf("after removing kind 30023: %q", got)
	}
	s.Close()
	s = openSearchStore(t, path, []int{})
	f = searchFixture{t, s}
	if got := f.events(nostr.Filter{Search: "thoughts"}); len(got) != 0 || len(s.SearchKinds()) != 0 {
		t.Errorf("search off still finds %d", len(got))
	}
	if err := s.r.QueryRow("SELECT count(*) FROM events_search").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("index rows %d (%v), want 0", rows, err)
	}
	s.Close()
	if _, err := Open(context.Background(), path, Options{SearchKinds: []int{70000}}); err == nil {
		t.Error("kind 70000 accepted")
	}
}

// tokenizerWords asks the index's tokenizer (unicode61, as migration 3
// creates events_search) how it splits and folds every code point: for
// each one, whether it is part of a word, and its folded form.
func tokenizerWords(t *testing.T, s *Store) (isWord map[rune]bool, folded map[rune]rune) {
	t.Helper()
	ctx := context.Background()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.tok USING fts3tokenize(unicode61, "remove_diacritics=0")`); err != nil {
		t.Fatal(err)
	}
	isWord, folded = map[rune]bool{}, map[rune]rune{}
	var runes []rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if utf8.ValidRune(r) && r != 'a' {
			runes = append(runes, r)
		}
	}
	// Each rune as "a<r>a", many per call: one token "a<f>a" when r is
	// part of a word (f its folded form), two tokens "a" when not.
	for len(runes) > 0 {
		chunk := runes[:min(len(runes), 4000)]
		runes = runes[len(chunk):]
		var in strings.Builder
		for _, r := range chunk {
			in.WriteString(" a")
			in.WriteRune(r)
			in.WriteString("a")
		}
		rows, err := conn.QueryContext(ctx, "SELECT token FROM temp.tok WHERE input = ? ORDER BY position", in.String())
		if err != nil {
			t.Fatal(err)
		}
		var toks []string
		for rows.Next() {
			var tok string
			if err := rows.Scan(&tok); err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		rows.Close()
		for _, r := range chunk {
			if len(toks) == 0 {
				t.Fatalf("tokenizer output ends before %U", r)
			}
			tok := toks[0]
			if tok == "a" {
				if len(toks) < 2 || toks[1] != "a" {
					t.Fatalf("unexpected tokens at %U: %q", r, toks[:min(3, len(toks))])
				}
				toks = toks[2:]
				continue
			}
			mid := strings.TrimSuffix(strings.TrimPrefix(tok, "a"), "a")
			f, n := utf8.DecodeRuneInString(mid)
			if n != len(mid) || n == 0 {
				t.Fatalf("token %q for %U", tok, r)
			}
			isWord[r], folded[r] = true, f
			toks = toks[1:]
		}
	}
	return isWord, folded
}

// tokenizeMany returns the tokens of each input as the index's tokenizer
// makes them, asking it about many inputs at a time.
func tokenizeMany(t *testing.T, s *Store, inputs []string) [][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS temp.tok USING fts3tokenize(unicode61, "remove_diacritics=0")`); err != nil {
		t.Fatal(err)
	}
	out := make([][]string, len(inputs))
	for first := 0; first < len(inputs); first += 4000 {
		chunk := inputs[first:min(len(inputs), first+4000)]
		// Inputs separated by spaces; a token belongs to the input its
		// start offset falls in.
		var in strings.Builder
		starts := make([]int, len(chunk))
		for i, x := range chunk {
			in.WriteByte(' ')
			starts[i] = in.Len()
			in.WriteString(x)
		}
		rows, err := conn.QueryContext(ctx, "SELECT token, start FROM temp.tok WHERE input = ? ORDER BY position", in.String())
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var tok string
			var start int
			if err := rows.Scan(&tok, &start); err != nil {
				t.Fatal(err)
			}
			i, found := slices.BinarySearch(starts, start)
			if !found {
				i--
			}
			out[first+i] = append(out[first+i], tok)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// unicode61.Terms splits and folds words exactly as the SQLite
// tokenizer of the index does, for every code point, so that the relay's
// live matching of search subscriptions agrees with stored search (go
// generate ./storage/internal/unicode61 rewrites the table that makes it
// so).
func TestSearchWordsMatchTokenizer(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the tokenizer about every code point")
	}
	s := openTestStore(t)
	isWord, folded := tokenizerWords(t, s)
	mismatches := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) || r == 'a' {
			continue
		}
		want := []string{"a"}
		if isWord[r] {
			want = []string{"a" + string(folded[r]) + "a"}
		}
		if got := unicode61.Terms("a" + string(r) + "a"); !slices.Equal(got, want) && r != ':' {
			if mismatches++; mismatches <= 10 {
				t.Errorf("%U: words %q, tokenizer %q", r, got, want)
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d code points differ; run go generate ./storage/internal/unicode61", mismatches)
	}
	// And at the start of a word, where combining diacritics that the
	// tokenizer keeps inside a word do not start one.
	var inputs []string
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if utf8.ValidRune(r) && r != ':' {
			inputs = append(inputs, string(r)+"a")
		}
	}
	mismatches = 0
	for i, want := range tokenizeMany(t, s, inputs) {
		if got := unicode61.Terms(inputs[i]); !slices.Equal(got, want) {
			if mismatches++; mismatches <= 10 {
				t.Errorf("%q: words %q, tokenizer %q", inputs[i], got, want)
			}
		}
	}
	for _, c := range []struct{ in, want string }{
		{"Hello, World! héllo", "hello world héllo"},
		{"ÉCOLE e\u0301cole", "école e\u0301cole"},
		{"µ ς ſ İ", "μ σ s İ"},
		{"x_y-z don't C++", "x y z don t c"},
		{"\u0301école \u0300a\u0300", "école a\u0300"},
	} {
		if got := strings.Join(unicode61.Terms(c.in), " "); got != c.want {
			t.Errorf("words of %q: %q, want %q", c.in, got, c.want)
		}
	}
}

func ts(v int64) *nostr.Timestamp {
	x := nostr.Timestamp(v)
	return &x
}

// A search is driven by the full-text index, the events reached by rowid.
func TestSearchPlan(t *testing.T) {
	s := openTestStore(t)
	hex := strings.Repeat("ab", 32)
	for _, f := range []nostr.Filter{
		{Search: "nostr", Limit: 10},
		{Search: "nostr relay", Kinds: []int{1}, Authors: []string{hex}, Limit: 10},
		{Search: "nostr", Tags: nostr.TagMap{"t": {"x"}}, Since: ts(100), Limit: 10},
	} {
		q, ok, err := buildSearchQuery(&f, 1000)
		if err != nil || !ok {
			t.Fatalf("build: %v %v", ok, err)
		}
		plan := strings.Join(explain(t, s, q), "\n")
		if !strings.Contains(plan, "SCAN events_search VIRTUAL TABLE INDEX") || !strings.Contains(plan, "SEARCH e USING INTEGER PRIMARY KEY") ||
			strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("plan of %v:\n%s", f, plan)
		}
		// The tail is read by its seq range, newest first, whatever else
		// the filter has an index for.
		plan = strings.Join(explain(t, s, builtQuery{sql: q.tailSQL, args: q.tailArgs}), "\n")
		if !strings.Contains(plan, "SEARCH e USING INTEGER PRIMARY KEY (rowid>?)") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("tail plan of %v:\n%s", f, plan)
		}
		c, ok, err := buildCountSelect(&f)
		if err != nil || !ok {
			t.Fatalf("build count: %v %v", ok, err)
		}
		lines := explain(t, s, c)
		plan = strings.Join(lines, "\n")
		if !strings.Contains(plan, "SEARCH e USING INTEGER PRIMARY KEY (rowid>?)") || !strings.Contains(plan, "VIRTUAL TABLE INDEX") ||
			slices.ContainsFunc(lines, func(l string) bool { return l == "SCAN e" || strings.HasPrefix(l, "SCAN e ") }) {
			t.Errorf("count plan of %v:\n%s", f, plan)
		}
	}
}

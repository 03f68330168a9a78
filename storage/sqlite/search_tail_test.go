package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/unicode61"
)

// Tests of the search index's tail: the events above the watermark, which
// search reads without the index until IndexSearch gets to them.

// searchState returns the watermark, the rows of the index and the stored
// events of the search kinds, read on the writer.
func searchState(t *testing.T, s *Store) (indexed, rows, searchable int64) {
	t.Helper()
	err := s.w.QueryRow(`SELECT (SELECT indexed FROM search_state), (SELECT count(*) FROM events_search),
		(SELECT count(*) FROM events WHERE kind IN (SELECT kind FROM search_kinds))`).Scan(&indexed, &rows, &searchable)
	if err != nil {
		t.Fatal(err)
	}
	return indexed, rows, searchable
}

// lag is SearchLag, failing the test on error.
func lag(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.SearchLag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// catchUp runs IndexSearch until the index has caught up.
func catchUp(t *testing.T, s *Store, chunk int) {
	t.Helper()
	for {
		n, err := s.IndexSearch(context.Background(), chunk)
		if err != nil {
			t.Fatal(err)
		}
		if n < chunk {
			return
		}
	}
}

// bigBatch pads items with kind 7 events to more than loadedBatch, a batch
// that says the writer is loaded.
func bigBatch(t *testing.T, items ...storage.Item) []storage.Item {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	for i := 0; len(items) <= loadedBatch; i++ {
		items = append(items, signed(t, sk, 7, int64(10+i), "+"))
	}
	return items
}

// count is Count, failing the test on error or an approximate answer.
func (f searchFixture) count(filters ...nostr.Filter) int64 {
	f.t.Helper()
	n, approx, err := f.s.Count(context.Background(), filters)
	if err != nil || approx {
		f.t.Fatalf("count %v: %d %v %v", filters, n, approx, err)
	}
	return n
}

// An event saved in a big batch is found, counted and ranked before
// IndexSearch has run, in the same way after it, and halfway.
func TestSearchTail(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1, 30023})
	defer s.Close()
	f := searchFixture{t, s}
	alice, bob := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	bobPK, _ := nostr.GetPublicKey(bob)
	// Equal lengths, so that rank follows the count of "zap" whatever the
	// collection statistics; two equal ones tie and go newest first.
	f.save(bigBatch(t,
		signed(t, alice, 1, 100, "zap one two three four five"),
		signed(t, bob, 1, 101, "zap zap zap Zap four five", nostr.Tag{"t", "ln"}),
		signed(t, alice, 1, 102, "zap zap two three four five"),
		signed(t, bob, 1, 103, "zap zap two three four five"),
		signed(t, alice, 30023, 104, "ZAP zap zap three four five", nostr.Tag{"d", "a"}),
		signed(t, alice, 7, 105, "zap"), // not a search kind
		signed(t, bob, 1, 106, "nothing to see"),
		signed(t, bob, 1, 107, "zap expired", nostr.Tag{"expiration", "1000"}),
	)...)
	indexed, rows, _ := searchState(t, s)
	if lag(t, s) == 0 || rows != 0 || indexed != 0 {
		t.Fatalf("a big batch was indexed: lag %d, %d rows, watermark %d", lag(t, s), rows, indexed)
	}

	wantAll := []string{
		"zap zap zap Zap four five",
		"ZAP zap zap three four five",
		"zap zap two three four five", // created 103
		"zap zap two three four five", // created 102
		"zap one two three four five",
	}
	check := func(state string) {
		t.Helper()
		got := f.events(nostr.Filter{Search: "zap", Limit: 100})
		if !slices.Equal(contents(got), wantAll) || got[2].CreatedAt != 103 {
			t.Errorf("%s: search zap:\n got %q\nwant %q", state, contents(got), wantAll)
		}
		if got := contents(f.events(nostr.Filter{Search: "ZAP", Limit: 2})); !slices.Equal(got, wantAll[:2]) {
			t.Errorf("%s: limit 2: %q", state, got)
		}
		if got := contents(f.events(nostr.Filter{Search: "zap four", Authors: []string{bobPK}, Kinds: []int{1}})); len(got) != 2 || got[0] != wantAll[0] {
			t.Errorf("%s: by bob: %q", state, got)
		}
		if got := contents(f.events(nostr.Filter{Search: "zap", Tags: nostr.TagMap{"t": {"ln"}}})); !slices.Equal(got, wantAll[:1]) {
			t.Errorf("%s: by tag: %q", state, got)
		}
		if got := contents(f.events(nostr.Filter{Search: "zap", Since: ts(103)})); len(got) != 2 {
			t.Errorf("%s: since 103: %q", state, got)
		}
		if got := f.events(nostr.Filter{Search: "nothing zap"}); len(got) != 0 {
			t.Errorf("%s: every word is required: %q", state, contents(got))
		}
		// A search beside a plain filter that overlaps it: each event once.
		if got := f.events(nostr.Filter{Search: "zap"}, nostr.Filter{Authors: []string{bobPK}, Kinds: []int{1}}); len(got) != 6 {
			t.Errorf("%s: mixed filters: %q", state, contents(got))
		}
		for _, c := range []struct {
			filters []nostr.Filter
			want    int64
		}{
			{[]nostr.Filter{{Search: "zap"}}, 5},
			{[]nostr.Filter{{Search: "zap", Kinds: []int{1}}}, 4},
			{[]nostr.Filter{{Search: "zap", Authors: []string{bobPK}}}, 2},
			{[]nostr.Filter{{Search: "expired"}}, 0},
			// Bob's events overlap the matches; his expired one is not counted.
			{[]nostr.Filter{{Search: "zap"}, {Authors: []string{bobPK}}}, 6},
			{[]nostr.Filter{{Search: "zap"}, {Search: "nothing"}}, 6},
		} {
			if n := f.count(c.filters...); n != c.want {
				t.Errorf("%s: count %v: %d, want %d", state, c.filters, n, c.want)
			}
		}
	}
	check("in the tail")

	// Halfway: the watermark inside the batch.
	if n, err := s.IndexSearch(context.Background(), 3); n != 3 || err != nil {
		t.Fatalf("index 3: %d %v", n, err)
	}
	if indexed, rows, _ := searchState(t, s); indexed == 0 || rows == 0 {
		t.Fatalf("indexed nothing: watermark %d, %d rows", indexed, rows)
	}
	check("half indexed")

	catchUp(t, s, 4)
	indexed, rows, searchable := searchState(t, s)
	if lag(t, s) != 0 || rows != searchable {
		t.Fatalf("caught up: lag %d, %d rows for %d events", lag(t, s), rows, searchable)
	}
	check("indexed")
	if n, err := s.IndexSearch(context.Background(), 10); n != 0 || err != nil {
		t.Errorf("index when caught up: %d %v", n, err)
	}
	if again, _, _ := searchState(t, s); again != indexed {
		t.Errorf("watermark moved from %d to %d with nothing to index", indexed, again)
	}
}

// Save never indexes: every event waits for IndexSearch and is found
// meanwhile without the index. Only batches of more than loadedBatch
// count as load.
func TestSaveLeavesIndexing(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1})
	defer s.Close()
	f := searchFixture{t, s}
	sk := nostr.GeneratePrivateKey()
	f.save(signed(t, sk, 1, 100, "first light"), signed(t, sk, 7, 101, "light"))
	if indexed, rows, _ := searchState(t, s); lag(t, s) != 2 || rows != 0 || indexed != 0 {
		t.Fatalf("small batch: lag %d, %d rows, watermark %d", lag(t, s), rows, indexed)
	}
	if n := s.LoadedBatches(); n != 0 {
		t.Errorf("a small batch counted as load (%d)", n)
	}
	f.save(bigBatch(t, signed(t, sk, 1, 102, "second light"))...)
	if n := s.LoadedBatches(); n != 1 {
		t.Errorf("a big batch not counted as load (%d)", n)
	}
	f.save(signed(t, sk, 1, 103, "third light"))
	if got := contents(f.events(nostr.Filter{Search: "light"})); !slices.Equal(got, []string{"third light", "second light", "first light"}) {
		t.Errorf("before indexing: %q", got)
	}
	catchUp(t, s, 100)
	if _, rows, searchable := searchState(t, s); rows != 3 || searchable != 3 || lag(t, s) != 0 {
		t.Errorf("after indexing: %d rows, %d events, lag %d", rows, searchable, lag(t, s))
	}
	if got := contents(f.events(nostr.Filter{Search: "light"})); !slices.Equal(got, []string{"third light", "second light", "first light"}) {
		t.Errorf("after indexing: %q", got)
	}
}

// IndexSearch passes over events of other kinds, and stops where it is told.
func TestIndexSearchChunks(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1})
	defer s.Close()
	f := searchFixture{t, s}
	sk := nostr.GeneratePrivateKey()
	var batch []storage.Item
	for i := range 20 {
		batch = append(batch, signed(t, sk, 7, int64(i), "+ reaction"))
	}
	f.save(batch...)
	if lag(t, s) != 20 {
		t.Fatalf("lag %d, want 20", lag(t, s))
	}
	if n, err := s.IndexSearch(context.Background(), 8); n != 8 || err != nil {
		t.Fatalf("index 8: %d %v", n, err)
	}
	if indexed, rows, _ := searchState(t, s); indexed != 8 || rows != 0 || lag(t, s) != 12 {
		t.Errorf("after 8: watermark %d, %d rows, lag %d", indexed, rows, lag(t, s))
	}
	if n, err := s.IndexSearch(context.Background(), 100); n != 12 || err != nil {
		t.Fatalf("index the rest: %d %v", n, err)
	}
	if indexed, rows, _ := searchState(t, s); indexed != 20 || rows != 0 || lag(t, s) != 0 {
		t.Errorf("after all: watermark %d, %d rows, lag %d", indexed, rows, lag(t, s))
	}
	if n, err := s.IndexSearch(context.Background(), 0); n != 0 || err != nil {
		t.Errorf("index 0: %d %v", n, err)
	}
}

// Deleted and replaced events leave search whether they were indexed or
// still in the tail, and the index keeps no row for them.
func TestSearchTailFollowsChanges(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1, 30023})
	defer s.Close()
	f := searchFixture{t, s}
	sk := nostr.GeneratePrivateKey()
	indexedNote := signed(t, sk, 1, 100, "gone indexed")
	f.save(bigBatch(t, indexedNote, signed(t, sk, 30023, 100, "gone draft", nostr.Tag{"d", "x"}))...)
	catchUp(t, s, 1000)

	tailNote := signed(t, sk, 1, 200, "gone tail")
	sameBatch := signed(t, sk, 1, 201, "gone at once")
	f.save(bigBatch(t,
		tailNote,
		signed(t, sk, 30023, 202, "gone draft v2", nostr.Tag{"d", "y"}),
		sameBatch,
		signed(t, sk, 5, 203, "", nostr.Tag{"e", sameBatch.Event.ID}), // deleted in its own batch
	)...)
	if lag(t, s) == 0 {
		t.Fatal("no tail")
	}
	if got := contents(f.events(nostr.Filter{Search: "gone"})); len(got) != 4 {
		t.Fatalf("before: %q", got)
	}
	// One big batch deletes an indexed note and a tail note and replaces an
	// indexed and a tail version.
	f.save(bigBatch(t,
		signed(t, sk, 5, 300, "", nostr.Tag{"e", indexedNote.Event.ID}, nostr.Tag{"e", tailNote.Event.ID}),
		signed(t, sk, 30023, 301, "final x", nostr.Tag{"d", "x"}),
		signed(t, sk, 30023, 302, "final y", nostr.Tag{"d", "y"}),
	)...)
	for _, state := range []string{"tail", "indexed"} {
		if got := f.events(nostr.Filter{Search: "gone"}); len(got) != 0 {
			t.Errorf("%s: deleted and replaced events found: %q", state, contents(got))
		}
		if n := f.count(nostr.Filter{Search: "gone"}); n != 0 {
			t.Errorf("%s: deleted and replaced events counted: %d", state, n)
		}
		if got := contents(f.events(nostr.Filter{Search: "final"})); !slices.Equal(got, []string{"final y", "final x"}) {
			t.Errorf("%s: new versions: %q", state, got)
		}
		catchUp(t, s, 1000)
	}
	if _, rows, searchable := searchState(t, s); rows != searchable || rows != 2 {
		t.Errorf("index rows %d for %d searchable events, want 2", rows, searchable)
	}
}

// Changing the search kinds with events in the tail: a kind added is
// indexed up to the watermark at Open and searched above it until
// IndexSearch gets there; a kind removed is neither found nor indexed.
func TestSearchKindsChangeWithTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s := openSearchStore(t, path, []int{1})
	f := searchFixture{t, s}
	sk := nostr.GeneratePrivateKey()
	f.save(bigBatch(t,
		signed(t, sk, 1, 100, "old note"),
		signed(t, sk, 30023, 101, "old article", nostr.Tag{"d", "a"}),
	)...)
	catchUp(t, s, 1000)
	f.save(bigBatch(t,
		signed(t, sk, 1, 200, "new note"),
		signed(t, sk, 30023, 201, "new article", nostr.Tag{"d", "b"}),
	)...)
	tail := lag(t, s)
	if tail == 0 {
		t.Fatal("no tail")
	}
	s.Close()

	s = openSearchStore(t, path, []int{1, 30023})
	f = searchFixture{t, s}
	if lag(t, s) != tail {
		t.Errorf("opening moved the watermark: lag %d, was %d", lag(t, s), tail)
	}
	if _, rows, _ := searchState(t, s); rows != 2 {
		t.Errorf("%d index rows, want the old note and article", rows)
	}
	want := []string{"new article", "new note", "old article", "old note"}
	for _, state := range []string{"tail", "indexed"} {
		got := contents(f.events(nostr.Filter{Search: "note article"}))
		got = append(got, contents(f.events(nostr.Filter{Search: "article"}))...)
		got = append(got, contents(f.events(nostr.Filter{Search: "note"}))...)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: kinds 1 and 30023: %q", state, got)
		}
		if n := f.count(nostr.Filter{Search: "article"}); n != 2 {
			t.Errorf("%s: count articles: %d", state, n)
		}
		catchUp(t, s, 1000)
	}
	s.Close()

	// Removing kind 1 with new notes in the tail.
	s = openSearchStore(t, path, nil)
	f = searchFixture{t, s}
	f.save(bigBatch(t, signed(t, sk, 1, 300, "newer note"), signed(t, sk, 30023, 301, "newer article", nostr.Tag{"d", "c"}))...)
	s.Close()
	s = openSearchStore(t, path, []int{30023})
	defer s.Close()
	f = searchFixture{t, s}
	for _, state := range []string{"tail", "indexed"} {
		if got := f.events(nostr.Filter{Search: "note"}); len(got) != 0 {
			t.Errorf("%s: removed kind found: %q", state, contents(got))
		}
		if got := contents(f.events(nostr.Filter{Search: "article"})); len(got) != 3 {
			t.Errorf("%s: articles: %q", state, got)
		}
		catchUp(t, s, 1000)
	}
	if _, rows, searchable := searchState(t, s); rows != searchable || rows != 3 {
		t.Errorf("%d index rows for %d articles", rows, searchable)
	}
}

// Turning search on indexes everything stored at Open, whatever the
// watermark was while search was off: nothing is left to a tail.
func TestSearchTurnedOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s := openSearchStore(t, path, nil)
	sk := nostr.GeneratePrivateKey()
	searchFixture{t, s}.save(bigBatch(t, signed(t, sk, 1, 100, "before search"))...)
	s.Close()
	s = openSearchStore(t, path, []int{1})
	defer s.Close()
	if _, rows, _ := searchState(t, s); lag(t, s) != 0 || rows != 1 {
		t.Errorf("search turned on: lag %d, %d rows", lag(t, s), rows)
	}
}

// A search sees the index and its tail in one snapshot while batches and
// IndexSearch commit: with only matching notes and no gaps in seq, a
// search serves exactly as many events as its watermark, none twice.
func TestSearchSnapshotWhileIndexing(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1})
	defer s.Close()
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	var batches [][]storage.Item
	for b := range 20 {
		var batch []storage.Item
		for i := range 3 + b%2*20 { // small and big batches
			batch = append(batch, signed(t, sk, 1, int64(b*100+i), fmt.Sprintf("word %d", i)))
		}
		batches = append(batches, batch)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for _, batch := range batches {
			if _, err := s.Save(ctx, batch); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.IndexSearch(ctx, 7); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := 0; ; i++ {
		select {
		case <-done:
			wg.Wait()
			return
		default:
		}
		var ids []string
		wm, err := s.Query(ctx, []nostr.Filter{{Search: "word"}}, func(raw []byte) error {
			var ev struct{ ID string }
			if err := json.Unmarshal(raw, &ev); err != nil {
				return err
			}
			ids = append(ids, ev.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		n, _, err := s.Count(ctx, []nostr.Filter{{Search: "word"}})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		if int64(len(ids)) != wm || len(slices.Compact(ids)) != len(ids) || n < wm {
			t.Fatalf("search %d: %d events (%d distinct) with watermark %d, count %d", i, len(ids), len(slices.Compact(ids)), wm, n)
		}
	}
}

// The tail's matcher (unicode61.Matches, in Go) and the index (SQLite's
// unicode61 tokenizer) agree on random content: case, accents composed and
// not, combining marks that start a word, non-Latin scripts, NUL, invalid
// UTF-8. Each search must serve the same events from the tail as from the
// index, exactly those whose content holds its words, and count them; the
// index's own counts of words and occurrences (matchinfo) must be
// CountTerms', which ranks the tail.
func TestSearchTailMatchesIndex(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1})
	defer s.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	pieces := []string{
		"nostr", "Nostr", "NOSTR", "nostrs", "école", "ÉCOLE", "e\u0301cole", "ecole", "\u0301ecole", "x\u0301\u0301y",
		"straße", "STRASSE", "σίγμα", "ΣΊΓΜΑ", "ς", "σ", "ſ", "s", "µ", "μ", "K", "k", "İ", "i", "ı",
		"日本語", "日本", "Ｎｏｓｔｒ", "ｎｏｓｔｒ", "42", "x42", "ª", "\xAA", "\xC3", "\xE9\x80", "\xF4\x90\x80\x80",
		"\xFF", "\xC0\x80", "\xC3\xA9\xA9", "a\x00b", "\x00", "😀", "#nostr", "don't", "C++", "x_y", "\u0300",
		"\u200Bnostr", "nostr\u00A0relay", "relay", "RELAY", "ǅ", "ǆ", "Ǆ", "zap", "ZAP", "zaps", "ZAPs", "\u212Aind",
		"kind", "\u017Fat", "sat", "lightning", "LIGHTning", "e\u0301\u0301", "\xC3lightning",
	}
	seps := []string{" ", "", ", ", "\n", "-", "'", "\u3000", "\u0301", "."}
	var contentsByID = map[string]string{}
	var batch []storage.Item
	sk := nostr.GeneratePrivateKey()
	for i := range 400 {
		var b strings.Builder
		for j := range 1 + rng.IntN(8) {
			if j > 0 {
				b.WriteString(seps[rng.IntN(len(seps))])
			}
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		content := b.String()
		it := signed(t, sk, 1, int64(i), "")
		// The raw JSON carries the content byte for byte, invalid UTF-8
		// included, as the index reads it (json_extract).
		it.Raw = fmt.Appendf(nil, `{"id":"%s","content":"%s"}`, it.Event.ID, jsonEscape(content))
		contentsByID[it.Event.ID] = content
		batch = append(batch, it)
	}
	searchFixture{t, s}.save(batch...)

	var queries []string
	for _, p := range pieces {
		if strings.ToValidUTF8(p, "") == p && !strings.Contains(p, "\x00") {
			queries = append(queries, p)
		}
	}
	for range 100 {
		queries = append(queries, queries[rng.IntN(len(queries))]+" "+queries[rng.IntN(len(queries))])
	}
	served := func(q string) []string {
		var ids []string
		if _, err := s.Query(ctx, []nostr.Filter{{Search: q}}, func(raw []byte) error {
			ids = append(ids, string(raw[7:71]))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	fromTail := map[string][]string{}
	for _, q := range queries {
		fromTail[q] = served(q)
	}
	if lag(t, s) == 0 {
		t.Fatal("the events were indexed at once")
	}
	catchUp(t, s, 1000)
	matched := 0
	for _, q := range queries {
		terms := unicode61.Terms(q)
		var want []string
		for id, c := range contentsByID {
			if unicode61.Matches(terms, c) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		matched += len(want)
		if got := served(q); !slices.Equal(got, want) {
			t.Errorf("search %q (%q): index serves %d events, %d hold its words", q, terms, len(got), len(want))
		}
		if !slices.Equal(fromTail[q], want) {
			t.Errorf("search %q (%q): tail served %d events, %d hold its words", q, terms, len(fromTail[q]), len(want))
		}
		if n, _, err := s.Count(ctx, []nostr.Filter{{Search: q}}); err != nil || n != int64(len(want)) {
			t.Errorf("count %q: %d %v, want %d", q, n, err, len(want))
		}
		checkMatchinfo(t, s, q, terms, contentsByID)
	}
	if matched < 2*len(queries) {
		t.Errorf("only %d matches over %d searches: the test hardly tests", matched, len(queries))
	}
}

// checkMatchinfo compares the index's word counts of each event a search
// matches with unicode61.CountTerms.
func checkMatchinfo(t *testing.T, s *Store, q string, terms []string, contentsByID map[string]string) {
	t.Helper()
	expr, _, ok := matchExpr(q)
	if !ok {
		return
	}
	rows, err := s.r.Query(`SELECT hex(e.id), matchinfo(events_search, 'pcnalx')
		FROM events_search JOIN events AS e ON e.seq = events_search.docid WHERE events_search MATCH ?`, expr)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tf := make([]int, len(terms))
	for rows.Next() {
		var id string
		var info []byte
		if err := rows.Scan(&id, &info); err != nil {
			t.Fatal(err)
		}
		content := contentsByID[strings.ToLower(id)]
		var st searchStats
		itf, length := parseMatchinfo(info, len(terms), &st)
		words := unicode61.CountTerms(terms, content, tf)
		if float64(words) != length {
			t.Errorf("%q: index counts %v words, CountTerms %d", content, length, words)
		}
		for i := range tf {
			if float64(tf[i]) != itf[i] {
				t.Errorf("%q: %q occurs %v times in the index, %d for CountTerms", content, terms[i], itf[i], tf[i])
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// jsonEscape escapes s for a JSON string, leaving bytes from 0x80 alone.
func jsonEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

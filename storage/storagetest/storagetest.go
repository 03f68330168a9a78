// Package storagetest is the conformance suite every storage.Store engine
// must pass. An engine's own test calls Run with an Engine that makes fresh,
// empty databases; each optional interface (storage.Searcher, HLLCounter,
// Moderation, Eraser, IDLister, SeqLister, and DeleteOld for retention) is
// tested when the engine's store implements it.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// Engine is what the suite needs of an engine.
type Engine struct {
	// NewDB makes a new, empty database for t and returns what opens a
	// store on it. The suite may open the database again after closing a
	// store (a restart), and twice at once (two relay processes sharing
	// it); it closes every store it opens.
	NewDB func(t *testing.T) Opener
	// Settle, when not nil, runs the store's background upkeep until it is
	// done (such as the SQLite engine's search indexing); search tests
	// check their results before and after it.
	Settle func(t *testing.T, s storage.Store)
}

// Opener opens a store on one database.
type Opener func(opts Options) (storage.Store, error)

// Options are the settings a test asks of a store.
type Options struct {
	// SearchKinds are the kinds indexed for NIP-50 search: nil keeps the
	// database's setting (none in a new one), a list replaces it.
	SearchKinds []int
	// CountCap is how many events Count counts before it answers
	// approximately; 0 is the engine's default.
	CountCap int
}

// Run runs the suite. The subtests run in parallel.
func Run(t *testing.T, e Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
		opts Options
	}{
		{name: "SaveAndDuplicate", fn: testSaveAndDuplicate},
		{name: "StoredSig", fn: testStoredSig},
		{name: "SeqAndWatermark", fn: testSeqAndWatermark},
		{name: "RawBytesKept", fn: testRawBytesKept},
		{name: "OddTagBytes", fn: testOddTagBytes},
		{name: "QueryFilters", fn: testQueryFilters},
		{name: "QueryOrderTies", fn: testQueryOrderTies},
		{name: "QueryLimitPerFilter", fn: testQueryLimitPerFilter},
		{name: "QueryFiltersORed", fn: testQueryFiltersORed},
		{name: "Replaceable", fn: testReplaceable},
		{name: "ReplaceableTie", fn: testReplaceableTie},
		{name: "Addressable", fn: testAddressable},
		{name: "DeleteByID", fn: testDeleteByID},
		{name: "DeleteByAddress", fn: testDeleteByAddress},
		{name: "DeletionBeforeEvent", fn: testDeletionBeforeEvent},
		{name: "DeletionInBatch", fn: testDeletionInBatch},
		{name: "Expiration", fn: testExpiration},
		{name: "QueryCallbackError", fn: testQueryCallbackError},
		{name: "ContextCancel", fn: testContextCancel},
		{name: "Closed", fn: testClosed},
		{name: "Count", fn: testCount},
		{name: "CountFollowsChanges", fn: testCountFollowsChanges},
		{name: "CountHLL", fn: testCountHLL},
		{name: "CountApproximate", fn: testCountApproximate, opts: Options{CountCap: 10}},
		{name: "CountClosed", fn: testCountClosed},
		{name: "CountCancelled", fn: testCountCancelled},
		{name: "Vanish", fn: testVanish},
		{name: "VanishRemembered", fn: testVanishRemembered},
		{name: "Search", fn: testSearch, opts: Options{SearchKinds: []int{1, 30023}}},
		{name: "SearchRanking", fn: testSearchRanking, opts: Options{SearchKinds: []int{1}}},
		{name: "SearchFollowsChanges", fn: testSearchFollowsChanges, opts: Options{SearchKinds: []int{1, 30023}}},
		{name: "SearchWords", fn: testSearchWords, opts: Options{SearchKinds: []int{1}}},
		{name: "SearchNeverServesNonMatches", fn: testSearchNeverServesNonMatches, opts: Options{SearchKinds: []int{1}}},
		{name: "ModerationLists", fn: testModerationLists},
		{name: "TwoStoresTakeOneEntry", fn: testTwoStoresTakeOneEntry},
		{name: "DeleteMatchingAndScan", fn: testDeleteMatchingAndScan},
		{name: "SearchInScanAndDeleteMatching", fn: testSearchInScanAndDeleteMatching, opts: Options{SearchKinds: []int{1}}},
		{name: "ListIDs", fn: testListIDs},
		{name: "EventsAfter", fn: testEventsAfter},
		{name: "DeleteOld", fn: testDeleteOld, opts: Options{SearchKinds: []int{1, 7}}},
		{name: "DeleteOldChunks", fn: testDeleteOldChunks},
		{name: "SnapshotUnderWrites", fn: testSnapshotUnderWrites},
		{name: "TwoStoresRaceOnAddress", fn: testTwoStoresRaceOnAddress},
		{name: "IDPrefix", fn: testIDPrefix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newFixture(t, e, tc.opts))
		})
	}
}

// fixture is one open store on a new database, with helpers that fail the
// test on error.
type fixture struct {
	t  *testing.T
	e  Engine
	db Opener
	s  storage.Store
}

func newFixture(t *testing.T, e Engine, opts Options) *fixture {
	f := &fixture{t: t, e: e, db: e.NewDB(t)}
	f.s = f.open(opts)
	return f
}

// open opens another store on the fixture's database; it is closed when
// the test ends.
func (f *fixture) open(opts Options) storage.Store {
	f.t.Helper()
	s, err := f.db(opts)
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	f.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			f.t.Errorf("close: %v", err)
		}
	})
	return s
}

// reopen closes the fixture's store and opens the database again.
func (f *fixture) reopen(opts Options) {
	f.t.Helper()
	if err := f.s.Close(); err != nil {
		f.t.Fatalf("close: %v", err)
	}
	f.s = f.open(opts)
}

// settle runs the engine's background upkeep, if it has any.
func (f *fixture) settle() {
	f.t.Helper()
	if f.e.Settle != nil {
		f.e.Settle(f.t, f.s)
	}
}

func (f *fixture) close() {
	f.t.Helper()
	if err := f.s.Close(); err != nil {
		f.t.Fatalf("close: %v", err)
	}
}

// save saves items as one batch and checks their outcomes.
func (f *fixture) save(items []storage.Item, want ...storage.Outcome) []storage.Result {
	f.t.Helper()
	res, err := f.s.Save(context.Background(), items)
	if err != nil {
		f.t.Fatalf("save: %v", err)
	}
	if len(res) != len(items) {
		f.t.Fatalf("save: %d results for %d items", len(res), len(items))
	}
	for i, w := range want {
		if res[i].Outcome != w {
			f.t.Errorf("save item %d (kind %d, created_at %d): outcome %v, want %v",
				i, items[i].Event.Kind, items[i].Event.CreatedAt, res[i].Outcome, w)
		}
		if (res[i].Outcome == storage.Stored) != (res[i].Seq > 0) {
			f.t.Errorf("save item %d: outcome %v with seq %d", i, res[i].Outcome, res[i].Seq)
		}
	}
	return res
}

// saveOne saves one item as its own batch and checks its outcome.
func (f *fixture) saveOne(it storage.Item, want storage.Outcome) storage.Result {
	f.t.Helper()
	return f.save([]storage.Item{it}, want)[0]
}

// query returns the raw JSON of the events served and the watermark.
func (f *fixture) query(filters ...nostr.Filter) ([]string, int64) {
	f.t.Helper()
	var out []string
	wm, err := f.s.Query(context.Background(), filters, func(raw []byte) error {
		out = append(out, string(raw))
		return nil
	})
	if err != nil {
		f.t.Fatalf("query %v: %v", filters, err)
	}
	return out, wm
}

// ids returns the ids of the events served, in order.
func (f *fixture) ids(filters ...nostr.Filter) []string {
	f.t.Helper()
	return queryIDs(f.t, f.s, filters...)
}

func queryIDs(t testing.TB, s storage.Store, filters ...nostr.Filter) []string {
	t.Helper()
	var out []string
	_, err := s.Query(context.Background(), filters, func(raw []byte) error {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("served invalid JSON %q: %w", raw, err)
		}
		out = append(out, ev.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("query %v: %v", filters, err)
	}
	return out
}

// expectIDs checks which events the filters serve, in order.
func (f *fixture) expectIDs(filters []nostr.Filter, want ...string) {
	f.t.Helper()
	got := f.ids(filters...)
	if !slices.Equal(got, want) {
		f.t.Errorf("query %v:\n got %s\nwant %s", filters, short(got), short(want))
	}
}

func (f *fixture) has(id string) bool {
	f.t.Helper()
	ok, err := f.s.Has(context.Background(), id)
	if err != nil {
		f.t.Fatalf("has: %v", err)
	}
	return ok
}

// short abbreviates ids for failure messages.
func short(ids []string) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id[:min(8, len(id))]
	}
	return "[" + strings.Join(s, " ") + "]"
}

// key is a signing identity.
type key struct{ sk, pk string }

func newKey(t *testing.T) key {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return key{sk, pk}
}

// event builds a signed event and its canonical JSON.
func event(t *testing.T, k key, kind int, createdAt int64, tags nostr.Tags, content string) storage.Item {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(createdAt), Tags: tags, Content: content}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	raw, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return storage.Item{Event: ev, Raw: raw}
}

func items(its ...storage.Item) []storage.Item { return its }

func filters(fs ...nostr.Filter) []nostr.Filter { return fs }

func ts(v int64) *nostr.Timestamp {
	x := nostr.Timestamp(v)
	return &x
}

func testSaveAndDuplicate(t *testing.T, f *fixture) {
	k := newKey(t)
	a := event(t, k, 1, 1000, nil, "a")
	b := event(t, k, 1, 1001, nil, "b")
	if f.has(a.Event.ID) {
		t.Fatal("has an event never saved")
	}
	f.saveOne(a, storage.Stored)
	if !f.has(a.Event.ID) {
		t.Error("has does not see a stored event")
	}
	f.saveOne(a, storage.Duplicate)
	// Duplicates are found across the store and within one batch.
	f.save(items(b, a, b), storage.Stored, storage.Duplicate, storage.Duplicate)
	f.expectIDs(filters(nostr.Filter{}), b.Event.ID, a.Event.ID)
	for _, bad := range []string{"", "xyz", strings.ToUpper(a.Event.ID), a.Event.ID[:63]} {
		if f.has(bad) {
			t.Errorf("has(%q) is true", bad)
		}
	}
	if res, err := f.s.Save(context.Background(), nil); err != nil || len(res) != 0 {
		t.Errorf("empty batch: %v, %v", res, err)
	}
}

// StoredSig gives back the signature saved with an event, so that a
// re-sent event with another signature is not taken for a known duplicate.
func testStoredSig(t *testing.T, f *fixture) {
	ctx := context.Background()
	a := event(t, newKey(t), 1, 1000, nil, "a")
	if sig, found, err := f.s.StoredSig(ctx, a.Event.ID); err != nil || found || sig != "" {
		t.Fatalf("before saving: %q, %v, %v", sig, found, err)
	}
	f.saveOne(a, storage.Stored)
	if sig, found, err := f.s.StoredSig(ctx, a.Event.ID); err != nil || !found || sig != a.Event.Sig {
		t.Errorf("after saving: %q, %v, %v; want %q", sig, found, err, a.Event.Sig)
	}
	for _, bad := range []string{"", "xyz", strings.ToUpper(a.Event.ID)} {
		if _, found, err := f.s.StoredSig(ctx, bad); err != nil || found {
			t.Errorf("StoredSig(%q): found %v, %v", bad, found, err)
		}
	}
}

func testSeqAndWatermark(t *testing.T, f *fixture) {
	k := newKey(t)
	if _, wm := f.query(nostr.Filter{}); wm != 0 {
		t.Errorf("empty store: watermark %d, want 0", wm)
	}
	res := f.save(items(event(t, k, 1, 1000, nil, "a"), event(t, k, 1, 1000, nil, "b"), event(t, k, 1, 999, nil, "c")),
		storage.Stored, storage.Stored, storage.Stored)
	for i := 1; i < len(res); i++ {
		if res[i].Seq <= res[i-1].Seq {
			t.Errorf("seq %d after %d within a batch", res[i].Seq, res[i-1].Seq)
		}
	}
	_, wm := f.query(nostr.Filter{Kinds: []int{12345}}) // the watermark does not depend on matches
	if wm != res[2].Seq {
		t.Errorf("watermark %d, want the highest seq %d", wm, res[2].Seq)
	}

	// A seq is never reused, even after the newest event is gone.
	now := time.Now().Unix()
	gone := f.saveOne(event(t, k, 1, now-100, nostr.Tags{{"expiration", fmt.Sprint(now - 50)}}, "x"), storage.Stored)
	if gone.Seq <= wm {
		t.Errorf("seq %d not above watermark %d", gone.Seq, wm)
	}
	if n, err := f.s.DeleteExpired(context.Background(), now); err != nil || n != 1 {
		t.Fatalf("delete expired: %d, %v", n, err)
	}
	next := f.saveOne(event(t, k, 1, 1000, nil, "d"), storage.Stored)
	if next.Seq <= gone.Seq {
		t.Errorf("seq %d reused after deleting seq %d", next.Seq, gone.Seq)
	}
	if _, wm2 := f.query(nostr.Filter{}); wm2 != next.Seq {
		t.Errorf("watermark %d, want %d", wm2, next.Seq)
	}
}

func testRawBytesKept(t *testing.T, f *fixture) {
	k := newKey(t)
	a := event(t, k, 1, 1000, nostr.Tags{{"t", "x"}}, "caf\u00e9 \u2028 <b>&amp;</b> \"quoted\"\n")
	// Same event, other formatting: the store must not re-encode it.
	b := event(t, k, 1, 1001, nil, "b")
	e := b.Event
	b.Raw = fmt.Appendf(nil, "{ \"content\" : %q,\n  \"kind\":1, \"id\":%q, \"pubkey\":%q, \"created_at\":%d, \"tags\":[], \"sig\":%q }",
		e.Content, e.ID, e.PubKey, e.CreatedAt, e.Sig)
	f.save(items(a, b), storage.Stored, storage.Stored)
	raws, _ := f.query(nostr.Filter{})
	if len(raws) != 2 || raws[0] != string(b.Raw) || raws[1] != string(a.Raw) {
		t.Errorf("served bytes differ from stored bytes:\n got %q\nwant %q", raws, []string{string(b.Raw), string(a.Raw)})
	}
}

// testQueryFilters checks many filter shapes over one data set against a
// reference: go-nostr's Filter.Matches, with the store's documented rules.
func testQueryFilters(t *testing.T, f *fixture) {
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	var evs []*nostr.Event
	add := func(k key, kind int, createdAt int64, tags nostr.Tags) *nostr.Event {
		it := event(t, k, kind, createdAt, tags, fmt.Sprint(len(evs)))
		f.saveOne(it, storage.Stored)
		evs = append(evs, it.Event)
		return it.Event
	}
	root := add(alice, 1, 1000, nostr.Tags{{"t", "nostr"}, {"client", "x"}})
	reply := add(bob, 1, 1001, nostr.Tags{{"e", root.ID, "", "reply"}, {"p", alice.pk}, {"t", "nostr"}, {"t", "go"}})
	add(carol, 7, 1001, nostr.Tags{{"e", root.ID}, {"p", alice.pk}})
	add(carol, 7, 1002, nostr.Tags{{"e", reply.ID}, {"p", bob.pk}})
	add(alice, 1, 1002, nostr.Tags{{"e", reply.ID}, {"p", bob.pk}, {"p", carol.pk}, {"T", "Nostr"}})
	add(bob, 1, 1003, nostr.Tags{{"t", ""}, {"t", "go"}, {"t", "go"}, {"d", "x"}})
	add(alice, 30023, 1003, nostr.Tags{{"d", "post"}, {"t", "nostr"}, {"e"}})
	add(bob, 30023, 1004, nostr.Tags{{"d", "post"}, {"p", alice.pk}})
	add(carol, 1, 1004, nostr.Tags{{"t", "go"}, {"1", "one"}})
	add(alice, 7, 1005, nostr.Tags{{"e", reply.ID}, {"client", "x"}})
	for i := range 6 { // a run of equal timestamps
		add([]key{alice, bob, carol}[i%3], 1, 1006, nostr.Tags{{"t", "tie"}})
	}

	cases := []nostr.Filter{
		{},
		{Limit: 3},
		{Limit: 1000},
		{IDs: []string{root.ID, reply.ID}},
		{IDs: []string{root.ID, "zz", strings.ToUpper(reply.ID), reply.ID[:10]}},
		{IDs: []string{"not hex"}},
		{IDs: []string{}},
		{Authors: []string{alice.pk}},
		{Authors: []string{alice.pk, bob.pk}, Limit: 4},
		{Authors: []string{strings.ToUpper(alice.pk)}},
		{Authors: []string{}},
		{Kinds: []int{1}},
		{Kinds: []int{7, 30023}},
		{Kinds: []int{12345}},
		{Kinds: []int{}},
		{Authors: []string{carol.pk}, Kinds: []int{7}},
		{Authors: []string{alice.pk, carol.pk}, Kinds: []int{1, 7}, Limit: 2},
		{Tags: nostr.TagMap{"e": {root.ID}}},
		{Tags: nostr.TagMap{"e": {root.ID, reply.ID}}},
		{Tags: nostr.TagMap{"p": {alice.pk}}},
		{Tags: nostr.TagMap{"p": {bob.pk, carol.pk}}},
		{Tags: nostr.TagMap{"t": {"nostr"}}},
		{Tags: nostr.TagMap{"t": {"nostr", "go"}}, Limit: 3},
		{Tags: nostr.TagMap{"t": {""}}},
		{Tags: nostr.TagMap{"T": {"Nostr"}}},
		{Tags: nostr.TagMap{"t": {"Nostr"}}},
		{Tags: nostr.TagMap{"d": {"post"}}},
		{Tags: nostr.TagMap{"d": {"x"}}},
		{Tags: nostr.TagMap{"e": {}}},
		{Tags: nostr.TagMap{"e": nil}},
		{Tags: nostr.TagMap{"client": {"x"}}},
		{Tags: nostr.TagMap{"client": nil}, Kinds: []int{7}},
		{Tags: nostr.TagMap{"1": {"one"}}},
		{Tags: nostr.TagMap{"t": {"nostr"}, "p": {alice.pk}}},
		{Tags: nostr.TagMap{"t": {"go", "nostr"}, "e": {root.ID, reply.ID}}},
		{Tags: nostr.TagMap{"e": {reply.ID}}, Kinds: []int{7}},
		{Tags: nostr.TagMap{"e": {root.ID, reply.ID}}, Kinds: []int{7}},
		{Tags: nostr.TagMap{"p": {alice.pk}}, Authors: []string{carol.pk}},
		{Tags: nostr.TagMap{"p": {alice.pk}}, Authors: []string{carol.pk, bob.pk}, Kinds: []int{1}},
		{Tags: nostr.TagMap{"d": {"post"}}, Authors: []string{bob.pk}, Kinds: []int{30023}},
		{IDs: []string{root.ID}, Kinds: []int{7}},
		{IDs: []string{root.ID, reply.ID}, Authors: []string{bob.pk}},
		{Since: ts(1003)},
		{Until: ts(1003)},
		{Since: ts(1003), Until: ts(1003)},
		{Since: ts(1004), Until: ts(1002)},
		{Since: ts(1001), Until: ts(1005), Limit: 3},
		{Since: ts(1001), Tags: nostr.TagMap{"e": {root.ID, reply.ID}}},
		{Until: ts(1002), Tags: nostr.TagMap{"p": {alice.pk}}, Limit: 1},
		{Since: ts(1006), Limit: 4},
		{Tags: nostr.TagMap{"t": {"tie"}}, Limit: 2},
		{Search: "nostr"},
		{LimitZero: true},
		{LimitZero: true, Kinds: []int{1}},
	}
	now := time.Now().Unix()
	for i, flt := range cases {
		want := reference(evs, flt, now)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got := queryIDs(t, f.s, flt)
			if !slices.Equal(got, want) {
				t.Errorf("filter %v:\n got %s\nwant %s", flt, short(got), short(want))
			}
		})
	}
	// The reference itself is checked on a few cases, so that a mistake in
	// it cannot hide one in the store.
	if n := len(reference(evs, nostr.Filter{Tags: nostr.TagMap{"p": {alice.pk}}}, now)); n != 3 {
		t.Errorf("reference: #p alice has %d events, want 3", n)
	}
	if n := len(reference(evs, nostr.Filter{Since: ts(1003), Until: ts(1003)}, now)); n != 2 {
		t.Errorf("reference: since=until=1003 has %d events, want 2", n)
	}
}

// reference is what a store must serve for one filter over evs (all stored,
// none replaced or deleted): go-nostr's Filter.Matches, except that a search,
// limit 0, and a tag key other than one ASCII letter match nothing, and
// expired events are never served; newest first, lowest id on ties, cut to
// the limit.
func reference(evs []*nostr.Event, f nostr.Filter, now int64) []string {
	if f.Search != "" || (f.LimitZero && f.Limit <= 0) {
		return nil
	}
	for name, values := range f.Tags {
		if values != nil && !isLetter(name) {
			return nil
		}
	}
	var match []*nostr.Event
	for _, ev := range evs {
		if f.Matches(ev) && !expired(ev, now) {
			match = append(match, ev)
		}
	}
	slices.SortFunc(match, compareEvents)
	if f.Limit > 0 && len(match) > f.Limit {
		match = match[:f.Limit]
	}
	out := make([]string, len(match))
	for i, ev := range match {
		out[i] = ev.ID
	}
	return out
}

// Reference is the expected result of a query over evs, all of them stored
// as regular events: each filter as described for the suite's rules (go-nostr
// Filter.Matches; search, limit 0 and tag keys other than one ASCII letter
// match nothing; no expired events; newest first, lowest id first on ties;
// each filter cut to its limit), merged without duplicates in the same
// order. Engines' own differential tests may use it.
func Reference(evs []*nostr.Event, filters []nostr.Filter, now int64) []string {
	seen := make(map[string]bool)
	byID := make(map[string]*nostr.Event, len(evs))
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	var merged []*nostr.Event
	for _, f := range filters {
		for _, id := range reference(evs, f, now) {
			if !seen[id] {
				seen[id] = true
				merged = append(merged, byID[id])
			}
		}
	}
	slices.SortFunc(merged, compareEvents)
	out := make([]string, len(merged))
	for i, ev := range merged {
		out[i] = ev.ID
	}
	return out
}

func compareEvents(a, b *nostr.Event) int {
	if a.CreatedAt != b.CreatedAt {
		if a.CreatedAt > b.CreatedAt {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

func isLetter(name string) bool {
	return len(name) == 1 && ('a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z')
}

func expired(ev *nostr.Event, now int64) bool {
	exp, ok, _ := storage.Expiration(ev.Tags)
	return ok && exp <= now
}

func testQueryOrderTies(t *testing.T, f *fixture) {
	k := newKey(t)
	var tied []string
	var all []storage.Item
	for i := range 5 {
		it := event(t, k, 1, 2000, nil, fmt.Sprint("tie ", i))
		all = append(all, it)
		tied = append(tied, it.Event.ID)
	}
	older := event(t, k, 1, 1999, nil, "older")
	newer := event(t, k, 1, 2001, nil, "newer")
	all = append(all, older, newer)
	f.save(all)
	slices.Sort(tied)
	want := append(append([]string{newer.Event.ID}, tied...), older.Event.ID)
	f.expectIDs(filters(nostr.Filter{}), want...)
	f.expectIDs(filters(nostr.Filter{Authors: []string{k.pk}, Limit: 3}), want[:3]...)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{1}, Since: ts(2000), Until: ts(2000), Limit: 2}), tied[:2]...)

	// Many events in one second, more than a limit and its margin: the
	// lowest ids still win.
	var many []string
	var batch []storage.Item
	for i := range 40 {
		it := event(t, k, 1, 3000, nil, fmt.Sprint("crowd ", i))
		batch = append(batch, it)
		many = append(many, it.Event.ID)
	}
	latest := event(t, k, 1, 3001, nil, "latest")
	f.save(append(batch, latest))
	slices.Sort(many)
	f.expectIDs(filters(nostr.Filter{Authors: []string{k.pk}, Limit: 4}), append([]string{latest.Event.ID}, many[:3]...)...)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{1}, Since: ts(3000), Until: ts(3000), Limit: 25}), many[:25]...)
	f.expectIDs(filters(nostr.Filter{Authors: []string{k.pk}, Since: ts(3000), Limit: 5}, nostr.Filter{IDs: []string{latest.Event.ID}}),
		append([]string{latest.Event.ID}, many[:4]...)...)
}

func testQueryLimitPerFilter(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	var aIDs, bIDs []string
	for i := range 5 {
		ea := event(t, a, 1, int64(1000+2*i), nil, "a")
		eb := event(t, b, 1, int64(1001+2*i), nil, "b")
		f.save(items(ea, eb), storage.Stored, storage.Stored)
		aIDs = append([]string{ea.Event.ID}, aIDs...) // newest first
		bIDs = append([]string{eb.Event.ID}, bIDs...)
	}
	// Each filter has its own limit; the merged result is in global order.
	got := f.ids(nostr.Filter{Authors: []string{a.pk}, Limit: 2}, nostr.Filter{Authors: []string{b.pk}, Limit: 3})
	want := []string{bIDs[0], aIDs[0], bIDs[1], aIDs[1], bIDs[2]}
	if !slices.Equal(got, want) {
		t.Errorf("got %s, want %s", short(got), short(want))
	}
	f.expectIDs(filters(nostr.Filter{Kinds: []int{1}, Limit: 1}), bIDs[0])
	f.expectIDs(filters(nostr.Filter{Kinds: []int{1}, LimitZero: true}, nostr.Filter{Authors: []string{a.pk}, Limit: 1}), aIDs[0])
}

func testQueryFiltersORed(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	e1 := event(t, a, 1, 1000, nostr.Tags{{"t", "x"}}, "1")
	e2 := event(t, a, 7, 1001, nil, "2")
	e3 := event(t, b, 1, 1002, nostr.Tags{{"t", "x"}}, "3")
	f.save(items(e1, e2, e3))
	// Overlapping filters: every event once, newest first.
	f.expectIDs(filters(
		nostr.Filter{Authors: []string{a.pk}},
		nostr.Filter{Tags: nostr.TagMap{"t": {"x"}}},
		nostr.Filter{Kinds: []int{1, 7}},
		nostr.Filter{IDs: []string{e1.Event.ID}},
	), e3.Event.ID, e2.Event.ID, e1.Event.ID)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{7}}, nostr.Filter{Kinds: []int{}}), e2.Event.ID)
	f.expectIDs(nil)
}

func testReplaceable(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	for _, kind := range []int{0, 3, 10002} {
		v1 := event(t, a, kind, 100, nil, "v1")
		v2 := event(t, a, kind, 200, nil, "v2")
		v0 := event(t, a, kind, 50, nil, "v0")
		other := event(t, b, kind, 150, nil, "other author")
		byA := filters(nostr.Filter{Authors: []string{a.pk}, Kinds: []int{kind}})
		f.saveOne(v1, storage.Stored)
		f.saveOne(v2, storage.Stored)
		f.expectIDs(byA, v2.Event.ID)
		if f.has(v1.Event.ID) {
			t.Errorf("kind %d: replaced version still stored", kind)
		}
		f.saveOne(v0, storage.Superseded)
		f.saveOne(v1, storage.Superseded)
		f.saveOne(v2, storage.Duplicate)
		f.saveOne(other, storage.Stored)
		f.expectIDs(byA, v2.Event.ID)
		f.expectIDs(filters(nostr.Filter{Kinds: []int{kind}}), v2.Event.ID, other.Event.ID)

		// Within one batch, later items see earlier ones.
		v3 := event(t, a, kind, 300, nil, "v3")
		v25 := event(t, a, kind, 250, nil, "v2.5")
		f.save(items(v3, v25), storage.Stored, storage.Superseded)
		f.expectIDs(byA, v3.Event.ID)
	}
}

func testReplaceableTie(t *testing.T, f *fixture) {
	for _, kind := range []int{0, 30000} {
		for _, lowFirst := range []bool{true, false} {
			k := newKey(t)
			x := event(t, k, kind, 100, nostr.Tags{{"d", "same"}}, "x")
			y := event(t, k, kind, 100, nostr.Tags{{"d", "same"}}, "y")
			low, high := x, y
			if high.Event.ID < low.Event.ID {
				low, high = high, low
			}
			if lowFirst {
				f.saveOne(low, storage.Stored)
				f.saveOne(high, storage.Superseded)
			} else {
				f.saveOne(high, storage.Stored)
				f.saveOne(low, storage.Stored)
			}
			f.expectIDs(filters(nostr.Filter{Authors: []string{k.pk}}), low.Event.ID)
		}
	}
}

func testAddressable(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	x1 := event(t, a, 30023, 100, nostr.Tags{{"d", "x"}}, "x1")
	y1 := event(t, a, 30023, 100, nostr.Tags{{"d", "y"}}, "y1")
	none := event(t, a, 30023, 100, nil, "no d tag is d=''")
	empty := event(t, a, 30023, 101, nostr.Tags{{"d", ""}}, "d=''")
	other := event(t, b, 30023, 100, nostr.Tags{{"d", "x"}}, "other author")
	otherKind := event(t, a, 30024, 100, nostr.Tags{{"d", "x"}}, "other kind")
	f.save(items(x1, y1, none, other, otherKind), storage.Stored, storage.Stored, storage.Stored, storage.Stored, storage.Stored)
	f.saveOne(empty, storage.Stored) // replaces none
	byA := filters(nostr.Filter{Authors: []string{a.pk}, Kinds: []int{30023}})
	sorted := func(ids ...string) []string {
		slices.Sort(ids)
		return ids
	}
	f.expectIDs(byA, append([]string{empty.Event.ID}, sorted(x1.Event.ID, y1.Event.ID)...)...)

	// The first d tag names the address.
	x2 := event(t, a, 30023, 150, nostr.Tags{{"d", "x"}, {"d", "y"}}, "x2")
	f.saveOne(x2, storage.Stored)
	f.expectIDs(filters(nostr.Filter{Authors: []string{a.pk}, Tags: nostr.TagMap{"d": {"x"}}}), x2.Event.ID, otherKind.Event.ID)
	f.expectIDs(byA, x2.Event.ID, empty.Event.ID, y1.Event.ID)
	f.saveOne(event(t, a, 30023, 120, nostr.Tags{{"d", "x"}}, "x late"), storage.Superseded)
	f.expectIDs(filters(nostr.Filter{Authors: []string{b.pk}}), other.Event.ID)
}

// deletion builds a kind 5 naming events by id and addresses.
func deletion(t *testing.T, k key, createdAt int64, ids []string, addrs []string) storage.Item {
	t.Helper()
	var tags nostr.Tags
	for _, id := range ids {
		tags = append(tags, nostr.Tag{"e", id})
	}
	for _, a := range addrs {
		tags = append(tags, nostr.Tag{"a", a})
	}
	return event(t, k, 5, createdAt, tags, "")
}

func testDeleteByID(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	a1 := event(t, a, 1, 100, nil, "a1")
	a2 := event(t, a, 1, 101, nil, "a2")
	aRep := event(t, a, 30023, 102, nostr.Tags{{"d", "x"}}, "addressable")
	b1 := event(t, b, 1, 100, nil, "b1")
	f.save(items(a1, a2, aRep, b1))

	del := deletion(t, a, 200, []string{a1.Event.ID, aRep.Event.ID, b1.Event.ID, "not an id"}, nil)
	f.saveOne(del, storage.Stored)
	f.expectIDs(filters(nostr.Filter{Authors: []string{a.pk}}), del.Event.ID, a2.Event.ID)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{5}}), del.Event.ID)
	if f.has(a1.Event.ID) || !f.has(b1.Event.ID) {
		t.Error("deletion removed the wrong events")
	}
	f.saveOne(a1, storage.Deleted)
	f.saveOne(aRep, storage.Deleted)
	f.saveOne(b1, storage.Duplicate)
	f.saveOne(del, storage.Duplicate)

	// Another author cannot delete a's events.
	bDel := deletion(t, b, 300, []string{a2.Event.ID}, nil)
	f.saveOne(bDel, storage.Stored)
	f.expectIDs(filters(nostr.Filter{Authors: []string{a.pk}, Kinds: []int{1}}), a2.Event.ID)

	// A deletion cannot delete a deletion, nor keep one from being stored.
	del2 := deletion(t, a, 400, []string{del.Event.ID}, nil)
	f.saveOne(del2, storage.Stored)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{5}, Authors: []string{a.pk}}), del2.Event.ID, del.Event.ID)
}

func testDeleteByAddress(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	addr := func(kind int, k key, d string) string { return fmt.Sprintf("%d:%s:%s", kind, k.pk, d) }
	x1 := event(t, a, 30023, 100, nostr.Tags{{"d", "x"}}, "x1")
	y := event(t, a, 30023, 300, nostr.Tags{{"d", "y"}}, "y")
	z := event(t, a, 30023, 100, nostr.Tags{{"d", "z"}}, "z")
	bx := event(t, b, 30023, 100, nostr.Tags{{"d", "x"}}, "b's x")
	rep := event(t, a, 10002, 100, nil, "replaceable")
	f.save(items(x1, y, z, bx, rep))

	f.saveOne(deletion(t, a, 150, nil, []string{addr(30023, a, "x"), addr(30023, a, "y"), addr(10002, a, "")}), storage.Stored)
	// Another author's deletion naming a's address does nothing.
	f.saveOne(deletion(t, b, 150, nil, []string{addr(30023, a, "z")}), storage.Stored)

	byA := filters(nostr.Filter{Authors: []string{a.pk}, Kinds: []int{30023, 10002}})
	f.expectIDs(byA, y.Event.ID, z.Event.ID) // y is newer than the deletion
	f.expectIDs(filters(nostr.Filter{Authors: []string{b.pk}, Kinds: []int{30023}}), bx.Event.ID)

	// Versions up to the deletion's created_at are refused; newer ones stay.
	f.saveOne(event(t, a, 30023, 140, nostr.Tags{{"d", "x"}}, "x 140"), storage.Deleted)
	f.saveOne(event(t, a, 30023, 150, nostr.Tags{{"d", "x"}}, "x 150"), storage.Deleted)
	f.saveOne(rep, storage.Deleted)
	x2 := event(t, a, 30023, 151, nostr.Tags{{"d", "x"}}, "x 151")
	f.saveOne(x2, storage.Stored)
	f.saveOne(event(t, b, 30023, 140, nostr.Tags{{"d", "x"}}, "b's x 140"), storage.Stored)
	f.expectIDs(byA, y.Event.ID, x2.Event.ID, z.Event.ID)
}

func testDeletionBeforeEvent(t *testing.T, f *fixture) {
	a, b := newKey(t), newKey(t)
	late := event(t, a, 1, 100, nil, "late")
	lateAddr := event(t, a, 30023, 100, nostr.Tags{{"d", "x"}}, "late addressable")
	bLate := event(t, b, 1, 100, nil, "b's event named by a")
	f.saveOne(deletion(t, a, 200, []string{late.Event.ID, bLate.Event.ID},
		[]string{fmt.Sprintf("30023:%s:x", a.pk)}), storage.Stored)
	f.saveOne(late, storage.Deleted)
	f.saveOne(lateAddr, storage.Deleted)
	f.saveOne(bLate, storage.Stored)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{1, 30023}}), bLate.Event.ID)
}

func testDeletionInBatch(t *testing.T, f *fixture) {
	a := newKey(t)
	e1 := event(t, a, 1, 100, nil, "e1")
	e2 := event(t, a, 1, 100, nil, "e2")
	d1 := deletion(t, a, 200, []string{e1.Event.ID}, nil)
	d2 := deletion(t, a, 201, []string{e2.Event.ID}, nil)
	f.save(items(e1, d1, d2, e2), storage.Stored, storage.Stored, storage.Stored, storage.Deleted)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{1}}))

	// A stored version deleted by address, then sent again in the same
	// batch: gone, so no duplicate, and refused by the tombstone.
	x := event(t, a, 30023, 100, nostr.Tags{{"d", "x"}}, "x")
	f.saveOne(x, storage.Stored)
	f.save(items(deletion(t, a, 150, nil, []string{fmt.Sprintf("30023:%s:x", a.pk)}), x), storage.Stored, storage.Deleted)
	// A stored version deleted by id: an older version sent after it in the
	// same batch is the address's only one.
	p2 := event(t, a, 0, 200, nil, "profile 200")
	p1 := event(t, a, 0, 100, nil, "profile 100")
	f.saveOne(p2, storage.Stored)
	f.save(items(deletion(t, a, 300, []string{p2.Event.ID}, nil), p1), storage.Stored, storage.Stored)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{0, 30023}}), p1.Event.ID)
}

func testExpiration(t *testing.T, f *fixture) {
	k := newKey(t)
	now := time.Now().Unix()
	exp := func(at int64) nostr.Tags { return nostr.Tags{{"expiration", fmt.Sprint(at)}} }
	past := event(t, k, 1, now-100, exp(now-10), "expired")
	future := event(t, k, 1, now-100, exp(now+3600), "expires later")
	bad := event(t, k, 1, now-100, nostr.Tags{{"expiration", "soon"}}, "unparseable expiration")
	plain := event(t, k, 1, now-100, nil, "no expiration")
	// With several expiration tags the earliest counts (storage.Expiration),
	// wherever it comes in the list.
	several := event(t, k, 1, now-100, nostr.Tags{{"expiration", fmt.Sprint(now + 3600)}, {"expiration", fmt.Sprint(now - 10)}}, "expired by its second tag")
	f.save(items(past, future, bad, plain, several), storage.Stored, storage.Stored, storage.Stored, storage.Stored, storage.Stored)

	live := []string{future.Event.ID, bad.Event.ID, plain.Event.ID}
	slices.Sort(live)
	f.expectIDs(filters(nostr.Filter{}), live...)
	f.expectIDs(filters(nostr.Filter{IDs: []string{past.Event.ID}}))
	f.expectIDs(filters(nostr.Filter{IDs: []string{several.Event.ID}}))
	for _, flt := range []nostr.Filter{{}, {IDs: []string{several.Event.ID}}, {Authors: []string{k.pk}}} {
		want := int64(len(live))
		if len(flt.IDs) > 0 {
			want = 0
		}
		if n, _, err := f.s.Count(context.Background(), []nostr.Filter{flt}); err != nil || n != want {
			t.Errorf("count %v: %d, %v; want %d", flt, n, err, want)
		}
	}

	n, err := f.s.DeleteExpired(context.Background(), now)
	if err != nil || n != 2 {
		t.Fatalf("delete expired: %d, %v; want 2", n, err)
	}
	if f.has(past.Event.ID) || f.has(several.Event.ID) || !f.has(future.Event.ID) {
		t.Error("DeleteExpired removed the wrong events")
	}
	// "At or before now": the boundary is included.
	n, err = f.s.DeleteExpired(context.Background(), now+3600)
	if err != nil || n != 1 {
		t.Fatalf("delete expired at the boundary: %d, %v; want 1", n, err)
	}
	f.expectIDs(filters(nostr.Filter{}), slices.DeleteFunc(live, func(id string) bool { return id == future.Event.ID })...)
}

func testQueryCallbackError(t *testing.T, f *fixture) {
	k := newKey(t)
	f.save(items(event(t, k, 1, 1, nil, "1"), event(t, k, 1, 2, nil, "2"), event(t, k, 1, 3, nil, "3")))
	stop := errors.New("stop")
	calls := 0
	_, err := f.s.Query(context.Background(), filters(nostr.Filter{}), func([]byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("query: %v after %d calls; want the callback's error after 1", err, calls)
	}
}

func testContextCancel(t *testing.T, f *fixture) {
	k := newKey(t)
	var batch []storage.Item
	for i := range 20 {
		batch = append(batch, event(t, k, 1, int64(i), nil, fmt.Sprint(i)))
	}
	f.save(batch)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.s.Query(ctx, filters(nostr.Filter{}), func([]byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("query with a cancelled context: %v", err)
	}
	extra := event(t, k, 1, 100, nil, "extra")
	if _, err := f.s.Save(ctx, items(extra)); !errors.Is(err, context.Canceled) {
		t.Errorf("save with a cancelled context: %v", err)
	}
	if f.has(extra.Event.ID) {
		t.Error("a cancelled save stored its event")
	}

	// Cancelling while events are delivered stops the delivery.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	_, err := f.s.Query(ctx, filters(nostr.Filter{}), func([]byte) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls >= len(batch) {
		t.Errorf("query cancelled in the callback: %v after %d of %d events", err, calls, len(batch))
	}
}

func testClosed(t *testing.T, f *fixture) {
	k := newKey(t)
	it := event(t, k, 1, 1, nil, "x")
	f.saveOne(it, storage.Stored)
	f.close()
	ctx := context.Background()
	if _, err := f.s.Save(ctx, items(it)); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("save after close: %v", err)
	}
	if _, err := f.s.Query(ctx, filters(nostr.Filter{}), func([]byte) error { return nil }); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("query after close: %v", err)
	}
	if _, err := f.s.Has(ctx, it.Event.ID); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("has after close: %v", err)
	}
	if _, _, err := f.s.StoredSig(ctx, it.Event.ID); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("stored sig after close: %v", err)
	}
	if _, err := f.s.DeleteExpired(ctx, 0); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("delete expired after close: %v", err)
	}
}

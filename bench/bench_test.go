package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// testUntil is a fixed corpus end, so tests do not depend on the date.
const testUntil = 1_790_000_000

var testSpec = CorpusSpec{Seed: 7, Events: 300, Keys: 20, Until: testUntil}

func mustCorpus(t testing.TB, spec CorpusSpec) *Corpus {
	t.Helper()
	c, err := GenerateCorpus(t.Context(), spec)
	if err != nil {
		t.Fatalf("generate corpus: %v", err)
	}
	return c
}

// unsignedCorpus is the corpus of spec without signatures: quicker, and
// enough where only ids, times and tags matter.
func unsignedCorpus(t *testing.T, spec CorpusSpec) *Corpus {
	t.Helper()
	c, err := generateCorpus(t.Context(), spec, false)
	if err != nil {
		t.Fatalf("generate corpus: %v", err)
	}
	return c
}

func ids(evs []*nostr.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func TestCorpusIsDeterministic(t *testing.T) {
	a, b := mustCorpus(t, testSpec), mustCorpus(t, testSpec)
	// Ids commit to everything but the signature, which libsecp256k1 makes
	// with fresh randomness.
	if !slices.Equal(ids(a.Events), ids(b.Events)) {
		t.Fatal("the same spec gave different events")
	}
	if !slices.Equal(a.Pubkeys, b.Pubkeys) {
		t.Fatal("the same spec gave different keys")
	}
	other := testSpec
	other.Seed++
	c := mustCorpus(t, other)
	if slices.Equal(ids(a.Events), ids(c.Events)) || slices.Equal(a.Pubkeys, c.Pubkeys) {
		t.Fatal("another seed gave the same corpus")
	}
}

func TestCorpusShape(t *testing.T) {
	spec := CorpusSpec{Seed: 3, Events: 600, Keys: 30, Until: testUntil}
	c := mustCorpus(t, spec)
	if len(c.Events) != spec.Events || len(c.Pubkeys) != spec.Keys {
		t.Fatalf("%d events from %d keys, want %d from %d", len(c.Events), len(c.Pubkeys), spec.Events, spec.Keys)
	}
	kinds := c.kindCounts()
	want := map[int]int{0: 30, 3: 30, 7: 60, 30023: 18, 1: 600 - 30 - 30 - 60 - 18}
	if !mapsEqual(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}

	authors := map[string]bool{}
	for _, pk := range c.Pubkeys {
		authors[pk] = true
	}
	replaceable := map[string]bool{}
	from := int64(testUntil - corpusSpan/time.Second)
	for i, ev := range c.Events {
		if ok, err := ev.CheckSignature(); !ok || err != nil {
			t.Fatalf("event %d: bad signature (%v)", i, err)
		}
		if !ev.CheckID() {
			t.Fatalf("event %d: bad id", i)
		}
		if !authors[ev.PubKey] {
			t.Errorf("event %d: author %s is not a corpus key", i, ev.PubKey)
		}
		if at := int64(ev.CreatedAt); at < from || at >= testUntil {
			t.Errorf("event %d: created_at %d outside [%d, %d)", i, at, from, testUntil)
		}
		if i > 0 && ev.CreatedAt < c.Events[i-1].CreatedAt {
			t.Errorf("event %d is older than event %d", i, i-1)
		}
		// No event may replace another, or relays would rightly drop some.
		var addr string
		switch ev.Kind {
		case 0, 3:
			addr = ev.PubKey + ":" + string(rune('0'+ev.Kind))
		case 30023:
			d := ev.Tags.GetD()
			if d == "" {
				t.Errorf("event %d: kind 30023 without a d tag", i)
			}
			addr = ev.PubKey + ":30023:" + d
		case 1:
			if n := len(ev.Content); n < 100 || n > 600 {
				t.Errorf("event %d: note of %d bytes, want 100–600", i, n)
			}
		}
		if addr != "" {
			if replaceable[addr] {
				t.Errorf("event %d replaces an earlier one (%s)", i, addr)
			}
			replaceable[addr] = true
		}
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == "e" {
				j, ok := c.index(tag[1])
				if !ok || j >= i {
					t.Errorf("event %d refers to %s, not an earlier corpus event", i, tag[1])
				}
			}
		}
	}
	tagged := map[string]int{}
	for _, ev := range c.Events {
		for _, tag := range ev.Tags {
			tagged[tag[0]]++
		}
	}
	for _, name := range []string{"e", "p", "t", "d"} {
		if tagged[name] == 0 {
			t.Errorf("no %q tags in the corpus", name)
		}
	}
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCorpusCache(t *testing.T) {
	dir := t.TempDir()
	first, cached, err := LoadCorpus(t.Context(), testSpec, dir)
	if err != nil || cached {
		t.Fatalf("first load: cached %v, err %v", cached, err)
	}
	second, cached, err := LoadCorpus(t.Context(), testSpec, dir)
	if err != nil || !cached {
		t.Fatalf("second load: cached %v, err %v", cached, err)
	}
	for i := range first.Events {
		a, b := first.Events[i], second.Events[i]
		if !same(a, b) || !bytes.Equal(first.msgs[i], second.msgs[i]) {
			t.Fatalf("event %d differs after the cache", i)
		}
	}

	// A damaged cache is rebuilt, not trusted.
	path := filepath.Join(dir, testSpec.fileName())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"content":"`), []byte(`"content":"X`), 1)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	third, cached, err := LoadCorpus(t.Context(), testSpec, dir)
	if err != nil || cached {
		t.Fatalf("load of a damaged cache: cached %v, err %v", cached, err)
	}
	if !slices.Equal(ids(first.Events), ids(third.Events)) {
		t.Fatal("rebuilt corpus differs")
	}
	if _, cached, _ := LoadCorpus(t.Context(), testSpec, dir); !cached {
		t.Error("the rebuilt corpus was not cached again")
	}
}

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	l := summarize(hundred)
	if l != (Latency{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100}) {
		t.Errorf("1..100 ms: %+v", l)
	}
	four := []time.Duration{10, 20, 30, 40}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 20}, {75, 30}, {76, 40}, {99, 40}, {100, 40}, {1, 10}, {25, 10}, {26, 20}} {
		if got := percentile(four, tt.p); got != tt.want {
			t.Errorf("p%g of %v = %v, want %v", tt.p, four, got, tt.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one sample = %v", got)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("no samples: %+v", got)
	}
	if got := summarize([]time.Duration{1500 * time.Microsecond}); got.P50 != 1.5 || got.P99 != 1.5 {
		t.Errorf("1.5 ms: %+v", got)
	}
}

func TestReasonPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"duplicate: already have this event": "duplicate",
		"error: database is locked":          "error",
		"blocked:":                           "blocked",
		"":                                   "(none)",
		"something went wrong":               "(none)",
		"not a prefix: x":                    "(none)",
	} {
		if got := reasonPrefix(in); got != want {
			t.Errorf("reasonPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

// handCorpus is a small corpus written by hand: times, kinds and tags are
// chosen so that each check below has exactly one right answer (or a
// known set of them where times tie).
func handCorpus(t *testing.T) *Corpus {
	t.Helper()
	alice, bob := strings.Repeat("a", 64), strings.Repeat("b", 64)
	mk := func(at int64, pk string, kind int, tags ...nostr.Tag) *nostr.Event {
		ev := &nostr.Event{PubKey: pk, CreatedAt: nostr.Timestamp(at), Kind: kind, Tags: tags, Content: "x"}
		ev.ID = ev.GetID()
		ev.Sig = strings.Repeat("0", 128) // the checker never verifies signatures
		return ev
	}
	evs := []*nostr.Event{
		mk(100, alice, 1, nostr.Tag{"t", "go"}),   // 0
		mk(200, bob, 1, nostr.Tag{"t", "go"}),     // 1
		mk(300, alice, 7, nostr.Tag{"t", "rust"}), // 2
		mk(400, alice, 1),                         // 3
		mk(400, bob, 1),                           // 4: ties with 3
		mk(500, bob, 1, nostr.Tag{"t", "go"}),     // 5
	}
	c, err := newCorpus(CorpusSpec{Events: len(evs), Keys: 2, Until: 600}, evs, []string{alice, bob})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheck(t *testing.T) {
	c := handCorpus(t)
	ev := c.Events
	alice, bob := c.Pubkeys[0], c.Pubkeys[1]
	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }
	pick := func(is ...int) []*nostr.Event {
		out := make([]*nostr.Event, len(is))
		for n, i := range is {
			out[n] = ev[i]
		}
		return out
	}
	altered := *ev[5]
	altered.Content = "changed"
	outsider := *ev[5]
	outsider.ID = strings.Repeat("f", 64)

	tests := []struct {
		name    string
		filter  nostr.Filter
		got     []*nostr.Event
		stored  []bool // nil: all
		bad     string // substring of the mismatch; "" for a right answer
		unknown []bool // nil: none
	}{
		{"all, newest first", nostr.Filter{}, pick(5, 4, 3, 2, 1, 0), nil, "", nil},
		{"ties in either order", nostr.Filter{}, pick(5, 3, 4, 2, 1, 0), nil, "", nil},
		{"limit", nostr.Filter{Limit: 2}, pick(5, 4), nil, "", nil},
		{"limit cuts a tie: either side", nostr.Filter{Limit: 2}, pick(5, 3), nil, "", nil},
		{"author and kind", nostr.Filter{Authors: []string{alice}, Kinds: []int{1}}, pick(3, 0), nil, "", nil},
		{"tag", nostr.Filter{Tags: nostr.TagMap{"t": {"go"}}}, pick(5, 1, 0), nil, "", nil},
		{"since and until are inclusive", nostr.Filter{Since: ts(200), Until: ts(400)}, pick(4, 3, 2, 1), nil, "", nil},
		{"ids", nostr.Filter{IDs: []string{ev[0].ID, ev[2].ID}}, pick(2, 0), nil, "", nil},
		{"nothing matches", nostr.Filter{Authors: []string{strings.Repeat("c", 64)}}, nil, nil, "", nil},
		{"refused events are not expected", nostr.Filter{Authors: []string{bob}}, pick(4, 1),
			[]bool{true, true, true, true, true, false}, "", nil},

		{"wrong: does not match", nostr.Filter{Authors: []string{alice}}, pick(3, 1), nil, "does not match", nil},
		{"wrong: oldest first", nostr.Filter{Authors: []string{bob}}, pick(1, 4, 5), nil, "newer than the one before", nil},
		// NIP-67: the created_at tie at the limit's boundary may be sent whole.
		{"limit, then the boundary's tie", nostr.Filter{Limit: 2}, pick(5, 4, 3), nil, "", nil},
		{"limit cuts a tie, the rest follows", nostr.Filter{Limit: 2}, pick(5, 3, 4), nil, "", nil},
		{"wrong: past the limit, not the tie", nostr.Filter{Limit: 1}, pick(5, 4), nil, "not in the boundary's created_at tie", nil},
		{"wrong: the tie, then one more", nostr.Filter{Limit: 3}, pick(5, 4, 3, 2), nil, "not in the boundary's created_at tie", nil},
		{"wrong: a tie past the limit, not the newest", nostr.Filter{Limit: 2}, pick(5, 2, 4), nil, "newer than the one before", nil},
		{"wrong: not the newest", nostr.Filter{Limit: 2}, pick(4, 3), nil, "is missing", nil},
		{"wrong: one short", nostr.Filter{Tags: nostr.TagMap{"t": {"go"}}}, pick(5, 1), nil, "2 events, want 3", nil},
		{"wrong: too few for the limit", nostr.Filter{Limit: 3}, pick(5, 4), nil, "2 events, want 3", nil},
		{"wrong: sent twice", nostr.Filter{Kinds: []int{7}}, pick(2, 2), nil, "sent twice", nil},
		{"wrong: altered", nostr.Filter{Limit: 1}, []*nostr.Event{&altered}, nil, "differs", nil},
		{"wrong: not in the corpus", nostr.Filter{Limit: 1}, []*nostr.Event{&outsider}, nil, "not in the corpus", nil},
		{"wrong: refused but served", nostr.Filter{Authors: []string{bob}}, pick(5, 4, 1),
			[]bool{true, true, true, true, true, false}, "refused at ingest", nil},
		{"wrong: nothing returned", nostr.Filter{Kinds: []int{7}}, nil, nil, "0 events, want 1", nil},

		// Event 5 was never answered: with or without it, answers are right.
		{"unknown and absent", nostr.Filter{Authors: []string{bob}}, pick(4, 1),
			[]bool{true, true, true, true, true, false}, "", []bool{false, false, false, false, false, true}},
		{"unknown and served", nostr.Filter{Authors: []string{bob}}, pick(5, 4, 1),
			[]bool{true, true, true, true, true, false}, "", []bool{false, false, false, false, false, true}},
		{"unknown and served, within a limit", nostr.Filter{Limit: 2}, pick(5, 4),
			[]bool{true, true, true, true, true, false}, "", []bool{false, false, false, false, false, true}},
		{"wrong: unknown served, limit then one short", nostr.Filter{Limit: 3}, pick(5, 4),
			[]bool{true, true, true, true, true, false}, "2 events, want 3", []bool{false, false, false, false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newTruth(c, tt.stored, tt.unknown).check(&tt.filter, tt.got)
			switch {
			case tt.bad == "" && got != "":
				t.Errorf("right answer counted as a mismatch: %s", got)
			case tt.bad != "" && got == "":
				t.Errorf("wrong answer accepted; want a mismatch about %q", tt.bad)
			case tt.bad != "" && !strings.Contains(got, tt.bad):
				t.Errorf("mismatch %q, want one about %q", got, tt.bad)
			}
		})
	}
}

// A tie past the limit is accepted up to the bound a relay finishing it may
// use, and no further.
func TestCheckTieBound(t *testing.T) {
	pk := strings.Repeat("a", 64)
	var evs []*nostr.Event
	for i := range 30 {
		ev := &nostr.Event{PubKey: pk, CreatedAt: 1000, Kind: 1, Content: fmt.Sprint("tie ", i)}
		ev.ID = ev.GetID()
		ev.Sig = strings.Repeat("0", 128)
		evs = append(evs, ev)
	}
	c, err := newCorpus(CorpusSpec{Events: len(evs), Keys: 1, Until: 2000}, evs, []string{pk})
	if err != nil {
		t.Fatal(err)
	}
	truth := newTruth(c, nil, nil)
	f := nostr.Filter{Limit: 10}
	bound := maxTieExtra(f.Limit)
	if bound < 1 || f.Limit+bound+1 > len(evs) {
		t.Fatalf("bound %d does not fit the test", bound)
	}
	if why := truth.check(&f, c.Events[:f.Limit+bound]); why != "" {
		t.Errorf("limit %d with %d tied events past it: %s", f.Limit, bound, why)
	}
	if why := truth.check(&f, c.Events[:f.Limit+bound+1]); !strings.Contains(why, "for limit 10") {
		t.Errorf("limit %d with %d tied events past it: %q, want a mismatch", f.Limit, bound+1, why)
	}
	// A search is ranked, not cut at a created_at: no extras.
	s := nostr.Filter{Limit: 10, Search: "tie"}
	if why := truth.check(&s, c.Events[:11]); !strings.Contains(why, "11 events for limit 10") {
		t.Errorf("search with one event past the limit: %q, want a mismatch", why)
	}
}

// The checker's matcher agrees with go-nostr's on every event for every
// filter of the mix: the two were written apart, so they check each other.
func TestMatchesAgreesWithGoNostr(t *testing.T) {
	c := unsignedCorpus(t, testSpec)
	for _, q := range queryMix(c, 200, true) {
		for _, ev := range c.Events {
			// go-nostr's matcher ignores search: the checker's is tested
			// by TestCheckSearch.
			if q.filter.Search != "" {
				break
			}
			if got, want := matches(&q.filter, ev), q.filter.Matches(ev); got != want {
				t.Fatalf("%s %v on %s: matches %v, go-nostr %v", q.typ, q.filter, ev.ID, got, want)
			}
		}
		// The indexes behind expected must lose nothing a scan finds.
		want := 0
		for _, ev := range c.Events {
			if matches(&q.filter, ev) {
				want++
			}
		}
		if got := len(newTruth(c, nil, nil).expected(&q.filter, nil)); got != want {
			t.Fatalf("%s %v: expected %d events, a scan finds %d", q.typ, q.filter, got, want)
		}
	}
}

// The mix is fixed by the seed, has every type, and never relies on a
// relay's default limit: limits are at most 500 (strfry's cap), and
// queries without one match about a hundred events at most.
func TestQueryMix(t *testing.T) {
	c := unsignedCorpus(t, CorpusSpec{Seed: 1, Events: 4000, Keys: 600, Until: testUntil})
	a, b := queryMix(c, 500, true), queryMix(c, 500, true)
	if len(a) != 500 {
		t.Fatalf("%d queries, want 500", len(a))
	}
	truth := newTruth(c, nil, nil)
	types := map[string]int{}
	for i := range a {
		ja, _ := a[i].filter.MarshalJSON()
		jb, _ := b[i].filter.MarshalJSON()
		if a[i].typ != b[i].typ || !bytes.Equal(ja, jb) {
			t.Fatalf("query %d differs between two mixes: %s / %s", i, ja, jb)
		}
		types[a[i].typ]++
		f := &a[i].filter
		if f.Limit > 500 {
			t.Errorf("%s: limit %d over 500", a[i].typ, f.Limit)
		}
		if n := len(truth.expected(f, nil)); f.Limit == 0 && n > 100 {
			t.Errorf("%s %s: %d matches without a limit", a[i].typ, ja, n)
		}
		if a[i].typ == qHome && (len(f.Authors) < 300 || len(f.Authors) > 500 || f.Limit < 100) {
			t.Errorf("home feed %d authors, limit %d", len(f.Authors), f.Limit)
		}
	}
	all := queryTypes(true)
	for _, typ := range all {
		if n := types[typ]; n < 500/len(all) || n > 500/len(all)+1 {
			t.Errorf("%d queries of type %s, want %d", n, typ, 500/len(all))
		}
	}
	if slices.Contains(queryTypes(false), qSearch) {
		t.Error("search in the mix of a relay without NIP-50")
	}
}

// A search answer is right when every event holds every word as a whole
// word (any case) and there are as many as the limit allows; its order is
// the relay's ranking, not checked.
func TestCheckSearch(t *testing.T) {
	alice := strings.Repeat("a", 64)
	mk := func(at int64, kind int, content string) *nostr.Event {
		ev := &nostr.Event{PubKey: alice, CreatedAt: nostr.Timestamp(at), Kind: kind, Tags: nostr.Tags{}, Content: content}
		ev.ID = ev.GetID()
		ev.Sig = strings.Repeat("0", 128)
		return ev
	}
	evs := []*nostr.Event{
		mk(100, 1, "Quiet river, bright stone"), // 0
		mk(200, 1, "the river is quiet"),        // 1
		mk(300, 1, "rivers of quietness"),       // 2: no whole word
		mk(400, 7, "quiet river"),               // 3: another kind
		mk(500, 1, "quiet-river"),               // 4
	}
	c, err := newCorpus(CorpusSpec{Events: len(evs), Keys: 1, Until: 600}, evs, []string{alice})
	if err != nil {
		t.Fatal(err)
	}
	pick := func(is ...int) []*nostr.Event {
		var out []*nostr.Event
		for _, i := range is {
			out = append(out, evs[i])
		}
		return out
	}
	f := nostr.Filter{Search: "river QUIET", Kinds: []int{1}}
	limited := f
	limited.Limit = 2
	for _, tt := range []struct {
		name   string
		filter nostr.Filter
		got    []*nostr.Event
		bad    string
	}{
		{"all, any order", f, pick(0, 4, 1), ""},
		{"limit, any choice", limited, pick(0, 1), ""},
		{"wrong: a part of a word", f, pick(0, 4, 1, 2), "does not match"},
		{"wrong: another kind", f, pick(0, 4, 1, 3), "does not match"},
		{"wrong: one missing", f, pick(0, 4), "2 events, want 3"},
		{"wrong: short of the limit", limited, pick(4), "1 events, want 2"},
	} {
		if got := newTruth(c, nil, nil).check(&tt.filter, tt.got); (got == "") != (tt.bad == "") || !strings.Contains(got, tt.bad) {
			t.Errorf("%s: check says %q, want %q", tt.name, got, tt.bad)
		}
	}
}

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (wisp (a) b) S 1 4242 4242 0 -1 4194560 3000 0 0 0 1234 567 0 0 20 0 9 0 100 0 0\n")
	if got, err := parseStatCPU(stat); err != nil || got != 1234+567 {
		t.Errorf("parseStatCPU = %d, %v; want %d", got, err, 1234+567)
	}
	if _, err := parseStatCPU([]byte("4242 wisp S 1")); err == nil {
		t.Error("parseStatCPU accepted a line without a command name")
	}
	io := []byte("rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n")
	if got, err := procField(io, "write_bytes:"); err != nil || got != 8192 {
		t.Errorf("write_bytes = %d, %v", got, err)
	}
	if _, err := procField(io, "VmRSS:"); err == nil {
		t.Error("procField found a missing field")
	}
	stat = []byte("cpu  100 5 50 9000 20 3 4 2 0 0\ncpu0 50 2 25 4500 10 1 2 1 0 0\n")
	if got, err := parseMachineBusy(stat); err != nil || got != 100+5+50+3+4+2 {
		t.Errorf("parseMachineBusy = %d, %v; want %d", got, err, 100+5+50+3+4+2)
	}
	// This process' own /proc entries have the same shape as a relay's.
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatalf("readProc(self): %v", err)
	}
	if s.rssKiB <= 0 {
		t.Errorf("own RSS %d KiB", s.rssKiB)
	}
	if lim, err := openFileLimit(os.Getpid()); err != nil || lim == 0 {
		t.Errorf("own open file limit %d, %v", lim, err)
	}
}

// fakeRelay is a minimal relay for testing the tool without wisp: it keeps
// events in memory, answers REQs by scanning, and broadcasts new events.
// With dropNewest it leaves the newest match out of every answer; with
// doubleLive it sends every live event twice; with nip50 it searches. It answers on any path, and
// counts REQs by path and subscription id (reqs["/a f"]).
type fakeRelay struct {
	dropNewest bool
	doubleLive bool
	nip50      bool // lists NIP-50 and answers search by content words

	mu     sync.Mutex
	events []*nostr.Event
	have   map[string]bool
	subs   map[*websocket.Conn]map[string]nostr.Filter
	reqs   map[string]int
}

func newFakeRelay(dropNewest bool) *httptest.Server {
	return httptest.NewServer(&fakeRelay{dropNewest: dropNewest})
}

// ServeHTTP makes the fake's maps on first use, so that a test may set up
// a &fakeRelay{...} of its own.
func (f *fakeRelay) init() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.have == nil {
		f.have, f.subs, f.reqs = map[string]bool{}, map[*websocket.Conn]map[string]nostr.Filter{}, map[string]int{}
	}
}

func (f *fakeRelay) reqCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[key]
}

func (f *fakeRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	f.init()
	if req.Header.Get("Accept") == "application/nostr+json" {
		if f.nip50 {
			w.Write([]byte(`{"name":"fake","software":"bench_test","version":"0","supported_nips":[1,50]}`))
			return
		}
		w.Write([]byte(`{"name":"fake","software":"bench_test","version":"0"}`))
		return
	}
	ws, err := websocket.Accept(w, req, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	defer func() {
		f.mu.Lock()
		delete(f.subs, ws)
		f.mu.Unlock()
		ws.CloseNow()
	}()
	ctx := req.Context()
	send := func(v ...any) {
		b, _ := json.Marshal(v)
		ws.Write(ctx, websocket.MessageText, b)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var msg []json.RawMessage
		var label, sub string
		if json.Unmarshal(data, &msg) != nil || len(msg) < 2 || json.Unmarshal(msg[0], &label) != nil {
			continue
		}
		switch label {
		case "EVENT":
			ev := &nostr.Event{}
			if ev.UnmarshalJSON(msg[1]) != nil {
				continue
			}
			if ok, _ := ev.CheckSignature(); !ok {
				send("OK", ev.ID, false, "invalid: bad signature")
				continue
			}
			f.mu.Lock()
			dup := f.have[ev.ID]
			var targets []func()
			if !dup {
				f.have[ev.ID] = true
				f.events = append(f.events, ev)
				for c, subs := range f.subs {
					for id, fl := range subs {
						if fl.Matches(ev) {
							b, _ := json.Marshal([]any{"EVENT", id, ev})
							targets = append(targets, func() { c.Write(ctx, websocket.MessageText, b) })
							if f.doubleLive {
								targets = append(targets, func() { c.Write(ctx, websocket.MessageText, b) })
							}
						}
					}
				}
			}
			f.mu.Unlock()
			if dup {
				send("OK", ev.ID, true, "duplicate: have it")
				continue
			}
			send("OK", ev.ID, true, "")
			for _, t := range targets {
				t()
			}
		case "REQ":
			var fl nostr.Filter
			if len(msg) != 3 || json.Unmarshal(msg[1], &sub) != nil || fl.UnmarshalJSON(msg[2]) != nil {
				continue
			}
			f.mu.Lock()
			var out []*nostr.Event
			for _, ev := range f.events {
				if fl.Matches(ev) && (fl.Search == "" || f.nip50 && searchMatches(fl.Search, ev.Content)) {
					out = append(out, ev)
				}
			}
			if f.subs[ws] == nil {
				f.subs[ws] = map[string]nostr.Filter{}
			}
			f.subs[ws][sub] = fl
			f.reqs[req.URL.Path+" "+sub]++
			f.mu.Unlock()
			sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt > out[j].CreatedAt })
			if fl.Limit > 0 && len(out) > fl.Limit {
				out = out[:fl.Limit]
			}
			if f.dropNewest && len(out) > 0 {
				out = out[1:]
			}
			for _, ev := range out {
				send("EVENT", sub, ev)
			}
			send("EOSE", sub)
		case "CLOSE":
			if json.Unmarshal(msg[1], &sub) == nil {
				f.mu.Lock()
				delete(f.subs[ws], sub)
				f.mu.Unlock()
			}
		}
	}
}

func smallConfig(url, dir string) Config {
	cfg := DefaultConfig(url)
	cfg.Corpus = testSpec
	cfg.CorpusDir = dir
	cfg.Conns, cfg.Duplicates, cfg.Queries = 4, 50, 100
	cfg.FanoutSubs, cfg.FanoutN, cfg.FanoutRate = 8, 40, 2000
	cfg.IdleConns = 20
	cfg.Wait, cfg.PhaseLimit = 10*time.Second, time.Minute
	cfg.PID = os.Getpid() // the fake relay runs in this process
	return cfg
}

// The whole tool against a relay that answers right: everything accepted,
// no mismatch, every live event delivered, every idle connection open.
func TestRunAgainstFakeRelay(t *testing.T) {
	srv := newFakeRelay(false)
	defer srv.Close()
	cfg := smallConfig("ws"+strings.TrimPrefix(srv.URL, "http"), t.TempDir())
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteText(&out, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())

	if rep.Relay.Name != "fake" {
		t.Errorf("relay info %+v", rep.Relay)
	}
	in := rep.Ingest
	if in == nil || in.Sent != 300 || in.Accepted != 300 || in.OKFalse != nil || in.Timeouts != 0 || in.OK.Count != 300 {
		t.Errorf("ingest %+v", in)
	}
	if d := in.Duplicates; d == nil || d.Sent != 50 || d.Duplicate != 50 {
		t.Errorf("duplicates %+v", d)
	}
	if in.Relay == nil || in.Relay.CPUSeconds < 0 {
		t.Errorf("ingest relay usage %+v", in.Relay)
	}
	q := rep.Query
	if q == nil || q.Completed != 100 || q.Mismatches != 0 || q.Failed != nil || len(q.ByType) != len(queryTypes(false)) {
		t.Errorf("query %+v", q)
	}
	f := rep.Fanout
	if f == nil || f.Subscribed != 8 || f.Accepted != 40 || f.Expected != 320 || f.Delivered != 320 || f.Repeated != 0 || f.Unexpected != 0 {
		t.Errorf("fanout %+v", f)
	}
	i := rep.Idle
	if i == nil || i.Open != 20 || i.StillOpen != 20 || i.Failed != nil || i.RSSAfterKiB == 0 {
		t.Errorf("idle %+v", i)
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("report JSON does not decode: %v", err)
	}
	if back.Query.Mismatches != 0 || back.Fanout.Delivered != 320 || back.Ingest.Duplicates.Duplicate != 50 {
		t.Errorf("JSON lost figures: %s", js.String())
	}
}

// A relay of two nodes: two URLs of one fake relay (its paths /a and /b),
// so that what one node accepts the other delivers. The tool spreads its
// connections over both, every event crosses to the other node's
// subscribers, and nothing is missing or doubled; a relay that sends every
// live event twice is counted so.
func TestRunNodes(t *testing.T) {
	for _, double := range []bool{false, true} {
		fake := &fakeRelay{doubleLive: double}
		srv := httptest.NewServer(fake)
		defer srv.Close()
		base := "ws" + strings.TrimPrefix(srv.URL, "http")
		cfg := smallConfig(base+"/a", t.TempDir())
		cfg.Nodes = []string{base + "/b"}
		cfg.Phases = []string{PhaseIngest, PhaseQuery, PhaseFanout, PhaseIdle}
		rep, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := WriteText(&out, rep); err != nil {
			t.Fatal(err)
		}
		t.Logf("doubled live events %v, report:\n%s", double, out.String())

		if in := rep.Ingest; in == nil || in.Accepted != 300 {
			t.Errorf("ingest %+v", in)
		}
		if q := rep.Query; q == nil || q.Completed != 100 || q.Mismatches != 0 {
			t.Errorf("query %+v", q)
		}
		// Subscribers, idle connections and query clients alike are spread.
		for _, key := range []string{"f", "idle"} {
			a, b := fake.reqCount("/a "+key), fake.reqCount("/b "+key)
			if a == 0 || a != b {
				t.Errorf("%q subscriptions: %d on /a, %d on /b; want them spread evenly", key, a, b)
			}
		}
		f := rep.Fanout
		if f == nil || f.Nodes != 2 || f.CrossNode == nil {
			t.Fatalf("fanout %+v", f)
		}
		// 8 subscribers, 4 on each node; 40 events, 20 published on each.
		x := f.CrossNode
		if f.Expected != 320 || f.Delivered != 320 || f.Missing != 0 || x.Expected != 160 || x.Delivered != 160 || x.Missing != 0 || x.Latency.Count != 160 {
			t.Errorf("fanout: %d/%d delivered, %d missing; cross-node %+v", f.Delivered, f.Expected, f.Missing, x)
		}
		wantDoubled := 0
		if double {
			wantDoubled = 160
		}
		if x.Doubled != wantDoubled || f.Repeated != 2*wantDoubled {
			t.Errorf("cross-node doubled %d, all repeated %d; want %d and %d", x.Doubled, f.Repeated, wantDoubled, 2*wantDoubled)
		}
		if !strings.Contains(out.String(), fmt.Sprintf("160/160 delivered, 0 missing, %d doubled", wantDoubled)) {
			t.Errorf("text report lacks the cross-node figures:\n%s", out.String())
		}
	}
}

// A relay that leaves out the newest match of every answer is caught on
// every query that has a match.
func TestRunCountsMismatches(t *testing.T) {
	srv := newFakeRelay(true)
	defer srv.Close()
	cfg := smallConfig("ws"+strings.TrimPrefix(srv.URL, "http"), t.TempDir())
	cfg.Phases = []string{PhaseIngest, PhaseQuery}
	cfg.PID = 0
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := unsignedCorpus(t, cfg.Corpus)
	truth := newTruth(c, nil, nil)
	want := 0
	for _, q := range queryMix(c, cfg.Queries, false) {
		if len(truth.expected(&q.filter, nil)) > 0 {
			want++
		}
	}
	if want == 0 {
		t.Fatal("no query of the mix has a match")
	}
	if rep.Query.Mismatches != want {
		t.Errorf("%d mismatches, want %d (every query with a match)", rep.Query.Mismatches, want)
	}
	// One example per type, and every type has queries with matches.
	if len(rep.Query.MismatchExamples) != len(queryTypes(false)) {
		t.Errorf("mismatch examples %q, want one per type", rep.Query.MismatchExamples)
	}
	var out bytes.Buffer
	if err := WriteText(&out, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "mismatch: ") {
		t.Errorf("text report does not show the mismatches:\n%s", out.String())
	}
}

func TestConfigValidation(t *testing.T) {
	good := DefaultConfig("ws://127.0.0.1:1")
	good.Corpus.Until = testUntil
	if err := good.validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"http url":      func(c *Config) { c.URL = "http://x" },
		"unknown phase": func(c *Config) { c.Phases = []string{"ingest", "bogus"} },
		"no phase":      func(c *Config) { c.Phases = nil },
		"no events":     func(c *Config) { c.Corpus.Events = 0 },
		"no keys":       func(c *Config) { c.Corpus.Keys = 0 },
		"no until":      func(c *Config) { c.Corpus.Until = 0 },
		"zero conns":    func(c *Config) { c.Conns = 0 },
		"zero rate":     func(c *Config) { c.FanoutRate = 0 },
		"no wait":       func(c *Config) { c.Wait = 0 },
	} {
		c := good
		mut(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A relay that is not there fails the run early and clearly.
	_, err := Run(context.Background(), func() Config {
		c := good
		c.Corpus = testSpec
		c.Phases = []string{PhaseQuery}
		return c
	}())
	if err == nil || !strings.Contains(err.Error(), "dial") {
		t.Errorf("run against nothing: %v", err)
	}
}

func TestParseRelayMsg(t *testing.T) {
	ev := mustCorpus(t, CorpusSpec{Seed: 1, Events: 5, Keys: 2, Until: testUntil}).Events[4]
	raw, _ := ev.MarshalJSON()
	tricky := *ev
	tricky.Content = `brackets ] and "quotes" and \ slashes`
	tricky.ID = tricky.GetID()
	trickyRaw, _ := tricky.MarshalJSON()

	for _, tt := range []struct {
		in   string
		want relayMsg // event compared by id
	}{
		{`["EVENT","q1",` + string(raw) + `]`, relayMsg{label: "EVENT", sub: "q1", event: ev}},
		{" [ \"EVENT\" ,\t\"q1\" , " + string(raw) + " ] \n", relayMsg{label: "EVENT", sub: "q1", event: ev}},
		{`["EVENT","a\"b\\c",` + string(trickyRaw) + `]`, relayMsg{label: "EVENT", sub: `a"b\c`, event: &tricky}},
		{`["OK","` + ev.ID + `",true,""]`, relayMsg{label: "OK", id: ev.ID, ok: true}},
		{`["OK","` + ev.ID + `",false,"error: database is locked"]`, relayMsg{label: "OK", id: ev.ID, reason: "error: database is locked"}},
		{`["OK","` + ev.ID + `",true]`, relayMsg{label: "OK", id: ev.ID, ok: true}}, // reason left out
		{`["EOSE","q1"]`, relayMsg{label: "EOSE", sub: "q1"}},
		{`["CLOSED","q1","error: query took too long"]`, relayMsg{label: "CLOSED", sub: "q1", reason: "error: query took too long"}},
		{`["NOTICE","invalid: what"]`, relayMsg{label: "NOTICE", reason: "invalid: what"}},
		{`["AUTH","challenge"]`, relayMsg{label: "AUTH"}},
	} {
		got, err := parseRelayMsg([]byte(tt.in))
		if err != nil {
			t.Errorf("%.60q: %v", tt.in, err)
			continue
		}
		if (got.event == nil) != (tt.want.event == nil) || got.event != nil && !same(got.event, tt.want.event) {
			t.Errorf("%.60q: event %+v, want %+v", tt.in, got.event, tt.want.event)
		}
		got.event, tt.want.event = nil, nil
		if got != tt.want {
			t.Errorf("%.60q: %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{
		``, `{}`, `[]`, `[1]`, `["EVENT"]`, `["EVENT","q1"]`, `["EVENT","q1",{"id":]`,
		`["EVENT","q1",` + string(raw), `["EVENT",7,` + string(raw) + `]`, `["OK","x"]`, `["OK","x","yes",""]`, `["EOSE","q1"`,
	} {
		if m, err := parseRelayMsg([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v", bad, m)
		}
	}
}

// A comparison runs the whole workload against each relay in turn and
// prints a column per relay with the ratios; a wrong relay shows as such.
func TestRunCompare(t *testing.T) {
	good, bad := newFakeRelay(false), newFakeRelay(true)
	defer good.Close()
	defer bad.Close()
	ws := func(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") }
	cfg := smallConfig("", t.TempDir())
	cfg.Phases = []string{PhaseIngest, PhaseQuery}
	cfg.PID = 0
	cmp, err := RunCompare(t.Context(), cfg, []Target{{Name: "good", URL: ws(good)}, {Name: "bad", URL: ws(bad)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.Relays) != 2 || cmp.Relays[0].Name != "good" || cmp.Relays[1].Name != "bad" {
		t.Fatalf("relays %+v", cmp.Relays)
	}
	g, b := cmp.Relays[0].Report, cmp.Relays[1].Report
	if g.Ingest.Accepted != 300 || b.Ingest.Accepted != 300 || g.Query.Mismatches != 0 || b.Query.Mismatches == 0 {
		t.Errorf("good: %d accepted, %d mismatches; bad: %d accepted, %d mismatches",
			g.Ingest.Accepted, g.Query.Mismatches, b.Ingest.Accepted, b.Query.Mismatches)
	}
	// Both fakes run in this process, which listens on their ports.
	if g.PID != os.Getpid() || b.PID != os.Getpid() || g.Query.Relay == nil {
		t.Errorf("pids %d, %d (want %d, found from the ports); relay usage %+v", g.PID, b.PID, os.Getpid(), g.Query.Relay)
	}
	var out bytes.Buffer
	if err := WriteCompareText(&out, cmp); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("comparison:\n%s", text)
	for _, want := range []string{"good ÷ bad", "ingest: accepted events/s", "query home: EOSE p99 (ms)", "bad:\nmismatch: "} {
		if !strings.Contains(text, want) {
			t.Errorf("comparison text lacks %q", want)
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, cmp); err != nil {
		t.Fatal(err)
	}
	var back Comparison
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Relays) != 2 || back.Relays[1].Report.Query.Mismatches == 0 {
		t.Errorf("comparison JSON: %v %s", err, js.String())
	}

	// The good relay now holds the corpus: a second run says so.
	cfg.URL, cfg.Phases = ws(good), []string{PhaseIngest}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "held events before the run") }) {
		t.Errorf("no warning about a relay that was not empty: %q", rep.Warnings)
	}
	if _, err := RunCompare(t.Context(), cfg, []Target{{Name: "one", URL: ws(good)}}); err == nil {
		t.Error("a comparison of one relay ran")
	}
}

// A comparison of a relay that searches with one that does not: both
// answer the same mix, without search, and the one that searches answers
// the search REQs apart.
func TestRunCompareSearchApart(t *testing.T) {
	searching, plain := httptest.NewServer(&fakeRelay{nip50: true}), newFakeRelay(false)
	defer searching.Close()
	defer plain.Close()
	ws := func(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") }
	cfg := smallConfig("", t.TempDir())
	cfg.Phases = []string{PhaseIngest, PhaseQuery}
	cfg.PID = 0
	cmp, err := RunCompare(t.Context(), cfg, []Target{{Name: "s", URL: ws(searching)}, {Name: "p", URL: ws(plain)}})
	if err != nil {
		t.Fatal(err)
	}
	s, p := cmp.Relays[0].Report, cmp.Relays[1].Report
	for _, rep := range []*Report{s, p} {
		if rep.Query.Completed != 100 || rep.Query.Mismatches != 0 || hasType(rep.Query.ByType, qSearch) {
			t.Errorf("%s: query mix %+v; want 100 REQs without search, all right", rep.URL, rep.Query)
		}
	}
	wantSearches := 0
	for _, q := range queryMix(unsignedCorpus(t, cfg.Corpus), cfg.Queries, true) {
		if q.typ == qSearch {
			wantSearches++
		}
	}
	if s.Search == nil || wantSearches == 0 || s.Search.Completed != wantSearches || s.Search.Mismatches != 0 {
		t.Errorf("searching relay's search apart: %+v, want %d REQs all right", s.Search, wantSearches)
	}
	if p.Search != nil {
		t.Errorf("relay without NIP-50 searched: %+v", p.Search)
	}
	var out bytes.Buffer
	if err := WriteCompareText(&out, cmp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "search apart: EOSE p99") {
		t.Errorf("comparison lacks the search figures:\n%s", out.String())
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]Target{
		"wisp=ws://127.0.0.1:4869":   {Name: "wisp", URL: "ws://127.0.0.1:4869"},
		"ws://127.0.0.1:7777":        {Name: "127.0.0.1:7777", URL: "ws://127.0.0.1:7777"},
		"s=wss://relay.example/path": {Name: "s", URL: "wss://relay.example/path"},
		"pg3=ws://127.0.0.1:1+ws://127.0.0.1:2+ws://127.0.0.1:3": {Name: "pg3", URL: "ws://127.0.0.1:1",
			Nodes: []string{"ws://127.0.0.1:2", "ws://127.0.0.1:3"}},
		"ws://127.0.0.1:1+ws://127.0.0.1:2": {Name: "127.0.0.1:1", URL: "ws://127.0.0.1:1", Nodes: []string{"ws://127.0.0.1:2"}},
	} {
		if got, err := ParseTarget(in); err != nil || got.Name != want.Name || got.URL != want.URL || !slices.Equal(got.Nodes, want.Nodes) {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"wisp=http://x", "nope", "a=ws://", "a=ws://x+", "a=ws://x+http://y"} {
		if got, err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted as %+v", bad, got)
		}
	}
}

// eventID finds the same subscription and event id as the full decoder,
// whatever the event's content, and leaves what it cannot read (escapes in
// ids, other messages, malformed ones) to parseRelayMsg.
func TestEventID(t *testing.T) {
	ev := mustCorpus(t, CorpusSpec{Seed: 1, Events: 5, Keys: 2, Until: testUntil}).Events[4]
	raw, _ := ev.MarshalJSON()
	tricky := *ev
	tricky.Content = `a fake "id":"00" inside, brackets ]} and \" and \\`
	tricky.Tags = nostr.Tags{{"id", "ff"}, {"e", `{"id":"ee"}`}}
	trickyRaw, _ := tricky.MarshalJSON()
	reordered := `{"content":"x","tags":[["id","aa"],[]],"id":"` + ev.ID + `","kind":1, "sig":"s"}`

	for _, tt := range []struct{ in, sub, id string }{
		{`["EVENT","f",` + string(raw) + `]`, "f", ev.ID},
		{" [ \"EVENT\" ,\t\"f\" , " + string(raw) + " ] \n", "f", ev.ID},
		{`["EVENT","q",` + string(trickyRaw) + `]`, "q", tricky.ID},
		{`["EVENT","f",` + reordered + `]`, "f", ev.ID},
		{`["EVENT","f",{"id":"11","id":"22"}]`, "f", "22"}, // the last one, as a decoder takes it
	} {
		sub, id, ok := eventID([]byte(tt.in))
		if !ok || string(sub) != tt.sub || string(id) != tt.id {
			t.Errorf("%.70q: %q %q %v, want %q %q", tt.in, sub, id, ok, tt.sub, tt.id)
		}
	}
	for _, other := range []string{
		``, `[]`, `["EOSE","f"]`, `["OK","` + ev.ID + `",true,""]`, `["EVENT","f"]`,
		`["EVENT","f",{}]`, `["EVENT","f",{"kind":1}]`, `["EVENT","f",{"id":"\u0061"}]`,
		`["EVENT","a\"b",` + string(raw) + `]`, `["EVENT","f",` + string(raw), `["EVENT","f",` + string(raw) + `,1]`,
		`["EVENT","f",{"id":"11" "kind":1}]`, `["EVENT","f",{"id":"11",}]`, `["EVENT","f",{"id":11}]`,
		`["EVENT","f",{"content":"unterminated}]`,
	} {
		if sub, id, ok := eventID([]byte(other)); ok {
			t.Errorf("%.70q: read as %q %q", other, sub, id)
		}
	}
}

// Whatever eventID reads from a message, the decoder reads the same.
func FuzzEventID(f *testing.F) {
	ev := mustCorpus(f, CorpusSpec{Seed: 1, Events: 5, Keys: 2, Until: testUntil}).Events[4]
	raw, _ := ev.MarshalJSON()
	f.Add([]byte(`["EVENT","f",` + string(raw) + `]`))
	f.Add([]byte(`["EVENT","f",{"content":"\"id\":\"x\"","id":"ab","tags":[["a","]"]]}]`))
	f.Add([]byte(`["EOSE","f"]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sub, id, ok := eventID(data)
		if !ok {
			return
		}
		m, err := parseRelayMsg(data)
		if err != nil {
			return // the decoder also checks the event's fields' types
		}
		if m.label != "EVENT" || m.sub != string(sub) || m.event.ID != string(id) {
			t.Fatalf("%q: eventID %q %q, decoder %+v", data, sub, id, m)
		}
	})
}

// The fan-out reader's cost per delivery, the full decode against eventID.
func BenchmarkReadDelivery(b *testing.B) {
	ev := mustCorpus(b, CorpusSpec{Seed: 1, Events: 5, Keys: 2, Until: testUntil}).Events[4]
	raw, _ := ev.MarshalJSON()
	msg := []byte(`["EVENT","f",` + string(raw) + `]`)
	index := map[string]int{ev.ID: 1}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			m, err := parseRelayMsg(msg)
			if err != nil || index[m.event.ID] != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("eventID", func(b *testing.B) {
		for b.Loop() {
			_, id, ok := eventID(msg)
			if !ok || index[string(id)] != 1 {
				b.Fatal("not read")
			}
		}
	})
}

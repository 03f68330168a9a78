package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

func TestBadItems(t *testing.T) {
	s := openTestStore(t, Options{})
	good := func() *nostr.Event {
		return &nostr.Event{ID: strings.Repeat("a", 64), PubKey: strings.Repeat("b", 64), Kind: 1}
	}
	cases := map[string]func(ev *nostr.Event) storage.Item{
		"nil event": func(*nostr.Event) storage.Item { return storage.Item{Raw: []byte("{}")} },
		"empty raw": func(ev *nostr.Event) storage.Item { return storage.Item{Event: ev} },
		"uppercase id": func(ev *nostr.Event) storage.Item {
			ev.ID = strings.ToUpper(ev.ID)
			return storage.Item{Event: ev, Raw: []byte("{}")}
		},
		"short pubkey": func(ev *nostr.Event) storage.Item {
			ev.PubKey = ev.PubKey[1:]
			return storage.Item{Event: ev, Raw: []byte("{}")}
		},
		"ephemeral kind": func(ev *nostr.Event) storage.Item { ev.Kind = 20001; return storage.Item{Event: ev, Raw: []byte("{}")} },
	}
	for name, mk := range cases {
		ok := storage.Item{Event: good(), Raw: []byte("{}")}
		ok.Event.ID = strings.Repeat("c", 64)
		_, err := s.Save(context.Background(), []storage.Item{ok, mk(good())})
		if !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %v, want ErrBadEvent", name, err)
		}
		if has, _ := s.Has(context.Background(), ok.Event.ID); has {
			t.Errorf("%s: the good event of the failed batch was stored", name)
		}
	}
}

// A batch cancelled while it runs is rolled back whole, and the store
// keeps working on its other connections.
func TestSaveCancelledMidway(t *testing.T) {
	s := openTestStore(t, Options{MaxConns: 2})
	c := newCorpus(10)
	batch := make([]storage.Item, 5000)
	for i := range batch {
		batch[i] = c.item()
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := s.Save(ctx, batch)
	if err == nil {
		t.Skip("the batch finished before the cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("save: %v, want context.Canceled", err)
	}
	for _, it := range []storage.Item{batch[0], batch[len(batch)-1]} {
		if ok, _ := s.Has(context.Background(), it.Event.ID); ok {
			t.Error("part of a cancelled batch was stored")
		}
	}
	res, err := s.Save(context.Background(), batch[:10])
	if err != nil {
		t.Fatalf("save after a cancelled batch: %v", err)
	}
	if res[0].Outcome != storage.Stored {
		t.Errorf("outcome %v, want stored", res[0].Outcome)
	}
}

// retry runs again on a deadlock or serialization failure, up to its
// attempts, and not on other errors.
func TestRetry(t *testing.T) {
	deadlock := &pgconn.PgError{Code: "40P01"}
	other := &pgconn.PgError{Code: "23505"}
	for _, c := range []struct {
		errs  []error
		calls int
		err   error
	}{
		{[]error{deadlock, nil}, 2, nil},
		{[]error{deadlock, &pgconn.PgError{Code: "40001"}, nil}, 3, nil},
		{[]error{other, nil}, 1, other},
		{[]error{deadlock, deadlock, deadlock, deadlock, nil}, 4, deadlock},
	} {
		calls := 0
		err := retry(context.Background(), func() error {
			calls++
			return c.errs[calls-1]
		})
		if calls != c.calls || !errors.Is(err, c.err) && err != c.err {
			t.Errorf("%v: %d calls, %v; want %d, %v", c.errs, calls, err, c.calls, c.err)
		}
	}
}

// The tsvector literal: positions capped as PostgreSQL keeps them, long and
// invalid words stored as a digest that the query asks for the same way.
func TestSearchVector(t *testing.T) {
	if v := searchVector(" ... !"); v != nil {
		t.Errorf("no words: %q", *v)
	}
	v := searchVector("Zap zap ZAP it's")
	if v == nil || *v != "'zap':1,2,3 'it':4 's':5" {
		t.Errorf("vector %v", *v)
	}
	long := strings.Repeat("é", 150) // 300 bytes
	v = searchVector(long + " " + long)
	q, _ := searchQuery(strings.ToUpper(long))
	if lex := lexeme([]byte(long)); !strings.HasPrefix(lex, "#") || *v != "'"+lex+"':1,2" || q != "'"+lex+"'" {
		t.Errorf("long word: vector %q query %q", *v, q)
	}
	var b strings.Builder
	for range 20000 {
		b.WriteString("w ")
	}
	v = searchVector(b.String())
	if n := strings.Count(*v, ","); n != maxPositions-1 {
		t.Errorf("%d positions kept, want %d", n+1, maxPositions)
	}
	b.Reset()
	for i := range 20000 {
		fmt.Fprintf(&b, "w%d ", i)
	}
	v = searchVector(b.String())
	if !strings.Contains(*v, "'w16382':16383 'w16383':16383") || strings.Contains(*v, ":16384") {
		t.Error("positions past 16383 are not held at 16383")
	}
	if q, ok := searchQuery("a'b c\\d"); !ok || q != "'a' & 'b' & 'c' & 'd'" {
		t.Errorf("query %q", q)
	}
	if _, ok := searchQuery("key:value"); ok {
		t.Error("a search of extensions only has words")
	}
}

func TestReadStats(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	if _, err := ReadStats(ctx, url); err == nil {
		t.Error("stats of a database without wisp's schema")
	}
	s := openURL(t, url, Options{SearchKinds: []int{1, 30023}})
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	if _, err := s.Save(ctx, []storage.Item{
		signedItem(t, sk, 1, 100, "a"), signedItem(t, sk, 1, 200, "b"), signedItem(t, sk, 7, 150, "+"),
		signedItem(t, sk, 1, 300, "gone", nostr.Tag{"expiration", fmt.Sprint(now - 1)}),
	}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStats(ctx, url) // while the store is open
	if err != nil {
		t.Fatal(err)
	}
	if st.SchemaVersion != len(migrations()) || st.KnownVersion != len(migrations()) {
		t.Errorf("versions %d/%d", st.SchemaVersion, st.KnownVersion)
	}
	if st.Events != 4 || st.Expired != 1 || !slices.Equal(st.ByKind, []KindCount{{1, 3}, {7, 1}}) {
		t.Errorf("counts %d expired %d by kind %v", st.Events, st.Expired, st.ByKind)
	}
	if st.Oldest.Unix() != 100 || st.Newest.Unix() != 300 || st.DBBytes == 0 {
		t.Errorf("oldest %v newest %v size %d", st.Oldest, st.Newest, st.DBBytes)
	}
	if !slices.Equal(st.SearchKinds, []int{1, 30023}) {
		t.Errorf("search kinds %v", st.SearchKinds)
	}
}

// A store follows search kinds another process changed: its next save
// indexes by the database's list.
func TestSearchKindsFollowDatabase(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	a := openURL(t, url, Options{SearchKinds: []int{1}})
	b := openURL(t, url, Options{SearchKinds: []int{1, 7}})
	sk := nostr.GeneratePrivateKey()
	if _, err := a.Save(ctx, []storage.Item{signedItem(t, sk, 7, 100, "reaction words")}); err != nil {
		t.Fatal(err)
	}
	if k := a.SearchKinds(); !slices.Equal(k, []int{1, 7}) {
		t.Errorf("kinds after a save: %v", k)
	}
	n, _, err := b.Count(ctx, []nostr.Filter{{Search: "words"}})
	if err != nil || n != 1 {
		t.Errorf("search finds %d, %v; want the reaction", n, err)
	}
}

// Tag rows go with replaced, deleted, expired, vanished and retired events
// (the events_delete_tags trigger), and tombstones accumulate sanely.
func TestTagsFollowEvents(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	count := func(table string) int {
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	save := func(its ...storage.Item) {
		t.Helper()
		if _, err := s.Save(ctx, its); err != nil {
			t.Fatal(err)
		}
	}
	v1 := signedItem(t, sk, 30000, 1, "", nostr.Tag{"d", "x"}, nostr.Tag{"p", "a"}, nostr.Tag{"p", "a"}, nostr.Tag{"long", "not indexed"})
	v2 := signedItem(t, sk, 30000, 2, "", nostr.Tag{"d", "x"}, nostr.Tag{"t", "t"})
	note := signedItem(t, sk, 1, 1, "", nostr.Tag{"t", "t"}, nostr.Tag{"expiration", "5"})
	save(v1)
	if n := count("tags"); n != 2 { // d and one p: duplicates and long names are not kept
		t.Errorf("%d tag rows, want 2", n)
	}
	save(v2, note)
	if n := count("tags"); n != 3 {
		t.Errorf("after replacement: %d tag rows, want 3", n)
	}
	if _, err := s.DeleteExpired(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if n := count("tags"); n != 2 {
		t.Errorf("after expiry: %d tag rows, want 2", n)
	}
	addr := fmt.Sprintf("30000:%s:x", v1.Event.PubKey)
	save(signedItem(t, sk, 5, 10, "", nostr.Tag{"a", addr}), signedItem(t, sk, 5, 5, "", nostr.Tag{"a", addr}, nostr.Tag{"e", v2.Event.ID}))
	if n := count("tags"); n != 3 { // only the deletions' own a, a and e tags
		t.Errorf("after deletion: %d tag rows, want 3", n)
	}
	var until int64
	if err := s.pool.QueryRow(ctx, "SELECT until FROM deleted_addresses").Scan(&until); err != nil || until != 10 {
		t.Errorf("address tombstone until %d (%v), want the latest deletion's 10", until, err)
	}
	if n := count("deleted_ids"); n != 1 {
		t.Errorf("%d id tombstones, want 1", n)
	}
	save(signedItem(t, sk, 7, 20, "+", nostr.Tag{"e", v2.Event.ID}))
	if _, err := s.DeleteOld(ctx, 7, 7, 100); err != nil {
		t.Fatal(err)
	}
	if n := count("tags"); n != 3 {
		t.Errorf("after retention: %d tag rows, want 3", n)
	}
	save(signedItem(t, sk, 62, 50, "", nostr.Tag{"relay", "ALL_RELAYS"}))
	if n := count("tags"); n != 0 { // the deletions went, and "relay" is not indexed
		t.Errorf("after vanish: %d tag rows, want 0", n)
	}
}

// New search entries wait in the index's pending list until a flush (or
// a large enough insert, or autovacuum) merges them; searches find them
// either way.
func TestFlushSearchIndex(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, Options{SearchKinds: []int{1}, manualUpkeep: true}) // no flush but the test's
	c := newCorpus(10)
	c.load(t, s, 1000)
	search := func() int64 {
		t.Helper()
		n, _, err := s.Count(ctx, []nostr.Filter{{Search: "lazy fox"}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := search()
	if pages, err := s.FlushSearchIndex(ctx); err != nil || pages == 0 {
		t.Fatalf("flush: %d pages, %v; want some", pages, err)
	}
	if pages, err := s.FlushSearchIndex(ctx); err != nil || pages != 0 {
		t.Errorf("second flush: %d pages, %v; want none", pages, err)
	}
	if after := search(); after != before || after == 0 {
		t.Errorf("search found %d before the flush, %d after", before, after)
	}
	s.Close()
	if _, err := s.FlushSearchIndex(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("flush after close: %v", err)
	}
}

// A database set to synchronous_commit=off would let Save return before
// its commit is on disk: the store's sessions set it back to on, and keep
// a stronger setting.
func TestSynchronousCommit(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	for _, c := range []struct{ db, want string }{{"off", "on"}, {"remote_apply", "remote_apply"}, {"local", "local"}} {
		setup := openURL(t, url, Options{})
		var db string
		if err := setup.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		if _, err := setup.pool.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET synchronous_commit = %s", db, c.db)); err != nil {
			t.Fatal(err)
		}
		setup.Close()
		s := openURL(t, url, Options{MaxConns: 1})
		var got string
		if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil || got != c.want {
			t.Errorf("database set to %s: session has %q (%v), want %s", c.db, got, err, c.want)
		}
	}
}

// From Open to Close the store purges expired events and those past their
// retention by itself.
func TestUpkeep(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, Options{Upkeep: storage.Upkeep{
		Sweep:     20 * time.Millisecond,
		Retention: []storage.RetentionRule{{MinKind: 7, MaxKind: 7, MaxAge: time.Hour}},
	}})
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	expired := signedItem(t, sk, 1, now, "soon gone", nostr.Tag{"expiration", fmt.Sprint(now + 1)})
	old := signedItem(t, sk, 7, now-7200, "+")
	kept := []storage.Item{signedItem(t, sk, 1, now-7200, "old note"), signedItem(t, sk, 7, now, "+")}
	if _, err := s.Save(ctx, append([]storage.Item{expired, old}, kept...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sweep to purge", func() bool {
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(kept)
	})
	for _, it := range kept {
		if ok, _ := s.Has(ctx, it.Event.ID); !ok {
			t.Errorf("%q purged", it.Event.Content)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

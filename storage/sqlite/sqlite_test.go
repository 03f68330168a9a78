package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, conformanceEngine(Options{ReadConns: 2}))
}

// conformanceEngine opens stores with base on database files in the
// test's directory, with the suite's options and their upkeep off: the
// suite purges expired events itself and counts those not purged yet,
// which the sweep at Open could take first. Settle brings the search
// index up to date.
func conformanceEngine(base Options) storagetest.Engine {
	return storagetest.Engine{
		NewDB: func(t *testing.T) storagetest.Opener {
			path := filepath.Join(t.TempDir(), "wisp.db")
			return func(opts storagetest.Options) (storage.Store, error) {
				o := base
				o.SearchKinds, o.CountCap, o.manualUpkeep = opts.SearchKinds, opts.CountCap, true
				return Open(t.Context(), path, o)
			}
		},
		Settle: func(t *testing.T, s storage.Store) { catchUp(t, s.(*Store), 100) },
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(context.Background(), filepath.Join(dir, "wisp.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("directory mode %v, want no access for group and others", perm)
	}
}

func TestOpenOddPath(t *testing.T) {
	// '?', '#' and '%' mean something in a file: URI.
	path := filepath.Join(t.TempDir(), "we?ird#na%20me.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
	if _, err := Open(context.Background(), ":memory:", Options{}); err == nil {
		t.Error("opened an in-memory database")
	}
}

func TestPragmas(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	for _, c := range []struct {
		db     string
		pragma string
		want   string
	}{
		{"w", "journal_mode", "wal"},
		{"w", "synchronous", "1"}, // NORMAL
		{"w", "foreign_keys", "1"},
		{"w", "busy_timeout", fmt.Sprint(busyTimeoutMS)},
		{"r", "journal_mode", "wal"},
		{"r", "busy_timeout", fmt.Sprint(busyTimeoutMS)},
	} {
		db := s.w
		if c.db == "r" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: PRAGMA %s = %q, want %q", c.db, c.pragma, got, c.want)
		}
	}
	if _, err := s.r.ExecContext(ctx, "DELETE FROM events"); err == nil {
		t.Error("the read pool can write")
	}
}

// With FullSync every commit of the writer waits for the disk.
func TestFullSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	for _, c := range []struct {
		full bool
		want int
	}{{false, 1}, {true, 2}, {false, 1}} { // NORMAL, FULL, and back: it is no property of the file
		s, err := Open(t.Context(), path, Options{FullSync: c.full})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s.w.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("FullSync %v: PRAGMA synchronous = %d, want %d", c.full, got, c.want)
		}
		s.Close()
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := nostr.GeneratePrivateKey()
	ev := &nostr.Event{Kind: 1, CreatedAt: 1, Tags: nostr.Tags{}}
	if err := ev.Sign(k); err != nil {
		t.Fatal(err)
	}
	raw, _ := ev.MarshalJSON()
	if _, err := s.Save(ctx, []storage.Item{{Event: ev, Raw: raw}}); err != nil {
		t.Fatal(err)
	}
	var version int
	if err := s.w.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations()) {
		t.Errorf("user_version %d, want %d", version, len(migrations()))
	}
	s.Close()

	// Reopening runs nothing and keeps the data.
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Has(ctx, ev.ID); !ok || err != nil {
		t.Errorf("event lost on reopen: %v, %v", ok, err)
	}
	// A database from a newer wisp is refused.
	if _, err := s.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations())+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path, Options{}); !errors.Is(err, storage.ErrTooNew) {
		if err == nil {
			s.Close()
		}
		t.Errorf("open newer database: %v, want ErrTooNew", err)
	}
}

func TestCheckpointAndOptimize(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	c := newCorpus(10)
	batch := make([]storage.Item, 200)
	for i := range batch {
		batch[i] = c.item()
	}
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Errorf("checkpoint: %v", err)
	}
	if info, err := os.Stat(s.file + "-wal"); err != nil || info.Size() != 0 {
		t.Errorf("WAL not truncated: %v, %v", info, err)
	}
	if err := s.Optimize(ctx); err != nil {
		t.Errorf("optimize: %v", err)
	}
	s.Close()
	if err := s.Checkpoint(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("checkpoint after close: %v", err)
	}
	if err := s.Optimize(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("optimize after close: %v", err)
	}
}

func TestBadItems(t *testing.T) {
	s := openTestStore(t)
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

func TestTooManyValues(t *testing.T) {
	s := openTestStore(t)
	values := make([]string, maxParams+1)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	_, err := s.Query(context.Background(), []nostr.Filter{{Tags: nostr.TagMap{"t": values}}}, func([]byte) error { return nil })
	if !errors.Is(err, storage.ErrBadQuery) {
		t.Errorf("query: %v, want ErrBadQuery", err)
	}
}

// TestTagsFollowEvents checks that tag rows go with replaced, deleted and
// expired events (ON DELETE CASCADE), and that tombstones accumulate sanely.
func TestTagsFollowEvents(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	mk := func(kind int, at int64, tags nostr.Tags) storage.Item {
		ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(at), Tags: tags}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		raw, _ := ev.MarshalJSON()
		return storage.Item{Event: ev, Raw: raw}
	}
	count := func(table string) int {
		var n int
		if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	v1 := mk(30000, 1, nostr.Tags{{"d", "x"}, {"p", "a"}, {"p", "a"}, {"long", "not indexed"}})
	v2 := mk(30000, 2, nostr.Tags{{"d", "x"}, {"t", "t"}})
	note := mk(1, 1, nostr.Tags{{"t", "t"}, {"expiration", "5"}})
	if _, err := s.Save(ctx, []storage.Item{v1}); err != nil {
		t.Fatal(err)
	}
	if n := count("tags"); n != 2 { // d and one p: duplicates and long names are not kept
		t.Errorf("%d tag rows, want 2", n)
	}
	if _, err := s.Save(ctx, []storage.Item{v2, note}); err != nil {
		t.Fatal(err)
	}
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
	del1 := mk(5, 10, nostr.Tags{{"a", addr}})
	del2 := mk(5, 5, nostr.Tags{{"a", addr}, {"e", v2.Event.ID}})
	if _, err := s.Save(ctx, []storage.Item{del1, del2}); err != nil {
		t.Fatal(err)
	}
	if n := count("tags"); n != 3 { // only the deletions' own a, a and e tags
		t.Errorf("after deletion: %d tag rows, want 3", n)
	}
	var until int64
	if err := s.r.QueryRowContext(ctx, "SELECT until FROM deleted_addresses").Scan(&until); err != nil {
		t.Fatal(err)
	}
	if until != 10 {
		t.Errorf("address tombstone until %d, want the latest deletion's 10", until)
	}
	if n := count("deleted_ids"); n != 1 {
		t.Errorf("%d id tombstones, want 1", n)
	}
}

// TestSnapshot checks under concurrent writes that a query sees exactly the
// events up to its watermark: with only regular events, sequence numbers
// have no gaps, so the count equals the watermark.
func TestSnapshot(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	c := newCorpus(5)
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(done)
		for range 30 {
			batch := make([]storage.Item, 0, 10)
			for len(batch) < 10 {
				if it := c.item(); it.Event.Kind == 1 || it.Event.Kind == 7 {
					batch = append(batch, it)
				}
			}
			if _, err := s.Save(ctx, batch); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			wg.Wait()
			return
		default:
		}
		n := 0
		wm, err := s.Query(ctx, []nostr.Filter{{Kinds: []int{1}}, {Kinds: []int{7}}}, func([]byte) error { n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if int64(n) != wm {
			t.Fatalf("query %d: %d events with watermark %d", i, n, wm)
		}
	}
}

func TestDeleteExpiredChunks(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	c := newCorpus(10)
	const n = 2*expireChunk + 5
	batch := make([]storage.Item, 0, n+1)
	for len(batch) < n {
		it := c.item()
		if it.Event.Kind != 1 { // regular events only, so none is replaced
			continue
		}
		it.Event.Tags = append(it.Event.Tags, nostr.Tag{"expiration", "100"})
		it.Event.ID = it.Event.GetID()
		it.Raw, _ = it.Event.MarshalJSON()
		batch = append(batch, it)
	}
	batch = append(batch, c.item()) // one without expiration
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeleteExpired(ctx, 100)
	if err != nil || got != n {
		t.Errorf("delete expired: %d, %v; want %d", got, err, n)
	}
	plan := explain(t, s, builtQuery{
		sql:  "SELECT seq FROM events WHERE expiration IS NOT NULL AND expiration <= ? LIMIT ?",
		args: []any{100, expireChunk},
	})
	if !strings.Contains(strings.Join(plan, "\n"), "events_expiration") {
		t.Errorf("expiry does not use its index: %v", plan)
	}
}

// TestSaveCancelledMidway checks that a batch cancelled while it runs is
// rolled back whole and that the store keeps working.
func TestSaveCancelledMidway(t *testing.T) {
	s := openTestStore(t)
	c := newCorpus(10)
	batch := make([]storage.Item, 3000)
	for i := range batch {
		batch[i] = c.item()
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Long enough for the transaction to begin, far shorter than the batch.
	time.AfterFunc(2*time.Millisecond, cancel)
	_, err := s.Save(ctx, batch)
	if err == nil {
		t.Skip("the batch finished before the cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("save: %v, want context.Canceled", err)
	}
	if ok, _ := s.Has(context.Background(), batch[0].Event.ID); ok {
		t.Error("part of a cancelled batch was stored")
	}
	res, err := s.Save(context.Background(), batch[:10])
	if err != nil {
		t.Fatalf("save after a cancelled batch: %v", err)
	}
	if res[0].Outcome != storage.Stored {
		t.Errorf("outcome %v, want stored", res[0].Outcome)
	}
}

// A passive checkpoint lets the next write start the WAL over, so the WAL
// stays the size of one burst of writes instead of growing.
func TestCheckpointPassiveKeepsWALSmall(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	c := newCorpus(10)
	burst := func() {
		batch := make([]storage.Item, 200)
		for i := range batch {
			batch[i] = c.item()
		}
		if _, err := s.Save(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	walSize := func() int64 {
		info, err := os.Stat(s.file + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return info.Size()
	}
	burst()
	one := walSize()
	burst()
	if two := walSize(); two < one*3/2 {
		t.Fatalf("without a checkpoint the WAL should grow: %d then %d bytes", one, two)
	}
	if err := s.CheckpointPassive(ctx); err != nil {
		t.Fatal(err)
	}
	before := walSize()
	burst()
	if after := walSize(); after > before {
		t.Fatalf("WAL grew from %d to %d bytes after a passive checkpoint", before, after)
	}
	s.Close()
	if err := s.CheckpointPassive(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("passive checkpoint after close: %v", err)
	}
}

// A new database gets newPageSize pages, still in WAL mode; one that
// exists keeps its pages, and its events.
func TestPageSize(t *testing.T) {
	pageSize := func(s *Store) int {
		t.Helper()
		var n int
		if err := s.r.QueryRow("PRAGMA page_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx := context.Background()
	s := openTestStore(t)
	if got := pageSize(s); got != newPageSize {
		t.Errorf("new database: page size %d, want %d", got, newPageSize)
	}
	var mode string
	if err := s.w.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("new database: journal mode %q (%v), want wal", mode, err)
	}

	path := filepath.Join(t.TempDir(), "old.db")
	old := signed(t, nostr.GeneratePrivateKey(), 1, 1, "old")
	oldDatabase(t, path, len(migrations()), []storage.Item{old})
	s = openTestStoreAt(t, path)
	if got := pageSize(s); got != 4096 {
		t.Errorf("existing database: page size %d, want 4096 (SQLite's default) kept", got)
	}
	if ok, err := s.Has(ctx, old.Event.ID); err != nil || !ok {
		t.Errorf("existing database: has its event %v (%v)", ok, err)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// oldDatabase makes a database as a wisp with only the first steps of the
// migrations made it, and stores items in it with that schema's own SQL
// (events and tags tables as step 1 created them).
func oldDatabase(t *testing.T, path string, steps int, items []storage.Item) {
	t.Helper()
	oldDatabaseWith(t, path, steps, "", items)
}

// oldDatabaseWith is oldDatabase running setup (SQL) before storing items.
func oldDatabaseWith(t *testing.T, path string, steps int, setup string, items []storage.Item) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+escapePath(path)+"?_journal_mode=WAL&_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for i, step := range migrations()[:steps] {
		if _, err := db.Exec(step); err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", steps)); err != nil {
		t.Fatal(err)
	}
	if setup != "" {
		if _, err := db.Exec(setup); err != nil {
			t.Fatal(err)
		}
	}
	for _, it := range items {
		ev := it.Event
		var id, pk [32]byte
		evkey.DecodeHex32(ev.ID, &id)
		evkey.DecodeHex32(ev.PubKey, &pk)
		var d any
		if nostr.IsReplaceableKind(ev.Kind) {
			d = ""
		} else if nostr.IsAddressableKind(ev.Kind) {
			d = ev.Tags.GetD()
		}
		var seq int64
		err := db.QueryRow(`INSERT INTO events (id, pubkey, created_at, kind, d_tag, expiration, raw)
			VALUES (?, ?, ?, ?, ?, NULL, ?) RETURNING seq`, id[:], pk[:], ev.CreatedAt, ev.Kind, d, string(it.Raw)).Scan(&seq)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && evkey.IndexedTagName(tag[0]) {
				if _, err := db.Exec(`INSERT OR IGNORE INTO tags (seq, name, value, kind, created_at) VALUES (?, ?, ?, ?, ?)`,
					seq, tag[0], tag[1], ev.Kind, ev.CreatedAt); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A database left by an older wisp, at every earlier schema version (the
// released v1 first), opens, migrates in place and serves everything it
// held: queries, counts and search over the old events, and new writes.
func TestMigrateFromOlderVersions(t *testing.T) {
	for steps := 1; steps < len(migrations()); steps++ {
		t.Run(fmt.Sprintf("v%d", steps), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wisp.db")
			alice, bob := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
			note := signed(t, alice, 1, 100, "an old note about gardening")
			items := []storage.Item{
				note,
				signed(t, bob, 7, 101, "+", nostr.Tag{"e", note.Event.ID}),
				signed(t, alice, 0, 102, "old profile"),
				signed(t, bob, 30023, 103, "an old article on gardening", nostr.Tag{"d", "garden"}),
				signed(t, bob, 1, 104, "unrelated"),
			}
			oldDatabase(t, path, steps, items)

			s := openSearchStore(t, path, []int{1, 30023})
			defer s.Close()
			ctx := context.Background()
			var version int
			if err := s.r.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != len(migrations()) {
				t.Fatalf("user_version %d (%v), want %d", version, err, len(migrations()))
			}
			if got, want := schema(t, s), schema(t, openTestStore(t)); !slices.Equal(got, want) {
				t.Errorf("migrated schema differs from a new database's:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			f := searchFixture{t, s}
			if got := f.events(nostr.Filter{}); len(got) != len(items) {
				t.Errorf("served %d events, stored %d", len(got), len(items))
			}
			if got := f.events(nostr.Filter{Tags: nostr.TagMap{"e": {note.Event.ID}}}); len(got) != 1 || got[0].Kind != 7 {
				t.Errorf("tag query: %v", got)
			}
			if n, _, err := s.Count(ctx, []nostr.Filter{{}}); n != int64(len(items)) || err != nil {
				t.Errorf("count all: %d %v, want %d", n, err, len(items))
			}
			if n, _, err := s.Count(ctx, []nostr.Filter{{Kinds: []int{7}, Tags: nostr.TagMap{"e": {note.Event.ID}}}}); n != 1 || err != nil {
				t.Errorf("count reactions: %d %v", n, err)
			}
			got := contents(f.events(nostr.Filter{Search: "gardening"}))
			slices.Sort(got)
			if !slices.Equal(got, []string{"an old article on gardening", "an old note about gardening"}) {
				t.Errorf("search over old events: %q", got)
			}

			// Writes go on as usual: replacement, deletion, new events.
			res, err := s.Save(ctx, []storage.Item{
				signed(t, alice, 0, 200, "new profile"),
				signed(t, alice, 5, 201, "", nostr.Tag{"e", note.Event.ID}),
				signed(t, bob, 1, 202, "gardening again"),
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Outcome != storage.Stored {
					t.Errorf("save %d after migration: %v", i, r.Outcome)
				}
			}
			if n, _, err := s.Count(ctx, []nostr.Filter{{}}); n != int64(len(items))+1 || err != nil {
				t.Errorf("count all after writes: %d %v, want %d", n, err, len(items)+1)
			}
			got = contents(f.events(nostr.Filter{Search: "gardening"}))
			slices.Sort(got)
			if !slices.Equal(got, []string{"an old article on gardening", "gardening again"}) {
				t.Errorf("search after writes: %q", got)
			}
		})
	}
}

// schema lists the database's tables, indexes and triggers with their SQL.
func schema(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.r.Query("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, name, sql string
		if err := rows.Scan(&typ, &name, &sql); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ+" "+name+": "+sql)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A version 3 database, indexed for search by its insert trigger, keeps its
// index: migration 4 starts the watermark at its newest event, search
// serves the old events from the index and new ones from the tail.
func TestMigrateSearchFromV3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	sk := nostr.GeneratePrivateKey()
	items := []storage.Item{
		signed(t, sk, 1, 100, "an old note about gardening"),
		signed(t, sk, 7, 101, "gardening"),
		signed(t, sk, 1, 102, "another old note about gardening"),
	}
	oldDatabaseWith(t, path, 3, "INSERT INTO search_kinds (kind) VALUES (1)", items)
	s := openSearchStore(t, path, []int{1})
	defer s.Close()
	f := searchFixture{t, s}
	var trigger int
	if err := s.r.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'events_search_insert'").Scan(&trigger); err != nil || trigger != 0 {
		t.Errorf("insert trigger still there (%v)", err)
	}
	if indexed, rows, _ := searchState(t, s); indexed != 3 || rows != 2 || lag(t, s) != 0 {
		t.Errorf("after migration: watermark %d, %d index rows, lag %d", indexed, rows, lag(t, s))
	}
	f.save(bigBatch(t, signed(t, sk, 1, 200, "new gardening note"))...)
	if lag(t, s) == 0 {
		t.Fatal("no tail")
	}
	for _, state := range []string{"tail", "indexed"} {
		if got := f.events(nostr.Filter{Search: "gardening"}); len(got) != 3 {
			t.Errorf("%s: search: %q", state, contents(got))
		}
		if n := f.count(nostr.Filter{Search: "gardening note"}); n != 3 {
			t.Errorf("%s: count: %d", state, n)
		}
		catchUp(t, s, 1000)
	}
	if _, rows, searchable := searchState(t, s); rows != searchable || rows != 3 {
		t.Errorf("%d index rows for %d notes", rows, searchable)
	}
}

// A database from a newer wisp is refused, and the error says so plainly.
func TestMigrateRefusesNewer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	oldDatabase(t, path, len(migrations()), nil)
	db, err := sql.Open("sqlite3", "file:"+escapePath(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations())+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(context.Background(), path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a database from a newer wisp")
	}
	if !errors.Is(err, storage.ErrTooNew) || !strings.Contains(err.Error(), "newer version of wisp") ||
		!strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(migrations())+1)) {
		t.Errorf("error %q does not explain", err)
	}
}

// Migration 5 gives an event stored by an older wisp with several
// expiration tags the earliest as its expiration, as Save now does (the
// older wisp took the first): once that has passed the event is no longer
// served and the sweep deletes it.
func TestMigrateExpirationToEarliest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	exp := func(at int64) nostr.Tag { return nostr.Tag{"expiration", fmt.Sprint(at)} }
	several := signed(t, sk, 1, now-100, "expired by its second tag", exp(now+86400), exp(now-10))
	one := signed(t, sk, 1, now-100, "expires in an hour", exp(now+3600))
	tagged := signed(t, sk, 1, now-100, "no expiration, other tags", nostr.Tag{"t", "expiration"})
	items := []storage.Item{several, one, tagged}
	oldDatabase(t, path, 4, items)
	// What the older wisp stored: the first expiration tag.
	db, err := sql.Open("sqlite3", "file:"+escapePath(path))
	if err != nil {
		t.Fatal(err)
	}
	for id, at := range map[string]int64{several.Event.ID: now + 86400, one.Event.ID: now + 3600} {
		var key [32]byte
		evkey.DecodeHex32(id, &key)
		if _, err := db.Exec("UPDATE events SET expiration = ? WHERE id = ?", at, key[:]); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(t.Context(), path, Options{manualUpkeep: true}) // no sweep before the checks
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]sql.NullInt64{
		several.Event.ID: {Int64: now - 10, Valid: true},
		one.Event.ID:     {Int64: now + 3600, Valid: true},
		tagged.Event.ID:  {},
	}
	for id, w := range want {
		var key [32]byte
		evkey.DecodeHex32(id, &key)
		var got sql.NullInt64
		if err := s.r.QueryRow("SELECT expiration FROM events WHERE id = ?", key[:]).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("expiration of %s after migration: %v, want %v", id, got, w)
		}
	}
	f := searchFixture{t, s}
	if got := f.events(nostr.Filter{}); len(got) != 2 {
		t.Errorf("served %d events, want 2: %q", len(got), contents(got))
	}
	if n, err := s.DeleteExpired(t.Context(), now); err != nil || n != 1 {
		t.Errorf("delete expired: %d, %v; want 1", n, err)
	}
}

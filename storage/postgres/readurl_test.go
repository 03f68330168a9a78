package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/pgtest"
	"github.com/wisp-relay/wisp/storage"
)

// With ReadURL, stored reads go to the read database and everything else
// to the primary. Here the "replica" is another database holding other
// events, so where each call went shows in what it answers.
func TestReadURLRoutesReads(t *testing.T) {
	ctx := context.Background()
	primaryURL, replicaURL := pg.Database(t), pg.Database(t)
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	onReplica := signedItem(t, sk, 1, now, "only on the replica")
	if _, err := openURL(t, replicaURL, Options{}).Save(ctx, []storage.Item{onReplica}); err != nil {
		t.Fatal(err)
	}

	s := openURL(t, primaryURL, Options{ReadURL: replicaURL})
	saved := signedItem(t, sk, 1, now, "saved through the store")
	res, err := s.Save(ctx, []storage.Item{saved})
	if err != nil || res[0].Outcome != storage.Stored {
		t.Fatalf("save: %v, %v", res, err)
	}

	// The primary: what must see the store's own writes.
	if ok, err := s.Has(ctx, saved.Event.ID); !ok || err != nil {
		t.Errorf("Has of the saved event: %v, %v", ok, err)
	}
	var after []int64
	if err := s.EventsAfter(ctx, 0, 10, func(seq int64, _ []byte) error { after = append(after, seq); return nil }); err != nil || !slices.Equal(after, []int64{res[0].Seq}) {
		t.Errorf("EventsAfter: %v, %v; want the saved event's seq %d", after, err, res[0].Seq)
	}
	if err := s.PutListEntry(ctx, "banned_pubkeys", "k", "r"); err != nil {
		t.Fatal(err)
	}
	if e, err := s.ListEntries(ctx, "banned_pubkeys"); err != nil || len(e) != 1 {
		t.Errorf("ListEntries: %v, %v", e, err)
	}

	// The replica: stored reads.
	var got []string
	if _, err := s.Query(ctx, []nostr.Filter{{Authors: []string{saved.Event.PubKey}}}, func(raw []byte) error {
		var ev nostr.Event
		err := json.Unmarshal(raw, &ev)
		got = append(got, ev.Content)
		return err
	}); err != nil || !slices.Equal(got, []string{onReplica.Event.Content}) {
		t.Errorf("Query answered %q, %v; want the replica's event", got, err)
	}
	if n, _, err := s.Count(ctx, []nostr.Filter{{}}); err != nil || n != 1 {
		t.Errorf("Count %d, %v; want the replica's 1", n, err)
	}
	var ids [][]byte
	if err := s.ListIDs(ctx, []nostr.Filter{{}}, 10, func(_ int64, id []byte) error { ids = append(ids, id); return nil }); err != nil || len(ids) != 1 {
		t.Errorf("ListIDs: %d ids, %v; want the replica's one", len(ids), err)
	}

	// Deleting by a filter removes what the primary holds.
	if n, err := s.DeleteMatching(ctx, []nostr.Filter{{IDs: []string{saved.Event.ID}}}); err != nil || n != 1 {
		t.Errorf("DeleteMatching: %d, %v", n, err)
	}
}

// ReadURL on the primary itself: reads and writes both work.
func TestReadURLSameDatabase(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	s := openURL(t, url, Options{ReadURL: url})
	it := signedItem(t, nostr.GeneratePrivateKey(), 1, time.Now().Unix(), "x")
	if _, err := s.Save(ctx, []storage.Item{it}); err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := s.Query(ctx, []nostr.Filter{{IDs: []string{it.Event.ID}}}, func([]byte) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("Query: %d events, %v", n, err)
	}
}

// A real streaming replica as ReadURL: saves go to the primary (the
// standby refuses writes), and the replica serves them once replayed.
func TestReadURLStreamingReplica(t *testing.T) {
	if err := pg.Available(); err != nil {
		pg.Database(t) // skips or fails as every PostgreSQL test does
	}
	srv := pgtest.Start() // its own: a standby replays all its primary's writes
	t.Cleanup(srv.Stop)
	url := srv.Database(t)
	replica := srv.Replica(t)(url)
	ctx := context.Background()
	s := openURL(t, url, Options{ReadURL: replica})
	it := signedItem(t, nostr.GeneratePrivateKey(), 1, time.Now().Unix(), "replicated")
	if res, err := s.Save(ctx, []storage.Item{it}); err != nil || res[0].Outcome != storage.Stored {
		t.Fatalf("save: %v, %v", res, err)
	}
	if err := s.SetSetting(ctx, "relay_name", "x"); err != nil {
		t.Fatal(err)
	}
	// Until the standby has replayed the schema, reads fail ("relation
	// events does not exist"); then they miss the event, then find it.
	var lastErr error
	waitFor(t, "the replica to serve the saved event", func() bool {
		n, _, err := s.Count(ctx, []nostr.Filter{{IDs: []string{it.Event.ID}}})
		if err != nil {
			if lastErr == nil {
				t.Logf("count on the replica, not caught up yet: %v", err)
			}
			lastErr = err
			return false
		}
		return n == 1
	})
	var read bool
	if err := s.read.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&read); err != nil || !read {
		t.Errorf("the read pool is not on the standby: %v, %v", read, err)
	}
}

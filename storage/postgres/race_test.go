package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

func signedItem(t *testing.T, sk string, kind int, createdAt int64, content string, tags ...nostr.Tag) storage.Item {
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

// waitFor polls cond until it holds, failing t after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitingLocks counts the backends of the database waiting for a lock.
func waitingLocks(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Sequence numbers commit in their order even with two writers: a save held
// up after it took its number (here by a transaction of the test holding the
// same event id) keeps the other store's save waiting, so that no snapshot
// holds a seq above one it misses. Without the write lock, the second save
// commits first and a query's watermark passes the first save's seq while
// its event is not visible: the gap a reader of seq > last would skip.
func TestSeqsCommitInOrder(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	s1, s2 := openURL(t, url, Options{}), openURL(t, url, Options{})
	sk := nostr.GeneratePrivateKey()
	x, y := signedItem(t, sk, 1, 100, "x"), signedItem(t, sk, 1, 101, "y")

	blocker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var xid, pk [32]byte
	evkey.DecodeHex32(x.Event.ID, &xid)
	evkey.DecodeHex32(x.Event.PubKey, &pk)
	if _, err := tx.Exec(ctx, "INSERT INTO events (id, pubkey, created_at, kind, raw) VALUES ($1, $2, 1, 1, '{}')", xid[:], pk[:]); err != nil {
		t.Fatal(err)
	}

	type saved struct {
		res []storage.Result
		err error
	}
	first, second := make(chan saved, 1), make(chan saved, 1)
	go func() {
		res, err := s1.Save(ctx, []storage.Item{x})
		first <- saved{res, err}
	}()
	waitFor(t, "the first save to wait on the test's row", func() bool { return waitingLocks(t, s1) >= 1 })
	go func() {
		res, err := s2.Save(ctx, []storage.Item{y})
		second <- saved{res, err}
	}()
	var b saved
	secondDone := false
	waitFor(t, "the second save to finish or wait", func() bool {
		select {
		case b = <-second:
			secondDone = true
			return true
		default:
			return waitingLocks(t, s1) >= 2
		}
	})

	// LastSeq, where a follower starts reading, waits for the saves too:
	// the first save's number is drawn but not committed.
	lastSeq := make(chan int64, 1)
	waiting := waitingLocks(t, s1)
	go func() {
		seq, err := s2.LastSeq(ctx)
		if err != nil {
			t.Error(err)
		}
		lastSeq <- seq
	}()
	waitFor(t, "LastSeq to wait", func() bool {
		select {
		case seq := <-lastSeq:
			t.Fatalf("LastSeq answered %d while a save was under way", seq)
		default:
		}
		return waitingLocks(t, s1) > waiting
	})

	var seen []string
	wm, err := s1.Query(ctx, []nostr.Filter{{}}, func(raw []byte) error {
		var ev nostr.Event
		err := json.Unmarshal(raw, &ev)
		seen = append(seen, ev.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-first
	if !secondDone {
		b = <-second
	}
	if a.err != nil || b.err != nil || a.res[0].Outcome != storage.Stored || b.res[0].Outcome != storage.Stored {
		t.Fatalf("saves: %v %v, %v %v", a.res, a.err, b.res, b.err)
	}
	for _, c := range []struct {
		it  storage.Item
		seq int64
	}{{x, a.res[0].Seq}, {y, b.res[0].Seq}} {
		if c.seq <= wm && !slices.Contains(seen, c.it.Event.ID) {
			t.Errorf("watermark %d passes seq %d, whose event the snapshot lacks (it saw %d events)", wm, c.seq, len(seen))
		}
	}
	if last := <-lastSeq; last < a.res[0].Seq {
		t.Errorf("LastSeq answered %d while the save of seq %d was under way", last, a.res[0].Seq)
	}
	if a.res[0].Seq > b.res[0].Seq {
		t.Errorf("the first save got seq %d, after the second's %d", a.res[0].Seq, b.res[0].Seq)
	}
}

// A request to vanish on one node and events it covers sent to another at
// the same time: whichever commits first, none of them survive.
func TestVanishRacesAcrossStores(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	s1, s2 := openURL(t, url, Options{}), openURL(t, url, Options{})
	now := time.Now().Unix()
	wrapper := nostr.GeneratePrivateKey()
	for round := range 20 {
		sk := nostr.GeneratePrivateKey()
		pk, _ := nostr.GetPublicKey(sk)
		vanish := signedItem(t, sk, 62, now, "", nostr.Tag{"relay", "ALL_RELAYS"})
		note := signedItem(t, sk, 1, now-1, fmt.Sprint("note ", round))
		wrap := signedItem(t, wrapper, 1059, now-1, fmt.Sprint("wrap ", round), nostr.Tag{"p", pk})
		errs := make(chan error, 2)
		go func() { _, err := s1.Save(ctx, []storage.Item{vanish}); errs <- err }()
		go func() { _, err := s2.Save(ctx, []storage.Item{note, wrap}); errs <- err }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for _, it := range []storage.Item{note, wrap} {
			if ok, err := s1.Has(ctx, it.Event.ID); ok || err != nil {
				t.Fatalf("round %d: kind %d survived the request to vanish (%v)", round, it.Event.Kind, err)
			}
		}
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// watching runs s.Watch until t ends and returns its notices.
func watching(t *testing.T, s *Store) <-chan storage.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan storage.Change, 1000)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, func(c storage.Change) {
			select {
			case changes <- c:
			default:
				t.Error("notices not read")
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v after its context ended, want context.Canceled", err)
		}
	})
	return changes
}

// expectChange waits for a notice saying want (ChangedAll counts), and
// returns whether the first one was ChangedAll.
func expectChange(t *testing.T, changes <-chan storage.Change, want storage.Change) storage.Change {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case c := <-changes:
			if c&want != 0 {
				return c
			}
		case <-deadline:
			t.Fatalf("no notice of %v", want)
		}
	}
}

// drain discards the notices so far.
func drain(changes <-chan storage.Change) {
	for {
		select {
		case <-changes:
		default:
			return
		}
	}
}

// A save on one store, an expiry purge and a moderation write are
// announced to a Watch on another store of the same database; after the
// listening connection is killed, the watcher says ChangedAll once it
// listens again and announces the next save.
func TestWatchAcrossStores(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	writer, watcher := openURL(t, url, Options{}), openURL(t, url, Options{})
	changes := watching(t, watcher)
	if c := expectChange(t, changes, storage.ChangedAll); c != storage.ChangedAll {
		t.Fatalf("first notice %v, want ChangedAll once listening", c)
	}
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()

	if _, err := writer.Save(ctx, []storage.Item{signedItem(t, sk, 1, now, "one")}); err != nil {
		t.Fatal(err)
	}
	expectChange(t, changes, storage.ChangedEvents)

	exp := signedItem(t, sk, 1, now, "expiring", nostr.Tag{"expiration", "1"})
	if _, err := writer.Save(ctx, []storage.Item{exp}); err != nil {
		t.Fatal(err)
	}
	expectChange(t, changes, storage.ChangedEvents)
	if n, err := writer.DeleteExpired(ctx, now); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
	expectChange(t, changes, storage.ChangedEvents)

	drain(changes)
	if err := writer.SetSetting(ctx, "relay_name", "x"); err != nil {
		t.Fatal(err)
	}
	if c := expectChange(t, changes, storage.ChangedModeration); c != storage.ChangedModeration {
		t.Errorf("setting announced as %v", c)
	}

	// Kill the listener's backend from outside.
	pg.KillListeners(t, url, 1)
	expectChange(t, changes, storage.ChangedAll)
	drain(changes)
	if _, err := writer.Save(ctx, []storage.Item{signedItem(t, sk, 1, now, "after")}); err != nil {
		t.Fatal(err)
	}
	expectChange(t, changes, storage.ChangedEvents)
}

// A duplicate stores and deletes nothing: no notice.
func TestWatchQuietOnDuplicates(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	writer, watcher := openURL(t, url, Options{}), openURL(t, url, Options{})
	changes := watching(t, watcher)
	expectChange(t, changes, storage.ChangedAll)
	sk := nostr.GeneratePrivateKey()
	it := signedItem(t, sk, 1, time.Now().Unix(), "one")
	if _, err := writer.Save(ctx, []storage.Item{it}); err != nil {
		t.Fatal(err)
	}
	expectChange(t, changes, storage.ChangedEvents)
	if res, err := writer.Save(ctx, []storage.Item{it}); err != nil || res[0].Outcome != storage.Duplicate {
		t.Fatalf("second save: %v, %v", res, err)
	}
	// A notice for a later write comes after any for the duplicate.
	if err := writer.SetSetting(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if c := expectChange(t, changes, storage.ChangedAll); c != storage.ChangedModeration {
		t.Errorf("after a duplicate: notice %v, want only the setting's", c)
	}
}

// Close ends a Watch in progress with storage.ErrClosed.
func TestWatchEndsAtClose(t *testing.T) {
	s, err := Open(context.Background(), pg.Database(t), Options{manualUpkeep: true})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(context.Background(), func(storage.Change) {
			select {
			case started <- struct{}{}:
			default:
			}
		})
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Watch returned %v at Close, want ErrClosed", err)
	}
}

// A store's Watch leaves out the store's own Saves (its caller made them)
// and announces another store's, and its own deletions.
func TestWatchLeavesOutOwnSaves(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	self, other := openURL(t, url, Options{}), openURL(t, url, Options{})
	changes := watching(t, self)
	expectChange(t, changes, storage.ChangedAll)
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	for i := range 3 { // over several of the pool's connections
		if _, err := self.Save(ctx, []storage.Item{signedItem(t, sk, 1, now, fmt.Sprint("own ", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Save(ctx, []storage.Item{signedItem(t, sk, 1, now, "other's")}); err != nil {
		t.Fatal(err)
	}
	if c := expectChange(t, changes, storage.ChangedAll); c != storage.ChangedEvents {
		t.Errorf("after own saves and another's: notice %v, want ChangedEvents", c)
	}
	if err := other.SetSetting(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if c := expectChange(t, changes, storage.ChangedAll); c != storage.ChangedModeration {
		t.Errorf("notice %v, want only the setting's: own saves announced", c)
	}
}

// Two Watches on one store share one listening connection: both hear a
// notice, one ending leaves the other listening, and the connection
// closes when the last ends.
func TestWatchesShareOneConnection(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	self, other := openURL(t, url, Options{}), openURL(t, url, Options{})
	listening := func() int {
		var n int
		err := other.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	watch := func() (<-chan storage.Change, context.CancelFunc, <-chan error) {
		wctx, cancel := context.WithCancel(ctx)
		changes, done := make(chan storage.Change, 100), make(chan error, 1)
		go func() {
			done <- self.Watch(wctx, func(c storage.Change) { changes <- c })
		}()
		return changes, cancel, done
	}
	a, stopA, doneA := watch()
	expectChange(t, a, storage.ChangedAll)
	b, stopB, doneB := watch()
	expectChange(t, b, storage.ChangedAll) // at once: the connection listens
	if n := listening(); n != 1 {
		t.Errorf("%d listening connections for two Watches, want 1", n)
	}
	if err := other.SetSetting(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan storage.Change{a, b} {
		if c := expectChange(t, ch, storage.ChangedModeration); c != storage.ChangedModeration {
			t.Errorf("notice %v, want ChangedModeration", c)
		}
	}
	stopA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
	if err := other.SetSetting(ctx, "k", "2"); err != nil {
		t.Fatal(err)
	}
	expectChange(t, b, storage.ChangedModeration)
	stopB()
	if err := <-doneB; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for listening() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the listening connection is still open after the last Watch returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

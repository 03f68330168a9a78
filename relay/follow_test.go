package relay_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// relayAt runs a relay over the database at path, which another relay may
// share (as wisp import shares wisp serve's).
func relayAt(t *testing.T, path string, follow time.Duration) *testRelay {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return serveOver(t, store, store, follow)
}

// serveOver runs a relay over store, whose engine is db, until t ends,
// then closes db.
func serveOver(t *testing.T, db *sqlite.Store, store storage.Store, follow time.Duration) *testRelay {
	t.Helper()
	return serveWith(t, db, store, relay.Config{Limits: relay.DefaultLimits(), FollowStore: follow})
}

// serveWith is serveOver with the whole configuration.
func serveWith(t *testing.T, db *sqlite.Store, store storage.Store, cfg relay.Config) *testRelay {
	t.Helper()
	r := relay.New(cfg, store)
	r.Start()
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		db.Close()
	})
	return &testRelay{relay: r, store: db, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// While this relay and another pipeline on the same database store events
// at the same time, a live subscriber of this relay gets every event once:
// the other's through the follower, its own from its writer only.
func TestFollowerSendsOthersEventsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	here := relayAt(t, path, 2*time.Millisecond)
	there := relayAt(t, path, 0)
	sub := dial(t, here.url)
	sub.req("live", nostr.Filter{Kinds: []int{1}})

	k := newKey(t)
	const n = 300
	var mine, theirs []*nostr.Event
	base := now()
	for i := range n {
		mine = append(mine, k.sign(t, 1, base-int64(i), fmt.Sprint("here ", i)))
		theirs = append(theirs, k.sign(t, 1, base-int64(i), fmt.Sprint("there ", i)))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused []string
	ingest := func(rl *relay.Relay, evs []*nostr.Event) {
		for _, ev := range evs {
			wg.Add(1)
			rl.Ingest(context.Background(), ev, relay.IngestOptions{Source: wisp.SourceImport}, func(r relay.IngestResult) {
				defer wg.Done()
				if r.Outcome != relay.IngestStored {
					mu.Lock()
					refused = append(refused, r.Reason)
					mu.Unlock()
				}
			})
		}
	}
	var feeders sync.WaitGroup
	feeders.Go(func() { ingest(here.relay, mine) })
	feeders.Go(func() { ingest(there.relay, theirs) })
	feeders.Wait()
	wg.Wait()
	if len(refused) > 0 {
		t.Fatalf("%d events not stored: %v", len(refused), refused[0])
	}
	// Stored after everything else: once it arrives, the follower has
	// passed every other event.
	last := k.sign(t, 1, now(), "last")
	ingest(there.relay, []*nostr.Event{last})
	wg.Wait()

	seen := map[string]int{}
	for seen[last.ID] == 0 {
		seen[sub.expectEvent("live").ID]++
	}
	for _, evs := range [][]*nostr.Event{mine, theirs} {
		for _, ev := range evs {
			if seen[ev.ID] != 1 {
				t.Errorf("event %q arrived %d times, want once", ev.Content, seen[ev.ID])
			}
		}
	}
}

// gate stops the writer at one point, once held, until released.
type gate struct {
	held    atomic.Bool
	entered chan struct{} // a held writer has reached the gate
	release chan struct{} // closed: held writers go on
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gate) pass() {
	if g.held.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
}

// heldStore is a real store whose Saves wait, once held, until released:
// the relay's writer stands inside Save as it does while PostgreSQL makes
// it queue behind other nodes for the write lock.
type heldStore struct {
	*sqlite.Store
	*gate
}

func (s *heldStore) Save(ctx context.Context, items []storage.Item) ([]storage.Result, error) {
	s.pass()
	return s.Store.Save(ctx, items)
}

// While this relay's writer is inside a Save, an event another process
// stores reaches this relay's subscribers at once: the follower does not
// wait for the Save unless the Save holds the same event. An event both
// store is delivered once, whichever stored it.
func TestFollowerDoesNotWaitForTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &heldStore{Store: db, gate: newGate()}
	here := serveOver(t, db, store, 5*time.Millisecond).url
	released := false
	t.Cleanup(func() { // before the relay's shutdown: cleanups run last first
		if !released {
			close(store.release)
		}
	})
	there := relayAt(t, path, 0)

	sub := dial(t, here)
	sub.req("live", nostr.Filter{Kinds: []int{1}})
	k := newKey(t)
	mine := k.sign(t, 1, now(), "held in this relay's Save")
	both := k.sign(t, 1, now(), "sent to both relays")
	theirs := k.sign(t, 1, now(), "stored by the other relay")

	store.held.Store(true)
	pub := dial(t, here)
	pub.send("EVENT", mine)
	<-store.entered // the writer is inside Save with mine
	store.held.Store(false)
	pub.send("EVENT", both) // waits behind mine, in the next batch

	other := dial(t, there.url)
	other.mustPublish(both)
	other.mustPublish(theirs)
	// both: the next held batch may or may not hold it yet, so it may
	// wait; theirs comes after it and cannot be this relay's.
	got := map[string]int{}
	for got[theirs.ID] == 0 {
		ev := sub.expectEvent("live")
		if ev.ID == mine.ID {
			t.Fatalf("%q arrived before its Save returned", ev.Content)
		}
		got[ev.ID]++
	}
	close(store.release)
	released = true
	for range 2 {
		if ok := pub.expectOK(); !ok.ok {
			t.Errorf("OK %s false: %s", ok.id, ok.msg)
		}
	}
	for got[mine.ID] == 0 || got[both.ID] == 0 {
		got[sub.expectEvent("live").ID]++
	}
	sub.quiet(200 * time.Millisecond)
	for _, ev := range []*nostr.Event{mine, both, theirs} {
		if got[ev.ID] != 1 {
			t.Errorf("%q arrived %d times, want once", ev.Content, got[ev.ID])
		}
	}
}

// slowCommit is a Keeper that lets every event through and, once held,
// waits in Commit until released: the writer then stands between a
// committed Save and its broadcasts.
type slowCommit struct{ *gate }

func (g *slowCommit) Judge(context.Context, *wisp.Input) wisp.Decision { return wisp.Decision{} }
func (g *slowCommit) Begin() wisp.KeeperBatch                          { return slowBatch{g} }
func (g *slowCommit) ReadRefusal([]nostr.Filter, wisp.Pubkeys) string  { return "" }
func (g *slowCommit) Hidden([]nostr.Filter, wisp.Pubkeys) []nostr.Filter {
	return nil
}
func (g *slowCommit) VisibleRaw([]byte, wisp.Pubkeys) bool                { return true }
func (g *slowCommit) LiveVisibility(*nostr.Event) func(wisp.Pubkeys) bool { return nil }
func (g *slowCommit) NIP11() any                                          { return nil }
func (g *slowCommit) Limits() []wisp.LimitRow                             { return nil }

type slowBatch struct{ g *slowCommit }

func (b slowBatch) Stage(*wisp.Input) (wisp.Decision, []*nostr.Event) { return wisp.Decision{}, nil }
func (b slowBatch) Extra() []*nostr.Event                             { return nil }
func (b slowBatch) Abort()                                            {}
func (b slowBatch) Commit(context.Context)                            { b.g.pass() }

// An event this relay stored reaches its subscribers before one another
// process stored after it, however long this relay's writer takes between
// its Save and the broadcasts: commit order holds on every node.
func TestFollowerKeepsCommitOrderBehindTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &slowCommit{newGate()}
	here := serveWith(t, store, store, relay.Config{Limits: relay.DefaultLimits(), FollowStore: 2 * time.Millisecond, Groups: g})
	there := relayAt(t, path, 0)
	sub := dial(t, here.url)
	sub.req("live", nostr.Filter{Kinds: []int{1}})

	k := newKey(t)
	mine := k.sign(t, 1, now(), "here")
	g.held.Store(true)
	here.relay.Ingest(context.Background(), mine, relay.IngestOptions{Source: wisp.SourceImport}, func(relay.IngestResult) {})
	<-g.entered // stored; the writer waits before broadcasting it
	g.held.Store(false)

	theirs := k.sign(t, 1, now(), "there")
	stored := make(chan relay.IngestResult, 1)
	there.relay.Ingest(context.Background(), theirs, relay.IngestOptions{Source: wisp.SourceImport}, func(r relay.IngestResult) { stored <- r })
	if r := <-stored; r.Outcome != relay.IngestStored {
		t.Fatalf("the other process did not store its event: %v", r.Reason)
	}
	// Rounds of the follower pass (every 2 ms) while the writer waits.
	time.Sleep(200 * time.Millisecond)
	close(g.release)

	for i, want := range []*nostr.Event{mine, theirs} {
		if got := sub.expectEvent("live"); got.ID != want.ID {
			t.Fatalf("live event %d is %q, want %q", i, got.Content, want.Content)
		}
	}
}

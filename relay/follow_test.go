package relay_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/relay"
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
	r := relay.New(relay.Config{Limits: relay.DefaultLimits(), FollowStore: follow}, store)
	r.Start()
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		store.Close()
	})
	return &testRelay{relay: r, store: store, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
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

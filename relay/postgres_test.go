package relay_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/pgtest"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/postgres"
)

// pg is a PostgreSQL server for the tests that need one, started by the
// first of them.
var pg = pgtest.Lazy()

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// pgRelay runs a relay over the PostgreSQL database at url, which other
// relays share, as wisp serve nodes do. Its follower's ticker is an hour:
// what crosses from another node does so because the store's Watch woke it.
func pgRelay(t *testing.T, url string) string {
	t.Helper()
	store, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := relay.New(relay.Config{Limits: relay.DefaultLimits(), FollowStore: time.Hour}, store)
	r.Start()
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// Two nodes on one database, both taking events at once: a live
// subscriber on either gets every event exactly once, the other node's
// through its follower and its own node's from the writer only.
func TestNodesShareLiveEvents(t *testing.T) {
	url := pg.Database(t)
	urls := []string{pgRelay(t, url), pgRelay(t, url)}
	var subs []*client
	for _, u := range urls {
		c := dial(t, u)
		c.req("live", nostr.Filter{Kinds: []int{1}})
		subs = append(subs, c)
	}

	k := newKey(t)
	const n = 40
	var all []*nostr.Event
	var wg sync.WaitGroup
	for node, u := range urls {
		var evs []*nostr.Event
		for i := range n {
			evs = append(evs, k.sign(t, 1, now()-int64(i), fmt.Sprint("node ", node, " event ", i)))
		}
		all = append(all, evs...)
		pub := dial(t, u)
		wg.Go(func() {
			for _, ev := range evs {
				pub.mustPublish(ev)
			}
		})
	}
	wg.Wait()
	// Stored after everything else, one on each node: once a subscriber
	// has the other node's, it has every event of that node (its follower
	// goes in commit order), and its own node's came from the writer.
	var marks []*nostr.Event
	for node, u := range urls {
		mark := k.sign(t, 1, now(), fmt.Sprint("last of node ", node))
		dial(t, u).mustPublish(mark)
		marks = append(marks, mark)
	}
	all = append(all, marks...)

	for node, sub := range subs {
		seen := map[string]int{}
		for seen[marks[0].ID] == 0 || seen[marks[1].ID] == 0 {
			seen[sub.expectEvent("live").ID]++
		}
		for _, ev := range all {
			if seen[ev.ID] != 1 {
				t.Errorf("subscriber on node %d: %q arrived %d times, want once", node, ev.Content, seen[ev.ID])
			}
		}
	}
}

// The listening connections killed (pg_terminate_backend) while events are
// stored: once the nodes listen again they catch up from where they were,
// so a subscriber still gets every event, once.
func TestNodesCatchUpAfterLostListener(t *testing.T) {
	url := pg.Database(t)
	a, b := pgRelay(t, url), pgRelay(t, url)
	sub := dial(t, b)
	sub.req("live", nostr.Filter{Kinds: []int{1}})
	pub := dial(t, a)
	k := newKey(t)
	before := k.sign(t, 1, now(), "before")
	pub.mustPublish(before)
	if got := sub.expectEvent("live"); got.ID != before.ID {
		t.Fatalf("got %q, want %q", got.Content, before.Content)
	}

	pg.KillListeners(t, url, 2) // both nodes'
	var want []*nostr.Event
	for i := range 5 {
		ev := k.sign(t, 1, now(), fmt.Sprint("after ", i))
		pub.mustPublish(ev)
		want = append(want, ev)
	}
	seen := map[string]int{}
	for seen[want[len(want)-1].ID] == 0 {
		seen[sub.expectEvent("live").ID]++
	}
	for _, ev := range want {
		if seen[ev.ID] != 1 {
			t.Errorf("%q arrived %d times, want once", ev.Content, seen[ev.ID])
		}
	}
	if seen[before.ID] != 0 {
		t.Errorf("%q, sent before the listeners were killed, came again", before.Content)
	}
}

package relay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// An event with several expiration tags expires at the earliest, wherever
// it comes in the list (NIP-40, storage.Expiration): once it has passed,
// REQ and COUNT no longer serve the event, before any sweep, and the sweep
// deletes it.
func TestSeveralExpirationTagsEarliestWins(t *testing.T) {
	held := startRelayOpts(t, sqlite.Options{Upkeep: storage.Upkeep{Sweep: time.Hour}})
	swept := startRelayOpts(t, sqlite.Options{Upkeep: storage.Upkeep{Sweep: 20 * time.Millisecond}})
	k := newKey(t)
	created := now()
	expires := created + 2
	ev := k.sign(t, 1, created, "gone in two seconds, not in a day",
		nostr.Tag{"expiration", fmt.Sprint(created + 86400)}, nostr.Tag{"expiration", fmt.Sprint(expires)})

	hc, sc := dial(t, held.url), dial(t, swept.url)
	live := hc.req("live", nostr.Filter{Authors: []string{k.pk}})
	if len(live) != 0 {
		t.Fatalf("stored events before publishing: %v", ids(live))
	}
	hc.mustPublish(ev)
	// Not expired yet: delivered live and served from storage.
	if got := hc.expectEvent("live"); got.ID != ev.ID {
		t.Fatalf("live event %s, want %s", got.ID, ev.ID)
	}
	hc.send("CLOSE", "live")
	if got := hc.query("before", nostr.Filter{IDs: []string{ev.ID}}); len(got) != 1 {
		t.Fatalf("served before its expiration: %v", ids(got))
	}
	sc.mustPublish(ev)

	eventually(t, "the earliest expiration to pass", func() bool { return now() > expires })

	for _, f := range []nostr.Filter{{IDs: []string{ev.ID}}, {Authors: []string{k.pk}}, {Kinds: []int{1}}} {
		if got := hc.query("after", f); len(got) != 0 {
			t.Errorf("REQ %v serves the expired event: %v", f, ids(got))
		}
		if res, closed := hc.count("n", f); closed != "" || res.Count != 0 {
			t.Errorf("COUNT %v = %d (closed %q), want 0", f, res.Count, closed)
		}
	}
	// The queries hid it by themselves: the sweep of this relay has not run.
	if has, err := held.store.Has(t.Context(), ev.ID); err != nil || !has {
		t.Fatalf("held relay: stored %v, %v; want still stored until its sweep", has, err)
	}
	eventually(t, "the sweep to delete the event", func() bool {
		has, err := swept.store.Has(t.Context(), ev.ID)
		return err == nil && !has
	})
}

//go:build !race

// go-nostr's client races with itself when a connection ends (its reader
// goroutine and Close both touch Relay.Connection), so this file is left
// out of -race runs; .ci/run runs it once more without -race.

package relay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

func TestGoNostrClient(t *testing.T) {
	tr := startRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := goNostrConnect(t, tr.url)
	k := newKey(t)
	ev := k.sign(t, 1, now(), "via go-nostr", nostr.Tag{"p", k.pk})
	if err := rl.Publish(ctx, *ev); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got, err := rl.QuerySync(ctx, nostr.Filter{Tags: nostr.TagMap{"p": {k.pk}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != ev.ID {
		t.Fatalf("QuerySync: %v", got)
	}
	sub, err := rl.Subscribe(ctx, nostr.Filters{{Kinds: []int{1}, Since: ptr(nostr.Timestamp(now()))}})
	if err != nil {
		t.Fatal(err)
	}
	// go-nostr hands stored events on sub.Events before it closes
	// EndOfStoredEvents, so drain them while waiting.
eose:
	for {
		select {
		case <-sub.Events:
		case <-sub.EndOfStoredEvents:
			break eose
		case <-ctx.Done():
			t.Fatal("no EOSE")
		}
	}
	live := k.sign(t, 1, now(), "live via go-nostr")
	if err := rl.Publish(ctx, *live); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.Events:
		if e.ID != live.ID {
			t.Fatalf("live %s, want %s", e.ID, live.ID)
		}
	case <-ctx.Done():
		t.Fatal("no live event")
	}
	// A bad signature comes back as an error from Publish.
	bad := k.sign(t, 1, now(), "bad")
	bad.Sig = strings.Repeat("0", 128)
	if err := rl.Publish(ctx, *bad); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("bad signature publish: %v", err)
	}
}

// goNostrConnect connects go-nostr's client to url for the rest of the test.
// The connection ends by cancelling its context, not with Relay.Close, which
// races with go-nostr's own connection goroutine.
func goNostrConnect(t *testing.T, url string) *nostr.Relay {
	t.Helper()
	connCtx, disconnect := context.WithCancel(context.Background())
	t.Cleanup(disconnect)
	rl, err := nostr.RelayConnect(connCtx, url)
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

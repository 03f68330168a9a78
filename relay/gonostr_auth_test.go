//go:build !race

// go-nostr's client races with itself when a connection ends, so these
// tests are left out of -race runs like gonostr_test.go; .ci/run runs every
// TestGoNostr* once more without -race.

package relay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
)

// NIP-42 with go-nostr's client: writes need AUTH; the client answers the
// challenge the relay sent at connect, then publishes and reads its gift
// wraps.
func TestGoNostrAuthFlow(t *testing.T) {
	member := newKey(t)
	tr := startPolicyRelay(t, policy.Config{Auth: wisp.AuthWrite}, policy.NewLists([]string{member.pk}, nil, nil, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := goNostrConnect(t, tr.url)

	note := member.sign(t, 1, now(), "hello after auth")
	if err := rl.Publish(ctx, *note); err == nil || !strings.Contains(err.Error(), "auth-required") {
		t.Fatalf("publish before AUTH: %v, want auth-required", err)
	}
	if err := rl.Auth(ctx, func(ev *nostr.Event) error { return ev.Sign(member.sk) }); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := rl.Publish(ctx, *note); err != nil {
		t.Fatalf("publish after AUTH: %v", err)
	}

	wrap := newKey(t).sign(t, nostr.KindGiftWrap, now()-60, "sealed", nostr.Tag{"p", member.pk})
	if err := rl.Publish(ctx, *wrap); err != nil {
		t.Fatalf("publish gift wrap: %v", err)
	}
	got, err := rl.QuerySync(ctx, nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {member.pk}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != wrap.ID {
		t.Fatalf("gift wraps: %v", got)
	}
}

// A second go-nostr client, not authenticated, gets no gift wraps.
func TestGoNostrGiftWrapHidden(t *testing.T) {
	tr := startRelay(t)
	bob := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := goNostrConnect(t, tr.url)
	wrap := newKey(t).sign(t, nostr.KindGiftWrap, now()-60, "sealed", nostr.Tag{"p", bob.pk})
	if err := rl.Publish(ctx, *wrap); err != nil {
		t.Fatal(err)
	}
	got, err := rl.QuerySync(ctx, nostr.Filter{Tags: nostr.TagMap{"p": {bob.pk}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("unauthenticated client got %v", got)
	}
	// Once authenticated as bob (the challenge came with auth-required),
	// the same client sees it.
	sub, err := rl.Subscribe(ctx, nostr.Filters{{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {bob.pk}}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-sub.ClosedReason:
		if !strings.HasPrefix(reason, "auth-required:") {
			t.Fatalf("CLOSED %q", reason)
		}
	case <-ctx.Done():
		t.Fatal("no CLOSED")
	}
	if err := rl.Auth(ctx, func(ev *nostr.Event) error { return ev.Sign(bob.sk) }); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	got, err = rl.QuerySync(ctx, nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {bob.pk}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != wrap.ID {
		t.Fatalf("bob got %v", got)
	}
}

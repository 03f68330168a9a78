// go-nostr's Relay races with itself when a connection ends (its reader
// goroutine's close reads the connection its writer goroutine clears), so
// the race detector would flag the library, not wisp: this file is left
// out of -race builds.

//go:build !race

package groups_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip29"
	"github.com/wisp-relay/wisp/groups"
)

// A client built on go-nostr's relay and nip29 packages creates a group,
// lets a friend in by invite, and reads the group back as nip29.Group from
// the state the relay publishes.
func TestGroupThroughGoNostr(t *testing.T) {
	tr := startRelay(t, groups.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, bob := newKey(t), newKey(t)
	// A connection ends by cancelling its context, not with Relay.Close,
	// which races with go-nostr's own connection goroutine.
	connect := func() *nostr.Relay {
		connCtx, disconnect := context.WithCancel(context.Background())
		t.Cleanup(disconnect)
		r, err := nostr.RelayConnect(connCtx, tr.url)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	publish := func(r *nostr.Relay, k key, kind int, tags ...nostr.Tag) error {
		ev := nostr.Event{Kind: kind, CreatedAt: nostr.Now(), Tags: nostr.Tags(tags), Content: "via go-nostr"}
		if err := ev.Sign(k.SK); err != nil {
			t.Fatal(err)
		}
		return r.Publish(ctx, ev)
	}
	ra := connect()
	rb := ra // one connection, as a client app holds one per relay

	steps := []struct {
		r    *nostr.Relay
		k    key
		kind int
		tags []nostr.Tag
	}{
		{ra, alice, nostr.KindSimpleGroupCreateGroup, []nostr.Tag{h("club")}},
		{ra, alice, nostr.KindSimpleGroupEditMetadata, []nostr.Tag{h("club"), {"name", "The Club"}, {"about", "members only"}, {"closed"}}},
		{ra, alice, nostr.KindSimpleGroupCreateInvite, []nostr.Tag{h("club"), {"code", "friend-of-alice"}}},
		{rb, bob, nostr.KindSimpleGroupJoinRequest, []nostr.Tag{h("club"), {"code", "friend-of-alice"}}},
		{rb, bob, nostr.KindSimpleGroupChatMessage, []nostr.Tag{h("club")}},
	}
	for _, s := range steps {
		if err := publish(s.r, s.k, s.kind, s.tags...); err != nil {
			t.Fatalf("kind %d: %v", s.kind, err)
		}
	}
	if err := publish(rb, bob, nostr.KindSimpleGroupEditMetadata, h("club"), nostr.Tag{"name", "Bob's"}); err == nil ||
		!strings.Contains(err.Error(), "restricted:") {
		t.Fatalf("bob's edit: %v, want restricted", err)
	}

	state := func(kind int) *nostr.Event {
		evs, err := rb.QuerySync(ctx, nostr.Filter{Kinds: []int{kind}, Authors: []string{tr.pk}, Tags: nostr.TagMap{"d": {"club"}}})
		if err != nil || len(evs) != 1 {
			t.Fatalf("kind %d: %d events, %v", kind, len(evs), err)
		}
		if ok, err := evs[0].CheckSignature(); !ok || err != nil {
			t.Fatalf("kind %d: bad signature", kind)
		}
		return evs[0]
	}
	g, err := nip29.NewGroupFromMetadataEvent(tr.url, state(nostr.KindSimpleGroupMetadata))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.MergeInAdminsEvent(state(nostr.KindSimpleGroupAdmins)); err != nil {
		t.Fatal(err)
	}
	if err := g.MergeInMembersEvent(state(nostr.KindSimpleGroupMembers)); err != nil {
		t.Fatal(err)
	}
	if g.Name != "The Club" || g.About != "members only" || !g.Closed || g.Private {
		t.Fatalf("group %s", g)
	}
	if len(g.Members) != 2 || len(g.Members[bob.PK]) != 0 || len(g.Members[alice.PK]) != 1 || g.Members[alice.PK][0].Name != "admin" {
		t.Fatalf("members %s", g)
	}
	msgs, err := ra.QuerySync(ctx, nostr.Filter{Kinds: []int{nostr.KindSimpleGroupChatMessage}, Tags: nostr.TagMap{"h": {"club"}}})
	if err != nil || len(msgs) != 1 || msgs[0].PubKey != bob.PK {
		t.Fatalf("chat: %v %v", msgs, err)
	}
	if !slices.ContainsFunc(msgs[0].Tags, func(tag nostr.Tag) bool { return slices.Equal(tag, nostr.Tag{"h", "club"}) }) {
		t.Fatal("chat message lost its h tag")
	}
}

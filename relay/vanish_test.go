package relay_test

import (
	"context"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
)

// NIP-62: a request to vanish naming this relay deletes every event of the
// pubkey up to its created_at, kind 5 included, and the gift wraps p-tagging
// it; none can be stored again. Other pubkeys keep theirs.
func TestRequestToVanish(t *testing.T) {
	for _, target := range []string{"this relay", "ALL_RELAYS"} {
		t.Run(target, func(t *testing.T) {
			tr := startRelay(t)
			c := dial(t, tr.url)
			alice, bob, wrapper := newKey(t), newKey(t), newKey(t)
			t0 := now() - 100
			note := alice.sign(t, 1, t0, "note")
			profile := alice.sign(t, 0, t0, "{}")
			deletion := alice.sign(t, 5, t0+1, "", nostr.Tag{"e", note.ID})
			list := alice.sign(t, 30000, t0, "", nostr.Tag{"d", "friends"})
			wrapToAlice := wrapper.sign(t, nostr.KindGiftWrap, t0, "sealed", nostr.Tag{"p", alice.pk})
			wrapToBob := wrapper.sign(t, nostr.KindGiftWrap, t0, "sealed", nostr.Tag{"p", bob.pk})
			bobs := bob.sign(t, 1, t0, "bob stays", nostr.Tag{"p", alice.pk})
			for _, ev := range []*nostr.Event{note, profile, deletion, list, wrapToAlice, wrapToBob, bobs} {
				c.publish(ev) // note is refused after its deletion; that is fine
			}

			relayTag := tr.url
			if target == "ALL_RELAYS" {
				relayTag = "ALL_RELAYS"
			}
			vanish := alice.sign(t, 62, now(), "please forget me", nostr.Tag{"relay", relayTag})
			c.mustPublish(vanish)

			if got := c.query("a", nostr.Filter{Authors: []string{alice.pk}}); len(got) != 1 || got[0].ID != vanish.ID {
				t.Fatalf("alice's events after vanishing: %v, want only the request", ids(got))
			}
			for _, ev := range []*nostr.Event{bobs, wrapToBob} {
				if have, err := tr.store.Has(context.Background(), ev.ID); err != nil || !have {
					t.Fatalf("%s (kind %d) of someone else is gone: %v", ev.ID, ev.Kind, err)
				}
			}
			if have, _ := tr.store.Has(context.Background(), wrapToAlice.ID); have {
				t.Fatal("a gift wrap to alice survived")
			}
			// Nothing from before comes back, whoever sends it.
			for _, ev := range []*nostr.Event{profile, list, wrapToAlice, alice.sign(t, 1, t0+50, "backdated")} {
				wantRefused(t, c.publish(ev), "blocked")
			}
			// Newer events are welcome.
			c.mustPublish(alice.sign(t, 1, now()+1, "a fresh start"))
			// Sending the request again is harmless.
			if res := c.publish(vanish); !res.ok {
				t.Fatalf("repeated request: %+v", res)
			}
		})
	}
}

func TestRequestToVanishForAnotherRelay(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	alice := newKey(t)
	note := alice.sign(t, 1, now()-10, "keep me")
	c.mustPublish(note)
	wantRefused(t, c.publish(alice.sign(t, 62, now(), "", nostr.Tag{"relay", "wss://other.example.com"})), "blocked")
	wantRefused(t, c.publish(alice.sign(t, 62, now(), "no relay tag")), "blocked")
	if got := c.query("q", nostr.Filter{IDs: []string{note.ID}}); len(got) != 1 {
		t.Fatal("a request for another relay deleted events here")
	}
}

// A request to vanish is honoured whatever the user's status: not a
// member, banned, without AUTH on a relay that wants it.
func TestRequestToVanishBypassesRestrictions(t *testing.T) {
	alice := newKey(t)
	tr := startPolicyRelay(t, policy.Config{Auth: wisp.AuthWrite, MinPoW: 30}, policy.NewLists(nil, []string{alice.pk}, nil, nil))
	c := dial(t, tr.url)
	c.expectChallenge()
	c.mustPublish(alice.sign(t, 62, now(), "", nostr.Tag{"relay", tr.url}))
	wantRefused(t, c.publish(alice.sign(t, 1, now(), "not this")), "blocked")
}

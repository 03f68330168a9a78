package storagetest

import (
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// testVanish: a kind 62 (NIP-62) deletes every event of its pubkey up to
// its created_at, kind 5 included, and every gift wrap p-tagging it; none
// of them is stored again, in the same batch or later. Earlier requests
// stay, so a repeated one is a duplicate.
func testVanish(t *testing.T, f *fixture) {
	alice, bob, w := newKey(t), newKey(t), newKey(t)
	t0 := time.Now().Unix() - 1000
	note := event(t, alice, 1, t0, nil, "note")
	del := event(t, alice, 5, t0+1, nostr.Tags{{"e", bob.pk}}, "")
	list := event(t, alice, 30000, t0, nostr.Tags{{"d", "x"}}, "")
	wrap := event(t, w, 1059, t0, nostr.Tags{{"p", alice.pk}}, "sealed")
	bobs := event(t, bob, 1, t0, nostr.Tags{{"p", alice.pk}}, "bob's")
	wrapToBob := event(t, w, 1059, t0, nostr.Tags{{"p", bob.pk}}, "sealed")
	f.save([]storage.Item{note, del, list, wrap, bobs, wrapToBob})

	vanish := event(t, alice, 62, t0+100, nostr.Tags{{"relay", "ALL_RELAYS"}}, "")
	sameBatchOld := event(t, alice, 1, t0+50, nil, "after the request, older than it")
	sameBatchWrap := event(t, w, 1059, t0+60, nostr.Tags{{"p", alice.pk}}, "sealed")
	newer := event(t, alice, 1, t0+200, nil, "newer")
	f.save([]storage.Item{vanish, sameBatchOld, sameBatchWrap, newer},
		storage.Stored, storage.Deleted, storage.Deleted, storage.Stored)

	for _, it := range []storage.Item{note, del, list, wrap} {
		if f.has(it.Event.ID) {
			t.Errorf("kind %d of the vanished pubkey still stored", it.Event.Kind)
		}
	}
	for _, it := range []storage.Item{bobs, wrapToBob, vanish, newer} {
		if !f.has(it.Event.ID) {
			t.Errorf("kind %d %q is gone", it.Event.Kind, it.Event.Content)
		}
	}
	f.save([]storage.Item{note, list, wrap}, storage.Deleted, storage.Deleted, storage.Deleted)
	f.saveOne(vanish, storage.Duplicate)
}

// testVanishRemembered: a store opened again still refuses what a request
// to vanish covered, and the request is a duplicate.
func testVanishRemembered(t *testing.T, f *fixture) {
	alice, w := newKey(t), newKey(t)
	t0 := time.Now().Unix() - 1000
	old := event(t, alice, 1, t0, nil, "old")
	wrap := event(t, w, 1059, t0, nostr.Tags{{"p", alice.pk}}, "sealed")
	vanish := event(t, alice, 62, t0+100, nostr.Tags{{"relay", "ALL_RELAYS"}}, "")
	before := event(t, alice, 1, t0+2, nil, "same batch, before the request")
	f.save([]storage.Item{old, wrap})
	f.save([]storage.Item{before, vanish}, storage.Stored, storage.Stored)
	if f.has(before.Event.ID) {
		t.Error("an event before the request in its batch survived it")
	}
	f.reopen(Options{})
	f.save([]storage.Item{old, wrap, before, event(t, alice, 1, t0+99, nil, "backdated"), vanish},
		storage.Deleted, storage.Deleted, storage.Deleted, storage.Deleted, storage.Duplicate)
	f.saveOne(event(t, alice, 1, t0+101, nil, "after"), storage.Stored)
}

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// The results of a query read in pages are those of its first snapshot:
// an event stored while it runs is not among them (the relay sends it
// live, as its seq is above the watermark), one deleted before its page is
// read is left out, and no connection is held while the caller waits.
func TestPagesKeepTheFirstSnapshot(t *testing.T) {
	ctx := context.Background()
	alice, bob := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	for _, filters := range [][]nostr.Filter{
		{{Kinds: []int{1}, Limit: 100}},
		{{Kinds: []int{1}, Limit: 100}, {Authors: []string{pubkey(t, alice)}, Limit: 100}},
		{{Authors: []string{pubkey(t, bob)}}, {Authors: []string{pubkey(t, alice)}, Kinds: []int{1}}},
		{{Search: "note"}, {Authors: []string{pubkey(t, bob)}}},
	} {
		s := openTestStore(t, Options{PageBytes: 300, SearchKinds: []int{1}}) // about one event a page
		var all []storage.Item
		for i := range 20 {
			sk := alice
			if i%3 == 0 {
				sk = bob
			}
			all = append(all, signedItem(t, sk, 1, int64(1000+i/2), fmt.Sprint("note ", i))) // ties on created_at
		}
		if _, err := s.Save(ctx, all); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(all, func(a, b storage.Item) int { // newest first, then lowest id
			if a.Event.CreatedAt != b.Event.CreatedAt {
				return int(b.Event.CreatedAt - a.Event.CreatedAt)
			}
			return strings.Compare(a.Event.ID, b.Event.ID)
		})
		victim := all[15]
		victimKey := alice
		if victim.Event.PubKey == pubkey(t, bob) {
			victimKey = bob
		}
		later := signedItem(t, alice, 1, 900, "note stored during the query") // older than all: on a later page
		var got []string
		var held []int32
		wm, err := s.Query(ctx, filters, func(raw []byte) error {
			held = append(held, s.pool.Stat().AcquiredConns())
			if len(got) == 3 {
				if _, err := s.Save(ctx, []storage.Item{later, signedItem(t, victimKey, 5, 5001, "", nostr.Tag{"e", victim.Event.ID})}); err != nil {
					return err
				}
			}
			var ev nostr.Event
			err := json.Unmarshal(raw, &ev)
			got = append(got, ev.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, it := range all {
			if it.Event.ID != victim.Event.ID {
				want[it.Event.ID] = true
			}
		}
		if len(got) != len(want) || slices.ContainsFunc(got, func(id string) bool { return !want[id] }) {
			t.Errorf("%v: got %d events, want %d", filters, len(got), len(want))
		}
		if filters[0].Search == "" {
			var order []string
			for _, it := range all {
				if want[it.Event.ID] {
					order = append(order, it.Event.ID)
				}
			}
			if !slices.Equal(got, order) {
				t.Errorf("%v: not in order", filters)
			}
		}
		if res, err := s.Save(ctx, []storage.Item{later}); err != nil || res[0].Outcome != storage.Duplicate {
			t.Fatal("the later event was not stored")
		}
		var seq int64
		if err := s.pool.QueryRow(ctx, "SELECT seq FROM events WHERE id = decode($1, 'hex')", later.Event.ID).Scan(&seq); err != nil || wm >= seq {
			t.Errorf("watermark %d, want below the later event's seq %d (%v)", wm, seq, err)
		}
		if slices.ContainsFunc(held, func(n int32) bool { return n != 0 }) {
			t.Errorf("%v: connections held while the caller waited: %v", filters, held)
		}
	}
}

func pubkey(t *testing.T, sk string) string {
	t.Helper()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

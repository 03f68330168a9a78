package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

// With one event per page every query of the suite reads page after page,
// in several read transactions.
func TestConformanceOneEventPages(t *testing.T) {
	storagetest.Run(t, conformanceEngine(Options{ReadConns: 2, PageBytes: 1}))
}

// queryIDs runs a query and returns the ids handed on, calling during
// before each one.
func queryIDs(t *testing.T, s *Store, filters []nostr.Filter, during func(i int)) ([]string, int64) {
	t.Helper()
	var got []string
	wm, err := s.Query(context.Background(), filters, func(raw []byte) error {
		during(len(got))
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		got = append(got, ev.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return got, wm
}

// The results of a query read in pages are those of its first snapshot:
// an event stored while it runs is not among them (the relay sends it
// live, as its seq is above the watermark), and one deleted before its
// page is read is left out.
func TestPagesKeepTheFirstSnapshot(t *testing.T) {
	alice, bob := newTestKey(t), newTestKey(t)
	for _, filters := range [][]nostr.Filter{
		{{Kinds: []int{1}, Limit: 100}},
		{{Kinds: []int{1}, Limit: 100}, {Authors: []string{alice.pk}, Limit: 100}},
		{{Authors: []string{bob.pk}}, {Authors: []string{alice.pk}, Kinds: []int{1}}},
	} {
		s := openTestStoreWith(t, Options{ReadConns: 2, PageBytes: 300}) // about one event a page
		var all []*nostr.Event
		for i := range 20 {
			k := alice
			if i%3 == 0 {
				k = bob
			}
			all = append(all, k.event(t, 1, int64(1000+i/2), fmt.Sprint("note ", i))) // ties on created_at
		}
		saveAll(t, s, all...)
		slices.SortFunc(all, func(a, b *nostr.Event) int { // newest first, then lowest id
			if a.CreatedAt != b.CreatedAt {
				return int(b.CreatedAt - a.CreatedAt)
			}
			return strings.Compare(a.ID, b.ID)
		})
		victim := all[15]
		later := alice.event(t, 1, 5000, "stored during the query")
		got, wm := queryIDs(t, s, filters, func(i int) {
			if i == 3 {
				saveAll(t, s, later, authorOf(victim, alice, bob).event(t, 5, 5001, "", nostr.Tag{"e", victim.ID}))
			}
		})
		var want []string
		for _, ev := range all {
			if ev != victim {
				want = append(want, ev.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%v: got %d events %v\nwant %d %v", filters, len(got), got, len(want), want)
		}
		if seq := seqOf(t, s, later.ID); wm >= seq {
			t.Fatalf("watermark %d, want below the later event's seq %d", wm, seq)
		}
	}
}

func seqOf(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	var k [32]byte
	if !evkey.DecodeHex32(id, &k) {
		t.Fatalf("bad id %q", id)
	}
	var seq int64
	if err := s.r.QueryRowContext(context.Background(), "SELECT seq FROM events WHERE id = ?", k[:]).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// While the caller holds up a query between events, no read transaction
// is open, so a checkpoint can truncate the WAL.
func TestPagesHoldNoSnapshotWhileWaiting(t *testing.T) {
	s := openTestStoreWith(t, Options{ReadConns: 2, PageBytes: 300})
	k := newTestKey(t)
	for i := range 10 {
		saveAll(t, s, k.event(t, 1, int64(1000+i), fmt.Sprint("note ", i)))
	}
	var checkpointErr error
	queryIDs(t, s, []nostr.Filter{{Kinds: []int{1}}}, func(i int) {
		if i == 4 {
			saveAll(t, s, k.event(t, 1, 3000, "more WAL"))
			checkpointErr = s.Checkpoint(context.Background())
		}
	})
	if checkpointErr != nil {
		t.Fatalf("checkpoint while the query waited: %v", checkpointErr)
	}
}

func authorOf(ev *nostr.Event, keys ...testKey) testKey {
	for _, k := range keys {
		if k.pk == ev.PubKey {
			return k
		}
	}
	panic("no key for " + ev.PubKey)
}

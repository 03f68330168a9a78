package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// Retention removes the events of the kinds in range created before the
// cutoff, with their tags and search rows, and nothing else.
func TestDeleteOld(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), []int{1, 7})
	defer s.Close()
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	type ev struct {
		kind    int
		at      int64
		removed bool
	}
	evs := []ev{
		{1, 100, true}, {1, 199, true}, {1, 200, false}, {1, 300, false}, // cutoff 200: strictly before goes
		{7, 50, true}, {7, 250, false},
		{6, 50, true}, {6, 250, false}, // a kind inside the range
		{0, 50, false},     // replaceable, just outside
		{8, 50, false},     // just outside
		{10002, 10, false}, // replaceable, outside
		{30023, 10, false}, // addressable, outside
	}
	var batch []storage.Item
	for _, e := range evs {
		var tags []nostr.Tag
		if e.kind == 30023 {
			tags = append(tags, nostr.Tag{"d", "x"})
		}
		tags = append(tags, nostr.Tag{"t", "retention"})
		batch = append(batch, signed(t, sk, e.kind, e.at, "words to find", tags...))
	}
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteOld(ctx, 1, 7, 200)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	removed := 0
	for i, e := range evs {
		has, err := s.Has(ctx, batch[i].Event.ID)
		if err != nil {
			t.Fatal(err)
		}
		if has == e.removed {
			t.Errorf("kind %d at %d: stored %v, want %v", e.kind, e.at, has, !e.removed)
		}
		if e.removed {
			removed++
		} else {
			want = append(want, batch[i].Event.ID)
		}
	}
	if n != int64(removed) {
		t.Errorf("DeleteOld reported %d, removed %d", n, removed)
	}
	// Tags and search rows went with their events.
	f := searchFixture{t, s}
	var got []string
	for _, e := range f.events(nostr.Filter{Tags: nostr.TagMap{"t": {"retention"}}}) {
		got = append(got, e.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tag query after retention: %d events, want %d", len(got), len(want))
	}
	if got := f.events(nostr.Filter{Search: "words"}); len(got) != 3 {
		t.Errorf("search after retention: %d events, want 3", len(got))
	}
	if n, _, _ := s.Count(ctx, []nostr.Filter{{}}); n != int64(len(want)) {
		t.Errorf("count after retention %d, want %d", n, len(want))
	}
	// Nothing left to remove: a second pass removes nothing.
	if n, err := s.DeleteOld(ctx, 1, 7, 200); n != 0 || err != nil {
		t.Errorf("second pass: %d %v", n, err)
	}
}

// Large backlogs go in chunks, across several kinds.
func TestDeleteOldChunks(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	var batch []storage.Item
	for i := range 2*retentionChunk + 10 {
		batch = append(batch, signed(t, sk, 20+i%3, int64(i), "x"))
	}
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteOld(ctx, 0, 65535, time.Now().Unix())
	if err != nil || n != int64(len(batch)) {
		t.Fatalf("delete old: %d %v, want %d", n, err, len(batch))
	}
}

package storagetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// retainer is implemented by engines that apply retention rules
// (WISP_RETENTION): DeleteOld removes the events of kinds minKind to
// maxKind (inclusive) created before before, returning how many.
type retainer interface {
	DeleteOld(ctx context.Context, minKind, maxKind int, before int64) (int64, error)
}

func (f *fixture) retainer() retainer {
	f.t.Helper()
	r, ok := f.s.(retainer)
	if !ok {
		f.t.Skip("engine has no retention")
	}
	return r
}

// Retention removes the events of the kinds in range created before the
// cutoff, with their tags and search rows, and nothing else.
func testDeleteOld(t *testing.T, f *fixture) {
	r := f.retainer()
	ctx := context.Background()
	k := newKey(t)
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
		tags := nostr.Tags{{"t", "retention"}}
		if e.kind == 30023 {
			tags = append(tags, nostr.Tag{"d", "x"})
		}
		batch = append(batch, event(t, k, e.kind, e.at, tags, "words to find"))
	}
	f.save(batch)
	n, err := r.DeleteOld(ctx, 1, 7, 200)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	removed := 0
	for i, e := range evs {
		if has := f.has(batch[i].Event.ID); has == e.removed {
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
	if got := f.ids(nostr.Filter{Tags: nostr.TagMap{"t": {"retention"}}}); !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("tag query after retention: %d events, want %d", len(got), len(want))
	}
	if _, ok := f.s.(storage.Searcher); ok {
		f.twice(func(when string) {
			if got := f.contents(nostr.Filter{Search: "words"}); len(got) != 3 {
				t.Errorf("%s: search after retention: %d events, want 3", when, len(got))
			}
		})
	}
	if n := f.count(nostr.Filter{}); n != int64(len(want)) {
		t.Errorf("count after retention %d, want %d", n, len(want))
	}
	if n, err := r.DeleteOld(ctx, 1, 7, 200); n != 0 || err != nil {
		t.Errorf("second pass: %d %v", n, err)
	}
}

// Large backlogs go in chunks, across several kinds.
func testDeleteOldChunks(t *testing.T, f *fixture) {
	r := f.retainer()
	k := newKey(t)
	var batch []storage.Item
	for i := range 2010 {
		batch = append(batch, event(t, k, 20+i%3, int64(i), nil, "x"))
	}
	f.save(batch)
	n, err := r.DeleteOld(context.Background(), 0, 65535, time.Now().Unix())
	if err != nil || n != int64(len(batch)) {
		t.Fatalf("delete old: %d %v, want %d", n, err, len(batch))
	}
}

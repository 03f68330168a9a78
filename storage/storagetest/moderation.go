package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-86 moderation state (storage.Moderation) and moderation deletes
// (storage.Eraser).

func testModerationLists(t *testing.T, f *fixture) {
	m, ok := f.s.(storage.Moderation)
	if !ok {
		t.Skip("engine keeps no moderation state")
	}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.PutListEntry(ctx, "allowed", "a", "friend"))
	must(m.PutListEntry(ctx, "allowed", "b", ""))
	must(m.PutListEntry(ctx, "allowed", "B", "upper case sorts first"))
	// Moving a key between lists happens in one call.
	must(m.PutListEntry(ctx, "banned", "a", "spam", "allowed", "other"))
	must(m.PutListEntry(ctx, "banned", "a", "spam again"))
	if removed, err := m.DeleteListEntry(ctx, "allowed", "missing"); err != nil || removed {
		t.Fatalf("deleting a missing key: removed %v, %v; want false, nil", removed, err)
	}
	if removed, err := m.DeleteListEntry(ctx, "allowed", "B"); err != nil || !removed {
		t.Fatalf("deleting a key: removed %v, %v; want true, nil", removed, err)
	}
	must(m.SetSetting(ctx, "relay_name", "one"))
	must(m.SetSetting(ctx, "relay_name", "two"))
	must(m.SetSetting(ctx, "relay_description", ""))

	f.reopen(Options{}) // the state is in the database
	m = f.s.(storage.Moderation)
	allowed, err1 := m.ListEntries(ctx, "allowed")
	banned, err2 := m.ListEntries(ctx, "banned")
	empty, err3 := m.ListEntries(ctx, "nothing")
	must(err1)
	must(err2)
	must(err3)
	if !slices.Equal(allowed, []storage.ListEntry{{Key: "b"}}) || !slices.Equal(banned, []storage.ListEntry{{Key: "a", Reason: "spam again"}}) || empty == nil || len(empty) != 0 {
		t.Fatalf("allowed %v banned %v empty %#v", allowed, banned, empty)
	}
	must(m.PutListEntry(ctx, "order", "b", ""))
	must(m.PutListEntry(ctx, "order", "B", ""))
	must(m.PutListEntry(ctx, "order", "a", ""))
	must(m.PutListEntry(ctx, "order", "10", ""))
	must(m.PutListEntry(ctx, "order", "9", ""))
	order, err := m.ListEntries(ctx, "order")
	must(err)
	var keys []string
	for _, e := range order {
		keys = append(keys, e.Key)
	}
	if !slices.Equal(keys, []string{"10", "9", "B", "a", "b"}) { // by bytes
		t.Errorf("list order %q", keys)
	}
	settings, err := m.Settings(ctx)
	if err != nil || len(settings) != 2 || settings["relay_name"] != "two" || settings["relay_description"] != "" {
		t.Fatalf("settings %v %v", settings, err)
	}
}

// scanIDs returns the sorted ids Scan serves for f.
func scanIDs(t *testing.T, e storage.Eraser, f nostr.Filter) []string {
	t.Helper()
	var out []string
	err := e.Scan(context.Background(), []nostr.Filter{f}, func(raw []byte) error {
		var ev nostr.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		out = append(out, ev.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func testDeleteMatchingAndScan(t *testing.T, f *fixture) {
	e, ok := f.s.(storage.Eraser)
	if !ok {
		t.Skip("engine does not erase")
	}
	ctx := context.Background()
	a, b := newKey(t), newKey(t)
	base := time.Now().Unix() - 10000
	var aIDs []string
	var batch []storage.Item
	for i := range 2500 { // more than one delete chunk
		it := event(t, a, 1, base+int64(i), nostr.Tags{{"t", "x"}}, "a")
		batch = append(batch, it)
		aIDs = append(aIDs, it.Event.ID)
	}
	bNote := event(t, b, 1, base, nostr.Tags{{"t", "x"}}, "b")
	bReaction := event(t, b, 7, base, nil, "+")
	f.save(append(batch, bNote, bReaction))

	// Scan honours the limits it is given, and no others.
	if got := scanIDs(t, e, nostr.Filter{Authors: []string{a.pk}}); len(got) != 2500 {
		t.Fatalf("scan found %d of a's events", len(got))
	}
	n := 0
	err := e.Scan(ctx, []nostr.Filter{{Authors: []string{a.pk}, Limit: 10}, {Kinds: []int{7}}, {Authors: []string{b.pk}}}, func([]byte) error { n++; return nil })
	if err != nil || n != 12 {
		t.Fatalf("scan with a limit: %d events, %v; want 12, each once", n, err)
	}
	var newest []string
	if err := e.Scan(ctx, []nostr.Filter{{Authors: []string{a.pk}, Limit: 3}}, func(raw []byte) error {
		var ev nostr.Event
		err := json.Unmarshal(raw, &ev)
		newest = append(newest, ev.ID)
		return err
	}); err != nil || !slices.Equal(newest, []string{aIDs[2499], aIDs[2498], aIDs[2497]}) {
		t.Fatalf("scan is not newest first: %v", err)
	}
	stop := context.Canceled
	if err := e.Scan(ctx, []nostr.Filter{{}}, func([]byte) error { return stop }); err != stop {
		t.Errorf("scan returned %v, not its callback's error", err)
	}

	deleted, err := e.DeleteMatching(ctx, []nostr.Filter{{Authors: []string{a.pk}, Limit: 5}, {Kinds: []int{7}}})
	if err != nil || deleted != 2501 {
		t.Fatalf("deleted %d, %v; want 2501", deleted, err)
	}
	if got := scanIDs(t, e, nostr.Filter{}); !slices.Equal(got, []string{bNote.Event.ID}) {
		t.Fatalf("left %v, want only b's note", got)
	}
	// Their tags went too.
	if got := f.ids(nostr.Filter{Tags: nostr.TagMap{"t": {"x"}}}); len(got) != 1 {
		t.Fatalf("tag query finds %d", len(got))
	}
	if f.count(nostr.Filter{}) != 1 {
		t.Error("count after deleting")
	}
	if n, err := e.DeleteMatching(ctx, []nostr.Filter{{IDs: []string{aIDs[0]}}, {Kinds: []int{}}}); err != nil || n != 0 {
		t.Fatalf("deleting nothing: %d %v", n, err)
	}
}

// A search filter scans and deletes what Query (a REQ) finds for it, not
// nothing: wisp scan and wisp delete go by what a REQ shows.
func testSearchInScanAndDeleteMatching(t *testing.T, f *fixture) {
	e, ok := f.s.(storage.Eraser)
	if !ok {
		t.Skip("engine does not erase")
	}
	f.searcher()
	ctx := context.Background()
	k := newKey(t)
	base := time.Now().Unix() - 1000
	var batch []storage.Item
	for i := range 30 {
		content := "plain words"
		if i%3 == 0 {
			content = fmt.Sprintf("buy cheap pills now %d", i)
		}
		batch = append(batch, event(t, k, 1, base+int64(i), nil, content))
	}
	f.save(batch)
	search := []nostr.Filter{{Search: "cheap pills"}, {Search: "pills", Kinds: []int{1}}, {Kinds: []int{7}}}
	f.twice(func(when string) {
		want := sorted(f.ids(search...))
		if len(want) != 10 {
			t.Fatalf("%s: Query finds %d, want 10", when, len(want))
		}
		var scanned []string
		err := e.Scan(ctx, search, func(raw []byte) error {
			var ev nostr.Event
			err := json.Unmarshal(raw, &ev)
			scanned = append(scanned, ev.ID)
			return err
		})
		if err != nil || !slices.Equal(sorted(scanned), want) {
			t.Fatalf("%s: Scan found %d (%v), Query %d", when, len(scanned), err, len(want))
		}
	})
	deleted, err := e.DeleteMatching(ctx, search[:1])
	if err != nil || deleted != 10 {
		t.Fatalf("DeleteMatching by search deleted %d, %v; want 10", deleted, err)
	}
	if left := f.ids(nostr.Filter{}); len(left) != 20 {
		t.Fatalf("%d events left, want the 20 without the words", len(left))
	}
}

// Two stores on one database (two nodes) deleting the same entries at once:
// each entry is reported removed by exactly one of them, so a one-use entry
// such as an invite code is spent once.
func testTwoStoresTakeOneEntry(t *testing.T, f *fixture) {
	m, ok := f.s.(storage.Moderation)
	if !ok {
		t.Skip("engine keeps no moderation state")
	}
	other, _ := f.open(Options{}).(storage.Moderation)
	ctx := context.Background()
	const entries = 40
	for i := range entries {
		if err := m.PutListEntry(ctx, "invites", fmt.Sprint("code-", i), "one use"); err != nil {
			t.Fatal(err)
		}
	}
	var removed [2]atomic.Int64
	var wg sync.WaitGroup
	for w, s := range []storage.Moderation{m, other} {
		wg.Go(func() {
			for i := range entries {
				ok, err := s.DeleteListEntry(ctx, "invites", fmt.Sprint("code-", i))
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					removed[w].Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := removed[0].Load() + removed[1].Load(); got != entries {
		t.Fatalf("%d + %d entries reported removed by the two stores, want %d in all (each exactly once)",
			removed[0].Load(), removed[1].Load(), entries)
	}
	if left, err := m.ListEntries(ctx, "invites"); err != nil || len(left) != 0 {
		t.Fatalf("left after both deleted: %v %v", left, err)
	}
}

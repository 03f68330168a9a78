package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

type testKey struct{ sk, pk string }

func newTestKey(t testing.TB) testKey {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	return testKey{sk, pk}
}

func (k testKey) event(t testing.TB, kind int, created int64, content string, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(created), Content: content, Tags: nostr.Tags(tags)}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func saveAll(t testing.TB, s *Store, evs ...*nostr.Event) []storage.Result {
	t.Helper()
	items := make([]storage.Item, len(evs))
	for i, ev := range evs {
		raw, _ := json.Marshal(ev)
		items[i] = storage.Item{Event: ev, Raw: raw}
	}
	res, err := s.Save(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func storedIDs(t testing.TB, s *Store, f nostr.Filter) []string {
	t.Helper()
	var out []string
	err := s.Scan(context.Background(), []nostr.Filter{f}, func(raw []byte) error {
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

func TestModerationLists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutListEntry(ctx, "allowed", "a", "friend"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutListEntry(ctx, "allowed", "b", ""); err != nil {
		t.Fatal(err)
	}
	// Moving a key between lists happens in one call.
	if err := s.PutListEntry(ctx, "banned", "a", "spam", "allowed"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutListEntry(ctx, "banned", "a", "spam again"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteListEntry(ctx, "allowed", "missing"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "relay_name", "one"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "relay_name", "two"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allowed, _ := s.ListEntries(ctx, "allowed")
	banned, _ := s.ListEntries(ctx, "banned")
	empty, _ := s.ListEntries(ctx, "nothing")
	if !slices.Equal(allowed, []storage.ListEntry{{Key: "b"}}) || !slices.Equal(banned, []storage.ListEntry{{Key: "a", Reason: "spam again"}}) || empty == nil || len(empty) != 0 {
		t.Fatalf("allowed %v banned %v empty %#v", allowed, banned, empty)
	}
	settings, err := s.Settings(ctx)
	if err != nil || settings["relay_name"] != "two" {
		t.Fatalf("settings %v %v", settings, err)
	}
}

func TestDeleteMatchingAndScan(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	a, b := newTestKey(t), newTestKey(t)
	base := time.Now().Unix() - 10000
	var aIDs []string
	var evs []*nostr.Event
	for i := range 2500 { // more than one delete chunk
		ev := a.event(t, 1, base+int64(i), "a", nostr.Tag{"t", "x"})
		evs = append(evs, ev)
		aIDs = append(aIDs, ev.ID)
	}
	bNote := b.event(t, 1, base, "b", nostr.Tag{"t", "x"})
	bReaction := b.event(t, 7, base, "+")
	evs = append(evs, bNote, bReaction)
	saveAll(t, s, evs...)

	// Scan ignores no limit it is not given, and honours one it is.
	if got := storedIDs(t, s, nostr.Filter{Authors: []string{a.pk}}); len(got) != 2500 {
		t.Fatalf("scan found %d of a's events", len(got))
	}
	n := 0
	err := s.Scan(ctx, []nostr.Filter{{Authors: []string{a.pk}, Limit: 10}, {Kinds: []int{7}}}, func([]byte) error { n++; return nil })
	if err != nil || n != 11 {
		t.Fatalf("scan with a limit: %d events, %v", n, err)
	}

	deleted, err := s.DeleteMatching(ctx, []nostr.Filter{{Authors: []string{a.pk}}, {Kinds: []int{7}}})
	if err != nil || deleted != 2501 {
		t.Fatalf("deleted %d, %v; want 2501", deleted, err)
	}
	if got := storedIDs(t, s, nostr.Filter{}); !slices.Equal(got, []string{bNote.ID}) {
		t.Fatalf("left %v, want only b's note", got)
	}
	// Their tags went too.
	if got := storedIDs(t, s, nostr.Filter{Tags: nostr.TagMap{"t": {"x"}}}); len(got) != 1 {
		t.Fatalf("tag query finds %d", len(got))
	}
	if n, err := s.DeleteMatching(ctx, []nostr.Filter{{IDs: []string{aIDs[0]}}}); err != nil || n != 0 {
		t.Fatalf("deleting nothing: %d %v", n, err)
	}
}

// A search filter scans and deletes what Query (a REQ) finds for it, not
// nothing.
func TestSearchInScanAndDeleteMatching(t *testing.T) {
	s := openTestStoreWith(t, Options{ReadConns: 2, SearchKinds: []int{1}})
	ctx := context.Background()
	k := newTestKey(t)
	base := time.Now().Unix() - 1000
	var evs []*nostr.Event
	for i := range 30 {
		content := "plain words"
		if i%3 == 0 {
			content = fmt.Sprintf("buy cheap pills now %d", i)
		}
		evs = append(evs, k.event(t, 1, base+int64(i), content))
	}
	saveAll(t, s, evs...)
	search := []nostr.Filter{{Search: "cheap pills"}, {Search: "pills", Kinds: []int{1}}}
	want, _ := queryIDs(t, s, search, func(int) {})
	slices.Sort(want)
	if len(want) != 10 {
		t.Fatalf("Query finds %d, want 10", len(want))
	}
	var scanned []string
	err := s.Scan(ctx, search, func(raw []byte) error {
		var ev nostr.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		scanned = append(scanned, ev.ID)
		return nil
	})
	slices.Sort(scanned)
	if err != nil || !slices.Equal(scanned, want) {
		t.Fatalf("Scan found %v, %v; Query %v", scanned, err, want)
	}
	deleted, err := s.DeleteMatching(ctx, search[:1])
	if err != nil || deleted != 10 {
		t.Fatalf("DeleteMatching by search deleted %d, %v; want 10", deleted, err)
	}
	if got := storedIDs(t, s, nostr.Filter{}); len(got) != 20 {
		t.Fatalf("%d events left, want the 20 without the words", len(got))
	}
}

func TestVanishInStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, w := newTestKey(t), newTestKey(t), newTestKey(t)
	t0 := time.Now().Unix() - 1000
	old := alice.event(t, 1, t0, "old")
	del := alice.event(t, 5, t0+1, "", nostr.Tag{"e", old.ID})
	wrap := w.event(t, 1059, t0, "x", nostr.Tag{"p", alice.pk})
	bobs := bob.event(t, 1, t0, "bob")
	saveAll(t, s, old, del, wrap, bobs)

	// In one batch: an event before the request is deleted by it, one
	// after it is refused, one newer is stored.
	before := alice.event(t, 1, t0+2, "same batch, before")
	vanish := alice.event(t, 62, t0+100, "", nostr.Tag{"relay", "ALL_RELAYS"})
	after := alice.event(t, 3, t0+50, "same batch, after")
	newer := alice.event(t, 1, t0+200, "newer")
	wrapAfter := w.event(t, 1059, t0+60, "y", nostr.Tag{"p", alice.pk})
	res := saveAll(t, s, before, vanish, after, newer, wrapAfter)
	want := []storage.Outcome{storage.Stored, storage.Stored, storage.Deleted, storage.Stored, storage.Deleted}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("item %d: %v, want %v", i, r.Outcome, want[i])
		}
	}
	check := func(s *Store) {
		t.Helper()
		got := storedIDs(t, s, nostr.Filter{})
		wantIDs := []string{vanish.ID, newer.ID, bobs.ID}
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Fatalf("stored %v, want %v", got, wantIDs)
		}
		if r := saveAll(t, s, old, wrap, alice.event(t, 1, t0+99, "backdated")); r[0].Outcome != storage.Deleted || r[1].Outcome != storage.Deleted || r[2].Outcome != storage.Deleted {
			t.Fatalf("resent: %v", r)
		}
		if r := saveAll(t, s, vanish); r[0].Outcome != storage.Duplicate {
			t.Fatalf("resent request: %v", r)
		}
	}
	check(s)
	s.Close()
	// The store remembers after a restart.
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}

// NIP-62 asks for true deletion: after a request to vanish and a
// checkpoint, the content is nowhere in the database file.
func TestVanishErasesBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alice := newTestKey(t)
	secret := "SECRET-" + nostr.GeneratePrivateKey()
	// Enough events to fill whole pages, which deletion frees rather than
	// rewrites.
	var evs []*nostr.Event
	for i := range 200 {
		evs = append(evs, alice.event(t, 1, time.Now().Unix()-1000+int64(i), secret+strings.Repeat(" padding", 100)))
	}
	saveAll(t, s, evs...)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Contains(b, []byte(secret)) {
		t.Fatal("test is void: the content never reached the file")
	}
	saveAll(t, s, alice.event(t, 62, time.Now().Unix(), "", nostr.Tag{"relay", "ALL_RELAYS"}))
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s still holds the vanished content", filepath.Base(f))
		}
	}
}

package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

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
	if left, _ := queryIDs(t, s, []nostr.Filter{{}}, func(int) {}); len(left) != 20 {
		t.Fatalf("%d events left, want the 20 without the words", len(left))
	}
}

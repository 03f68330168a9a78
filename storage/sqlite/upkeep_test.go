package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// The store indexes for search by itself the tail a big batch leaves, once
// the writer is idle.
func TestStoreIndexesSearchByItself(t *testing.T) {
	ctx := context.Background()
	s := openTestStoreWith(t, Options{ReadConns: 2, SearchKinds: []int{1}})
	k := newTestKey(t)
	var evs []*nostr.Event
	for i := range 2500 {
		evs = append(evs, k.event(t, []int{1, 7}[i%2], int64(1_700_000_000+i), fmt.Sprintf("note %d", i)))
	}
	saveAll(t, s, evs...)
	if lag, _ := s.SearchLag(ctx); lag == 0 {
		t.Fatal("a big batch was indexed by Save")
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lag, err := s.SearchLag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search index still %d behind", lag)
		}
	}
	if n, _, err := s.Count(ctx, []nostr.Filter{{Search: "note"}}); n != 1250 || err != nil {
		t.Errorf("count %d %v, want 1250", n, err)
	}
}

// The indexer keeps off a loaded writer unless the tail is over its bound,
// and takes at most half of each look.
func TestIndexMore(t *testing.T) {
	half := searchIndexEvery / 2
	for _, c := range []struct {
		lag      int64
		loaded   bool
		indexing time.Duration
		want     bool
	}{
		{0, false, 0, false},
		{1, false, 0, true},
		{1, true, 0, false},
		{searchTailMax, true, 0, false},
		{searchTailMax + 1, true, 0, true},
		{searchTailMax + 1, true, 10 * half, true},
		{5000, false, half - time.Millisecond, true},
		{5000, false, half, false},
	} {
		if got := indexMore(c.lag, c.loaded, c.indexing); got != c.want {
			t.Errorf("indexMore(lag %d, loaded %v, indexing %v) = %v, want %v", c.lag, c.loaded, c.indexing, got, c.want)
		}
	}
}

// Close completes the search index, so that a bulk load leaves it whole.
func TestCloseCompletesSearchIndex(t *testing.T) {
	path := t.TempDir() + "/wisp.db"
	s, err := Open(context.Background(), path, Options{SearchKinds: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	k := newTestKey(t)
	var evs []*nostr.Event
	for i := range 1000 {
		evs = append(evs, k.event(t, 1, int64(1_700_000_000+i), fmt.Sprintf("note %d", i)))
	}
	saveAll(t, s, evs...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStoreAt(t, path)
	if lag, err := s.SearchLag(context.Background()); lag != 0 || err != nil {
		t.Fatalf("after Close: search lag %d %v, want 0", lag, err)
	}
}

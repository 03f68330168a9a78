package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// searchLag opens the database and returns how far its search index is
// behind, with how many events a search finds.
func searchLag(t *testing.T, path, search string) (lag, found int64) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if lag, err = store.SearchLag(context.Background()); err != nil {
		t.Fatal(err)
	}
	if found, _, err = store.Count(context.Background(), []nostr.Filter{{Search: search}}); err != nil {
		t.Fatal(err)
	}
	return lag, found
}

// wisp import leaves the search index complete, whatever batches the
// writer made of the file.
func TestImportCompletesSearchIndex(t *testing.T) {
	evs := signedEvents(t, 1800) // every other one a note, kind 1
	var file bytes.Buffer
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		file.Write(b)
		file.WriteByte('\n')
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, _ := runOK(t, []string{"WISP_DATA_DIR=" + dir, "WISP_SEARCH_KINDS=1"}, "import", in)
	if !strings.Contains(out, "1800 stored") {
		t.Fatalf("import said %q", out)
	}
	if lag, found := searchLag(t, filepath.Join(dir, "wisp.db"), "note"); lag != 0 || found != 900 {
		t.Errorf("after import: search lag %d, %d notes found, want 0 and 900", lag, found)
	}
}

// searchIndexer indexes the tail a big batch leaves while the writer is
// idle, and stops with its context.
func TestSearchIndexerCatchesUp(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wisp.db"), sqlite.Options{SearchKinds: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var items []storage.Item
	for _, ev := range signedEvents(t, 2500) {
		raw, _ := ev.MarshalJSON()
		items = append(items, storage.Item{Event: ev, Raw: raw})
	}
	if _, err := store.Save(ctx, items); err != nil {
		t.Fatal(err)
	}
	if lag, _ := store.SearchLag(ctx); lag != 2500 {
		t.Fatalf("lag %d after a big batch, want 2500", lag)
	}
	ictx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { searchIndexer(ictx, store, slog.New(slog.NewTextHandler(io.Discard, nil))) })
	defer func() { stop(); wg.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lag, err := store.SearchLag(ctx)
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
	if n, _, err := store.Count(ctx, []nostr.Filter{{Search: "note"}}); n != 1250 || err != nil {
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

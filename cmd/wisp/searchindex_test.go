package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
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

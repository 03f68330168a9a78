package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

func TestReadStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s := openSearchStore(t, path, []int{1, 30023})
	defer s.Close()
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	batch := []storage.Item{
		signed(t, sk, 1, 100, "a"), signed(t, sk, 1, 200, "b"), signed(t, sk, 7, 150, "+"),
		signed(t, sk, 1, 300, "gone", nostr.Tag{"expiration", fmt.Sprint(now - 1)}),
	}
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// While the store is open (the relay running).
	st, err := ReadStats(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if st.SchemaVersion != len(migrations()) || st.KnownVersion != len(migrations()) {
		t.Errorf("versions %d/%d", st.SchemaVersion, st.KnownVersion)
	}
	if st.Events != 4 || st.Expired != 1 || !slices.Equal(st.ByKind, []KindCount{{1, 3}, {7, 1}}) {
		t.Errorf("counts %d expired %d by kind %v", st.Events, st.Expired, st.ByKind)
	}
	if st.Oldest.Unix() != 100 || st.Newest.Unix() != 300 {
		t.Errorf("oldest %v newest %v", st.Oldest, st.Newest)
	}
	if st.DBBytes == 0 || st.WALBytes == 0 {
		t.Errorf("sizes: db %d wal %d", st.DBBytes, st.WALBytes)
	}
	if !slices.Equal(st.SearchKinds, []int{1, 30023}) {
		t.Errorf("search kinds %v", st.SearchKinds)
	}
	db, wal, err := s.FileSizes()
	if err != nil || db == 0 || wal == 0 {
		t.Errorf("file sizes %d %d %v", db, wal, err)
	}

	if _, err := ReadStats(ctx, filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Error("stats of a missing database")
	}
}

// KindCounts counts stored events by kind, the most numerous first, from
// the kind index alone.
func TestKindCounts(t *testing.T) {
	s := openSearchStore(t, filepath.Join(t.TempDir(), "wisp.db"), nil)
	defer s.Close()
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	batch := []storage.Item{signed(t, sk, 7, 1, "+"), signed(t, sk, 1, 2, "a"), signed(t, sk, 1, 3, "b"), signed(t, sk, 3, 4, "")}
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := s.KindCounts(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []KindCount{{1, 2}, {3, 1}}) {
		t.Fatalf("kind counts %v, want [{1 2} {3 1}] (most first, then by kind, at most 2)", got)
	}
	var plan string
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC, kind LIMIT 2")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		rows.Scan(&id, &parent, &unused, &detail)
		plan += detail + "; "
	}
	rows.Close()
	if !strings.Contains(plan, "COVERING INDEX events_kind") {
		t.Fatalf("plan %q: want the kind index alone", plan)
	}
}

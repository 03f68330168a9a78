package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// TestCountPlans checks that counts are served from indexes alone: no plan
// scans a table, and filters on one tag (with kinds and time), or on ids,
// authors, kinds and time, never read the events table itself.
func TestCountPlans(t *testing.T) {
	s := openTestStore(t)
	hex := strings.Repeat("ab", 32)
	hex2 := strings.Repeat("cd", 32)
	cases := []struct {
		name     string
		f        nostr.Filter
		covering bool // served without touching events rows
	}{
		{"reactions", nostr.Filter{Kinds: []int{7}, Tags: nostr.TagMap{"e": {hex}}}, true},
		{"followers", nostr.Filter{Kinds: []int{3}, Tags: nostr.TagMap{"p": {hex}}}, true},
		{"tag values", nostr.Filter{Tags: nostr.TagMap{"e": {hex, hex2}}}, true},
		{"tag since", nostr.Filter{Tags: nostr.TagMap{"t": {"x"}}, Since: ts(100)}, true},
		{"two tags", nostr.Filter{Tags: nostr.TagMap{"t": {"x"}, "p": {hex}}}, true},
		{"tag author", nostr.Filter{Tags: nostr.TagMap{"p": {hex}}, Authors: []string{hex2}}, false},
		{"authors", nostr.Filter{Authors: []string{hex}}, true},
		{"authors kinds", nostr.Filter{Authors: []string{hex, hex2}, Kinds: []int{1, 7}}, true},
		{"kinds", nostr.Filter{Kinds: []int{1}}, true},
		{"kinds until", nostr.Filter{Kinds: []int{1}, Until: ts(100)}, true},
		{"ids", nostr.Filter{IDs: []string{hex}}, true},
		{"since", nostr.Filter{Since: ts(100)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, ok, err := buildCountSelect(&c.f)
			if err != nil || !ok {
				t.Fatalf("buildCountSelect: %v %v", ok, err)
			}
			plan := explain(t, s, q)
			all := strings.Join(plan, "\n")
			for _, line := range plan {
				if strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, "COVERING INDEX") {
					t.Errorf("plan scans a table:\n%s\n%s", q.sql, all)
				}
			}
			if c.covering {
				for _, line := range plan {
					if (strings.Contains(line, " e USING INDEX") || strings.Contains(line, " e USING INTEGER PRIMARY KEY")) && !strings.Contains(line, "COVERING") {
						t.Errorf("plan reads events rows:\n%s\n%s", q.sql, all)
					}
				}
			}
			if testing.Verbose() {
				t.Logf("%s\n%s", q.sql, all)
			}
		})
	}

	// The expired-event correction reads the partial expiration index.
	rows, err := s.r.Query("EXPLAIN QUERY PLAN SELECT count(*) FROM events AS e INDEXED BY events_expiration WHERE e.expiration <= ? AND (e.kind = 1)", 5)
	if err != nil {
		t.Fatalf("the expiration index cannot serve the correction: %v", err)
	}
	rows.Close()
}

// {} is counted from the running count, so past the cap too it is exact
// (the suite's CountApproximate tests the cap itself).
func TestCountAllNeedsNoCap(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "wisp.db"), Options{CountCap: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sk := nostr.GeneratePrivateKey()
	var batch []storage.Item
	for i := range 15 {
		batch = append(batch, signed(t, sk, 7, int64(i), "+"))
	}
	if _, err := s.Save(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if n, approx, err := s.Count(context.Background(), []nostr.Filter{{}}); err != nil || n != 15 || approx {
		t.Errorf("count {}: %d approximate %v (%v); want 15, exact", n, approx, err)
	}
}

// The running count stays right through every way events come and go.
func TestEventCountTable(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	check := func(when string) {
		t.Helper()
		var running, actual int64
		if err := s.r.QueryRow("SELECT n FROM event_count").Scan(&running); err != nil {
			t.Fatal(err)
		}
		if err := s.r.QueryRow("SELECT count(*) FROM events").Scan(&actual); err != nil {
			t.Fatal(err)
		}
		if running != actual {
			t.Errorf("%s: running count %d, %d events", when, running, actual)
		}
	}
	check("empty")
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	a := signed(t, sk, 1, 1, "a")
	batch := []storage.Item{a, a, signed(t, sk, 0, 1, "p1"), signed(t, sk, 1, now, "x", nostr.Tag{"expiration", fmt.Sprint(now - 1)})}
	if _, err := s.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}
	check("after a batch with a duplicate")
	if _, err := s.Save(ctx, []storage.Item{signed(t, sk, 0, 2, "p2"), signed(t, sk, 5, 3, "", nostr.Tag{"e", a.Event.ID})}); err != nil {
		t.Fatal(err)
	}
	check("after a replacement and a deletion")
	if _, err := s.DeleteExpired(ctx, now); err != nil {
		t.Fatal(err)
	}
	check("after purging")
	if _, err := s.DeleteOld(ctx, 0, 65535, now+10); err != nil {
		t.Fatal(err)
	}
	check("after retention")
}

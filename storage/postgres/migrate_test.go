package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// schemaOf lists what the migrations made: columns, indexes, constraints,
// sequences and the schema version, as text to compare.
func schemaOf(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out []string
	for _, q := range []string{
		`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
			FROM information_schema.columns WHERE table_schema = 'public'`,
		`SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'`,
		`SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
			FROM pg_constraint WHERE connamespace = 'public'::regnamespace`,
		`SELECT 'sequence ' || sequencename || ' ' || data_type FROM pg_sequences WHERE schemaname = 'public'`,
		`SELECT 'version ' || version FROM wisp_schema`,
		`SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal`,
		`SELECT 'function ' || proname || ' ' || md5(prosrc) FROM pg_proc WHERE pronamespace = 'public'::regnamespace`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lines...)
	}
	slices.Sort(out)
	return out
}

func saveNote(t *testing.T, s *Store, content string) storage.Item {
	t.Helper()
	ev := &nostr.Event{Kind: 1, CreatedAt: 1, Tags: nostr.Tags{{"t", "x"}}, Content: content}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		t.Fatal(err)
	}
	raw, _ := ev.MarshalJSON()
	it := storage.Item{Event: ev, Raw: raw}
	if res, err := s.Save(context.Background(), []storage.Item{it}); err != nil || res[0].Outcome != storage.Stored {
		t.Fatalf("save: %v %v", res, err)
	}
	return it
}

// A database migrated one step at a time, with data in it, ends up as a
// fresh one, and keeps its data. The released steps are followed by one
// made up for the test, since there is one step so far.
func TestMigrateStepwiseEqualsFresh(t *testing.T) {
	ctx := context.Background()
	steps := append(migrations(), `ALTER TABLE settings ADD COLUMN changed bigint NOT NULL DEFAULT 0;
		CREATE INDEX settings_changed ON settings (changed)`)
	fresh, stepwise := pg.Database(t), pg.Database(t)
	s, err := open(ctx, fresh, Options{}, steps)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var kept storage.Item
	for n := 1; n <= len(steps); n++ {
		s, err := open(ctx, stepwise, Options{SearchKinds: []int{1}}, steps[:n])
		if err != nil {
			t.Fatalf("step %d: %v", n, err)
		}
		if n == 1 {
			kept = saveNote(t, s, "kept across migrations")
		}
		s.Close()
	}
	if a, b := schemaOf(t, fresh), schemaOf(t, stepwise); !slices.Equal(a, b) {
		t.Errorf("fresh and migrated schemas differ:\nfresh:\n%s\nmigrated:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	s, err = open(ctx, stepwise, Options{}, steps)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.Has(ctx, kept.Event.ID); !ok || err != nil {
		t.Errorf("event lost in migration: %v %v", ok, err)
	}
}

// Nodes started together on a new database migrate it once, one after the
// other (the advisory lock), and all open.
func TestMigrateConcurrently(t *testing.T) {
	url := pg.Database(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url, Options{MaxConns: 2, SearchKinds: []int{1}})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent opens: %v", err)
	}
	s := openURL(t, url, Options{})
	var version int
	if err := s.pool.QueryRow(context.Background(), "SELECT version FROM wisp_schema").Scan(&version); err != nil || version != len(migrations()) {
		t.Errorf("version %d (%v), want %d", version, err, len(migrations()))
	}
}

// A database from a newer wisp is refused; an older build must not write
// to a schema it does not know.
func TestMigrateRefusesNewer(t *testing.T) {
	url := pg.Database(t)
	s := openURL(t, url, Options{})
	if _, err := s.pool.Exec(context.Background(), "UPDATE wisp_schema SET version = $1", len(migrations())+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(context.Background(), url, Options{}); !errors.Is(err, storage.ErrTooNew) {
		if err == nil {
			s.Close()
		}
		t.Errorf("open newer database: %v, want ErrTooNew", err)
	}
	// The lock was let go: another open is answered at once, the same way.
	if _, err := Open(context.Background(), url, Options{}); !errors.Is(err, storage.ErrTooNew) {
		t.Errorf("second open: %v", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, url := range []string{"postgres://[::1", fmt.Sprintf("postgres://127.0.0.1:1/x?connect_timeout=2")} {
		if s, err := Open(context.Background(), url, Options{}); err == nil {
			s.Close()
			t.Errorf("opened %s", url)
		}
	}
}

package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/wisp-relay/wisp/internal/pgtest"
)

// pg is the PostgreSQL server of this test binary (see pgtest); tests skip
// without PostgreSQL's binaries.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	pg = pgtest.Start()
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// openTestStore opens a store on a new database; it is closed when t ends.
func openTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	return openURL(t, pg.Database(t), opts)
}

// openURL opens a store on the database at url; it is closed when t ends.
// Its background sweep is off unless opts asks for one (TestUpkeep): tests
// purge expired events themselves, when they mean to.
func openURL(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	if opts.Upkeep.Sweep == 0 {
		opts.manualUpkeep = true
	}
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

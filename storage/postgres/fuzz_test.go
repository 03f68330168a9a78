package postgres

import (
	"context"
	"testing"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

// The differential fuzzes of the suite, on PostgreSQL. Without -fuzz the
// seed corpus runs, as in every go test run.

func FuzzQuery(f *testing.F) { storagetest.FuzzQuery(f, fuzzStore(f)) }

func FuzzSave(f *testing.F) { storagetest.FuzzSave(f, fuzzStore(f)) }

// fuzzStore opens stores on one database for the fuzz target, emptied for
// each input, with pages of a size the input picks: creating a database takes about half a second, emptying
// one a few milliseconds.
func fuzzStore(f *testing.F) func(t *testing.T, input []byte) storage.Store {
	url := pg.Database(f)
	return func(t *testing.T, input []byte) storage.Store {
		// Pages of one event, of a few, or the default: the results must
		// not depend on how they are read.
		s := openURL(t, url, Options{MaxConns: 2, PageBytes: []int{DefaultPageBytes, 1, 700}[len(input)%3]})
		_, err := s.pool.Exec(context.Background(),
			"TRUNCATE events, tags, deleted_ids, deleted_addresses, vanished RESTART IDENTITY")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

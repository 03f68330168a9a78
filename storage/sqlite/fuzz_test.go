package sqlite

import (
	"testing"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

// fuzzStore opens a fresh store whose pages hold one event, a few, or the
// default, and that probes (probe.go) filters of any number of authors
// looking one or two events deep for each result, or by the defaults, by
// the fuzz input: the results must not depend on how they are read.
func fuzzStore(t *testing.T, input []byte) storage.Store {
	return openTestStoreWith(t, Options{
		ReadConns: 2,
		PageBytes: []int{DefaultPageBytes, 1, 700}[len(input)%3],
		probe:     []probeTuning{{minAuthors: 1, rows: 1}, {}, {minAuthors: 1, rows: 2}}[len(input)/3%3],
	})
}

func FuzzQuery(f *testing.F) { storagetest.FuzzQuery(f, fuzzStore) }

func FuzzSave(f *testing.F) { storagetest.FuzzSave(f, fuzzStore) }

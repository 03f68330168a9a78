package sqlite

import (
	"testing"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

func FuzzQuery(f *testing.F) {
	storagetest.FuzzQuery(f, func(t *testing.T) storage.Store { return openTestStore(t) })
}

func FuzzSave(f *testing.F) {
	storagetest.FuzzSave(f, func(t *testing.T) storage.Store { return openTestStore(t) })
}

package postgres

import (
	"context"
	"testing"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, conformanceEngine())
}

// conformanceEngine opens stores on a new database of the test server.
func conformanceEngine() storagetest.Engine {
	return storagetest.Engine{
		NewDB: func(t *testing.T) storagetest.Opener {
			url := pg.Database(t)
			return func(opts storagetest.Options) (storage.Store, error) {
				return Open(context.Background(), url, Options{MaxConns: 4, SearchKinds: opts.SearchKinds, CountCap: opts.CountCap})
			}
		},
	}
}

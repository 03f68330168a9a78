package postgres

import (
	"context"
	"testing"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, conformanceEngine(Options{MaxConns: 4}))
}

// With one event per page every query of the suite reads page after page,
// in several statements.
func TestConformanceOneEventPages(t *testing.T) {
	storagetest.Run(t, conformanceEngine(Options{MaxConns: 4, PageBytes: 1}))
}

// conformanceEngine opens stores with base on a new database of the test
// server, with the suite's options. The background sweep is off: the
// suite calls DeleteExpired itself and counts expired events not yet
// purged, which a sweep a minute into a slow run would take away
// (TestUpkeep tests the sweep).
func conformanceEngine(base Options) storagetest.Engine {
	return storagetest.Engine{
		NewDB: func(t *testing.T) storagetest.Opener {
			url := pg.Database(t)
			return func(opts storagetest.Options) (storage.Store, error) {
				o := base
				o.SearchKinds, o.CountCap, o.manualUpkeep = opts.SearchKinds, opts.CountCap, true
				return Open(context.Background(), url, o)
			}
		},
	}
}

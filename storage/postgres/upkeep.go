package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wisp-relay/wisp/storage"
)

// The store keeps itself in shape from Open to Close, as the SQLite engine
// does (storage.Upkeep):
//
//   - expired events and those past their retention are deleted every
//     Upkeep.Sweep (at Open too);
//   - the search index's pending entries are merged every few seconds
//     (FlushSearchIndex), off the writers' path.
//
// Every process on a database sweeps: the deletes are small statements
// that find nothing to do once one of them has. PostgreSQL's autovacuum
// does the rest (dead rows, planner statistics).

// searchFlushEvery is how often FlushSearchIndex runs.
const searchFlushEvery = 5 * time.Second

// upkeep is the store's background work.
type upkeep struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
	log  *slog.Logger
}

// startUpkeep starts the background work opts ask for.
func (s *Store) startUpkeep(opts storage.Upkeep) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sweep := opts.Sweep
	if sweep <= 0 {
		sweep = time.Minute
	}
	ctx, stop := context.WithCancel(context.Background())
	s.upkeep = upkeep{stop: stop, log: log}
	s.upkeep.wg.Go(func() {
		s.sweep(ctx, opts.Retention) // at start, then every interval
		every(ctx, sweep, func() { s.sweep(ctx, opts.Retention) })
	})
	s.upkeep.wg.Go(func() {
		every(ctx, searchFlushEvery, func() {
			if _, err := s.FlushSearchIndex(ctx); err != nil && ctx.Err() == nil {
				log.Warn("search index: flush failed", "err", err)
			}
		})
	})
}

// stopUpkeep stops the background work and waits for it.
func (s *Store) stopUpkeep() {
	if s.upkeep.stop == nil {
		return // not started
	}
	s.upkeep.stop()
	s.upkeep.wg.Wait()
}

// every calls fn each interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// sweep deletes expired events, then those past each retention rule.
func (s *Store) sweep(ctx context.Context, rules []storage.RetentionRule) {
	log := s.upkeep.log
	now := time.Now()
	n, err := s.DeleteExpired(ctx, now.Unix())
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error("purge expired events", "err", err)
	case n > 0:
		log.Debug("purged expired events", "count", n)
	}
	for _, r := range rules {
		n, err := s.DeleteOld(ctx, r.MinKind, r.MaxKind, now.Add(-r.MaxAge).Unix())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("retention", "rule", r.String(), "err", err)
		case n > 0:
			log.Info("retention removed old events", "rule", r.String(), "events", n)
		}
	}
}

package sqlite

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wisp-relay/wisp/storage"
)

// The store keeps itself in shape from Open to Close, whichever program
// opened it (wisp serve, import, sync, mirror):
//
//   - a passive WAL checkpoint every second from a connection of its own
//     (checkpointer below), so that commits on the single writer do not pay
//     for it;
//   - a TRUNCATE checkpoint and PRAGMA optimize every CheckpointInterval,
//     which bound the WAL file and refresh the planner's statistics;
//   - the search index's tail, indexed a chunk at a time (searchIndexer);
//   - expired events and those past their retention, deleted every
//     Upkeep.Sweep.
//
// Close stops it, completes the search index (so a bulk load leaves it
// whole) and checkpoints the WAL into the database file.

// How searchIndexer keeps the search index up with the events.
const (
	// searchIndexEvery is how often it looks at the index.
	searchIndexEvery = 200 * time.Millisecond
	// searchIndexChunk is how many events one IndexSearch call indexes: about
	// 3 ms of the writer for notes (BenchmarkIndexSearch), so a live event
	// waits at most about that long behind one (chunks of 1,000 held it 13
	// ms and showed in fan-out's p99). The cost per event is flat (10-13 µs)
	// from 100 events to 5,000, so smaller chunks cost nothing more.
	searchIndexChunk = 250
	// searchTailMax bounds the events not indexed yet, which every search
	// reads without the index (a full tail adds 20-60 ms to a search,
	// BenchmarkSearchTail); past it the index catches up under any load.
	searchTailMax = 20000
	// passiveCheckpointEvery is how often the WAL is copied back.
	passiveCheckpointEvery = time.Second
	// closeSearchTimeout and closeCheckpointTimeout bound what Close does
	// before closing; what is left is for the next Open.
	closeSearchTimeout     = 30 * time.Second
	closeCheckpointTimeout = 10 * time.Second
)

// upkeep is the store's background work.
type upkeep struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
	log  *slog.Logger
}

// startUpkeep starts the background work Options ask for.
func (s *Store) startUpkeep(opts Options) {
	log := opts.Upkeep.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sweep := opts.Upkeep.Sweep
	if sweep <= 0 {
		sweep = time.Minute
	}
	ctx, stop := context.WithCancel(context.Background())
	s.upkeep = upkeep{stop: stop, log: log}
	wg := &s.upkeep.wg
	wg.Go(func() { every(ctx, passiveCheckpointEvery, func() { s.keepWALSmall(ctx) }) })
	if opts.CheckpointInterval > 0 {
		wg.Go(func() { every(ctx, opts.CheckpointInterval, func() { s.checkpointAndOptimize(ctx) }) })
	}
	if len(s.searchKinds) > 0 {
		wg.Go(func() { s.searchIndexer(ctx) })
	}
	// A sweep at once, before Open returns (what it deletes is never
	// served anyway), then every interval.
	rules := opts.Upkeep.Retention
	s.sweep(ctx, rules)
	wg.Go(func() { every(ctx, sweep, func() { s.sweep(ctx, rules) }) })
}

// stopUpkeep stops the background work, then completes the search index
// and checkpoints the WAL, each within its time.
func (s *Store) stopUpkeep() {
	if s.upkeep.stop == nil {
		return // Open failed before starting it
	}
	s.upkeep.stop()
	s.upkeep.wg.Wait()
	if len(s.searchKinds) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), closeSearchTimeout)
		if err := s.catchUpSearch(ctx); err != nil {
			s.upkeep.log.Warn("search index: not complete at close; the next start goes on", "err", err)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeCheckpointTimeout)
	if err := s.Checkpoint(ctx); err != nil {
		s.upkeep.log.Warn("final checkpoint failed", "err", err)
	}
	cancel()
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

func (s *Store) keepWALSmall(ctx context.Context) {
	if err := s.CheckpointPassive(ctx); err != nil && ctx.Err() == nil {
		s.upkeep.log.Debug("passive checkpoint failed", "err", err)
	}
}

func (s *Store) checkpointAndOptimize(ctx context.Context) {
	start := time.Now()
	if err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
		s.upkeep.log.Warn("checkpoint failed", "err", err)
	}
	if err := s.Optimize(ctx); err != nil && ctx.Err() == nil {
		s.upkeep.log.Warn("optimize failed", "err", err)
	}
	s.upkeep.log.Debug("database upkeep done", "took", time.Since(start))
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
	s.enforceRetention(ctx, rules, now)
}

// enforceRetention runs every rule once.
func (s *Store) enforceRetention(ctx context.Context, rules []storage.RetentionRule, now time.Time) {
	for _, r := range rules {
		n, err := s.DeleteOld(ctx, r.MinKind, r.MaxKind, now.Add(-r.MaxAge).Unix())
		switch {
		case err != nil && ctx.Err() == nil:
			s.upkeep.log.Error("retention", "rule", r.String(), "err", err)
		case n > 0:
			s.upkeep.log.Info("retention removed old events", "rule", r.String(), "events", n)
		}
	}
}

// searchIndexer keeps the search index up with the events, which Save
// leaves in the index's tail. It indexes the tail a chunk at a time once
// no big Save batch (a queue at the writer: load) came in the last
// interval, for up to half of each interval, so that indexing takes
// neither the writer nor a core from clients while they are writing; and
// whatever the load once the tail passes searchTailMax, so that it stays
// bounded. Save batches that wait for a chunk go before the next one.
func (s *Store) searchIndexer(ctx context.Context) {
	log := s.upkeep.log
	lastLoaded := s.LoadedBatches()
	every(ctx, searchIndexEvery, func() {
		batches := s.LoadedBatches()
		loaded := batches != lastLoaded
		lastLoaded = batches
		var indexing time.Duration
		for ctx.Err() == nil {
			lag, err := s.SearchLag(ctx)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("search index: read lag failed", "err", err)
				}
				return
			}
			if !indexMore(lag, loaded, indexing) {
				return
			}
			start := time.Now()
			n, err := s.IndexSearch(ctx, searchIndexChunk)
			indexing += time.Since(start)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("search indexing failed", "err", err)
				}
				return
			}
			if n < searchIndexChunk {
				return
			}
		}
	})
}

// indexMore says whether searchIndexer indexes another chunk, with lag
// events behind, loaded if a big batch came since its last look, and
// indexing spent on this look so far.
func indexMore(lag int64, loaded bool, indexing time.Duration) bool {
	switch {
	case lag <= 0:
		return false
	case lag > searchTailMax:
		return true // bound the tail whatever the load
	}
	return !loaded && indexing < searchIndexEvery/2
}

// catchUpSearch indexes every event the search index has not got to yet.
func (s *Store) catchUpSearch(ctx context.Context) error {
	for {
		n, err := s.IndexSearch(ctx, searchIndexChunk)
		if err != nil {
			return err
		}
		if n < searchIndexChunk {
			return nil
		}
	}
}

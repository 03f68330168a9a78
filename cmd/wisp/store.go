package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/wisp-relay/wisp/storage/sqlite"
)

// storeOptions are the database settings every command shares: the
// search kinds, the sync mode, how often the store sweeps expired events;
// the store logs its background work to log.
func (c Config) storeOptions(log *slog.Logger) sqlite.Options {
	opts := sqlite.Options{SearchKinds: c.searchKinds(), FullSync: c.fullSync()}
	opts.Upkeep.Sweep, opts.Upkeep.Logger = c.ExpirySweep, log
	return opts
}

// withStore runs fn over the configured database, which it opens with one
// read connection (a command does one thing at a time) and closes after,
// whatever fn returns.
func withStore(ctx context.Context, environ []string, fn func(cfg Config, store *sqlite.Store) error) (err error) {
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	opts := cfg.storeOptions(nil)
	opts.ReadConns = 1
	store, err := sqlite.Open(ctx, cfg.dbPath(), opts)
	if err != nil {
		return fmt.Errorf("open database %s: %w", cfg.dbPath(), err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close database: %w", cerr))
		}
	}()
	return fn(cfg, store)
}

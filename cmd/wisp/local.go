package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/wisp-relay/wisp/relay"
)

// localRelay is the relay's pipeline without a listener, over the
// configured database: what import, sync and mirror feed events through,
// so that they pass the same checks, signature verification and write
// policy as a client's EVENT. SQLite's locking (and its busy timeout) lets
// it share the database with a running wisp serve; PostgreSQL is shared
// anyway.
type localRelay struct {
	cfg   Config
	log   *slog.Logger
	store eventStore
	acc   *access
	relay *relay.Relay
}

// openLocal opens the database and starts a relay pipeline on it; tune may
// adjust the relay's configuration.
func openLocal(ctx context.Context, cfg Config, stderr io.Writer, tune func(*relay.Config)) (*localRelay, error) {
	log := newLogger(cfg, newIPMask(cfg.LogIPs), stderr)
	store, err := openStore(ctx, cfg, forCommand, log)
	if err != nil {
		return nil, err
	}
	acc, err := newAccess(ctx, cfg, store, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	if cfg.membershipOn() {
		acc.policy.Lists().RequireListed() // members only, as in wisp serve
	}
	rcfg := cfg.relayConfig(log)
	acc.apply(&rcfg, cfg)
	// Events of the relay's own key are refused here as in wisp serve
	// (imports excepted); the group and membership rules run only there.
	if _, pk, err := cfg.relayKey(false); err == nil {
		rcfg.Info.Self = pk
	}
	if tune != nil {
		tune(&rcfg)
	}
	rl := relay.New(rcfg, store)
	rl.Start()
	return &localRelay{cfg: cfg, log: log, store: store, acc: acc, relay: rl}, nil
}

// relayConfig is the relay configuration these settings describe, without
// policy and metrics.
func (c Config) relayConfig(log *slog.Logger) relay.Config {
	return relay.Config{
		Limits:        c.limits(),
		Info:          c.info(),
		Version:       version,
		Verifier:      verifier,
		VerifyWorkers: c.VerifyWorkers,
		WriteBatchMax: c.WriteBatchMax,
		WriteQueue:    c.WriteQueue,
		Logger:        log,
		Negentropy:    c.negentropy(),
	}
}

// negentropy is the NIP-77 configuration.
func (c Config) negentropy() relay.NegentropyConfig {
	return relay.NegentropyConfig{Enabled: c.Negentropy, MaxEvents: c.NegMaxEvents, MaxTotalEvents: c.NegMaxTotalEvents}
}

// close drains the pipeline (every event handed in is stored and answered)
// and closes the database.
func (l *localRelay) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if err := l.relay.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain: %w", err))
	}
	if err := l.acc.policy.Close(); err != nil {
		errs = append(errs, err)
	}
	// Close completes the search index (a bulk load leaves it whole) and
	// checkpoints the WAL.
	if err := l.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	return errors.Join(errs...)
}

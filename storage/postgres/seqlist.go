package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wisp-relay/wisp/storage"
)

var _ storage.SeqLister = (*Store)(nil)

// LastSeq implements storage.SeqLister: the sequence's last value (0 before
// its first), numbers of deleted events and of failed saves included. It
// takes the write lock shared first, so that it waits for a Save in
// progress: that Save's numbers are drawn but not committed, and a reader
// that started after them (the relay's follower) would skip its events.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1, $2)", lockClass, lockWrite); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT coalesce(pg_sequence_last_value('events_seq'), 0)`).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("last seq: %w", err)
	}
	return seq, nil
}

// EventsAfter implements storage.SeqLister. Saves commit in seq order (they
// hold the write lock while they take their numbers), so a row committed
// later never has a lower seq than one already listed.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int, fn func(seq int64, raw []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if limit <= 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, raw FROM events
		WHERE seq > $1 AND (expiration IS NULL OR expiration > $2) ORDER BY seq LIMIT $3`, after, time.Now().Unix(), limit)
	if err != nil {
		return fmt.Errorf("events after %d: %w", after, err)
	}
	var seq int64
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&seq, &raw}, func() error { return fn(seq, raw) })
	return err
}

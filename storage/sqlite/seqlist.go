package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/wisp-relay/wisp/storage"
)

var _ storage.SeqLister = (*Store)(nil)

// LastSeq implements storage.SeqLister: AUTOINCREMENT keeps the highest
// sequence number ever given out in sqlite_sequence.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	var seq int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("last seq: %w", err)
	}
	return seq, nil
}

// EventsAfter implements storage.SeqLister.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int, fn func(seq int64, raw []byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	if limit <= 0 {
		return nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, raw FROM events
WHERE seq > ? AND (expiration IS NULL OR expiration > ?)
ORDER BY seq LIMIT ?`, after, time.Now().Unix(), limit)
	if err != nil {
		return fmt.Errorf("events after %d: %w", after, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return fmt.Errorf("events after %d: %w", after, err)
		}
		if err := fn(seq, raw); err != nil {
			return err
		}
	}
	return rows.Err()
}

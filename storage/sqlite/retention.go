package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/wisp-relay/wisp/storage"
)

// retentionChunk is how many events one retention transaction removes, so
// that a large backlog does not hold the write lock for long.
const retentionChunk = 1000

// DeleteOld removes the events of kinds minKind to maxKind (inclusive)
// created before before (unix seconds), and returns how many it removed.
// It visits only the kinds present in the range, one index seek each, then
// deletes in small transactions, so Save batches run in between.
func (s *Store) DeleteOld(ctx context.Context, minKind, maxKind int, before int64) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	var total int64
	for kind := minKind - 1; ; {
		// The next kind present in the range: one seek in events_kind.
		var next sql.NullInt64
		err := s.r.QueryRowContext(ctx, "SELECT min(kind) FROM events WHERE kind > ? AND kind <= ?", kind, maxKind).Scan(&next)
		if err != nil {
			return total, fmt.Errorf("delete old: find kinds: %w", err)
		}
		if !next.Valid {
			return total, nil
		}
		kind = int(next.Int64)
		for {
			// Tag and search rows go with their event (cascade, trigger).
			res, err := s.w.ExecContext(ctx, `DELETE FROM events WHERE seq IN (
				SELECT seq FROM events WHERE kind = ? AND created_at < ? LIMIT ?)`,
				kind, before, retentionChunk)
			if err != nil {
				return total, fmt.Errorf("delete old events of kind %d: %w", kind, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return total, fmt.Errorf("delete old events of kind %d: %w", kind, err)
			}
			total += n
			if n < retentionChunk {
				break
			}
		}
	}
}

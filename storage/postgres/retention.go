package postgres

import (
	"context"
	"fmt"
)

// retentionChunk is how many events one retention statement removes.
const retentionChunk = 1000

// DeleteOld removes the events of kinds minKind to maxKind (inclusive)
// created before before (unix seconds), and returns how many it removed.
// It visits only the kinds present in the range (one seek in events_kind
// each), deleting in chunks of one statement each.
func (s *Store) DeleteOld(ctx context.Context, minKind, maxKind int, before int64) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	var total int64
	for kind := minKind - 1; ; {
		var next *int32
		findCtx, cancel := s.bounded(ctx)
		err := s.pool.QueryRow(findCtx, "SELECT min(kind) FROM events WHERE kind > $1 AND kind <= $2", kind, maxKind).Scan(&next)
		cancel()
		if err != nil {
			return total, fmt.Errorf("delete old: find kinds: %w", err)
		}
		if next == nil {
			return total, nil
		}
		kind = int(*next)
		n, err := s.deleteChunks(ctx, fmt.Sprintf("delete old events of kind %d", kind), retentionChunk,
			`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE kind = $1 AND created_at < $2 LIMIT $3)`,
			kind, before, retentionChunk)
		total += n
		if err != nil {
			return total, err
		}
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

var _ storage.PrefixLookup = (*Store)(nil)

// HasIDPrefix implements storage.PrefixLookup with one range seek on the
// unique id index: ids from prefix up to, not including, the prefix plus
// one (a shorter blob sorts before a longer one with the same start).
func (s *Store) HasIDPrefix(ctx context.Context, prefix string) (bool, error) {
	lo, err := hex.DecodeString(prefix)
	if err != nil || len(lo) == 0 || len(lo) > 32 || strings.ToLower(prefix) != prefix {
		return false, fmt.Errorf("id prefix %q: want 2 to 64 hex digits", prefix)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, storage.ErrClosed
	}
	q := idPrefixQuery(lo)
	var one int
	switch err := s.r.QueryRowContext(ctx, q.sql, q.args...).Scan(&one); {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	default:
		return false, fmt.Errorf("id prefix: %w", err)
	}
}

// idPrefixQuery selects one stored event whose id starts with prefix.
func idPrefixQuery(prefix []byte) builtQuery {
	if hi := evkey.NextPrefix(prefix); hi != nil {
		return builtQuery{sql: `SELECT 1 FROM events WHERE id >= ? AND id < ? LIMIT 1`, args: []any{prefix, hi}}
	}
	return builtQuery{sql: `SELECT 1 FROM events WHERE id >= ? LIMIT 1`, args: []any{prefix}}
}

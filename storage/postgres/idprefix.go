package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

var _ storage.PrefixLookup = (*Store)(nil)

// HasIDPrefix reports whether a stored event's id starts with prefix: one
// range of the id index; see storage.PrefixLookup.
func (s *Store) HasIDPrefix(ctx context.Context, prefix string) (bool, error) {
	lo, err := hex.DecodeString(prefix)
	if err != nil || len(lo) == 0 || len(lo) > 32 || strings.ToLower(prefix) != prefix {
		return false, fmt.Errorf("id prefix %q: want 2 to 64 hex digits", prefix)
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	q, args := "SELECT 1 FROM events WHERE id >= $1 LIMIT 1", []any{lo}
	if hi := evkey.NextPrefix(lo); hi != nil {
		q, args = "SELECT 1 FROM events WHERE id >= $1 AND id < $2 LIMIT 1", []any{lo, hi}
	}
	var one int
	switch err := s.read.QueryRow(ctx, q, args...).Scan(&one); {
	case err == nil:
		return true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	default:
		return false, fmt.Errorf("id prefix: %w", err)
	}
}

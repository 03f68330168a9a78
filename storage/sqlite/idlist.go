package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

var _ storage.IDLister = (*Store)(nil)

// ListIDs lists (created_at, id) of matching events (storage.IDLister). It
// runs the filters' usual index-driven queries without reading the JSON, in
// one read transaction.
func (s *Store) ListIDs(ctx context.Context, filters []nostr.Filter, max int, fn func(createdAt int64, id []byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	now := time.Now().Unix()
	queries := make([]builtQuery, 0, len(filters))
	for i := range filters {
		f := filters[i]
		f.Limit, f.LimitZero = 0, false
		q, ok, err := buildQuery(&f, now)
		if err != nil {
			return fmt.Errorf("list ids: filter %d: %w", i, err)
		}
		if !ok {
			continue
		}
		q.sql = strings.Replace(q.sql, selectEvents+" FROM", "SELECT e.created_at, e.id FROM", 1)
		queries = append(queries, q)
	}
	if len(queries) == 0 {
		return nil
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("list ids: begin: %w", err)
	}
	defer tx.Rollback()
	seen := newIDSet(len(queries))
	n := 0
	for _, q := range queries {
		if err := func() error {
			rows, err := tx.QueryContext(ctx, q.sql, q.args...)
			if err != nil {
				return fmt.Errorf("list ids: %w", err)
			}
			defer rows.Close()
			var (
				created int64
				id      sql.RawBytes
			)
			for rows.Next() {
				if err := rows.Scan(&created, &id); err != nil {
					return fmt.Errorf("list ids: %w", err)
				}
				if len(id) != 32 {
					return fmt.Errorf("list ids: stored id has %d bytes", len(id))
				}
				if !seen.first([32]byte(id)) {
					continue
				}
				n++
				if max > 0 && n > max {
					return storage.ErrTooMany
				}
				if err := fn(created, id); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("list ids: %w", err)
			}
			return nil
		}(); err != nil {
			return err
		}
	}
	return nil
}

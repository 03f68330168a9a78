package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

var _ storage.IDLister = (*Store)(nil)

// ListIDs lists (created_at, id) of matching events (storage.IDLister), in
// one statement: the filters' usual queries without their JSON or limits.
// Search filters list nothing.
func (s *Store) ListIDs(ctx context.Context, filters []nostr.Filter, max int, fn func(createdAt int64, id []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	now := time.Now().Unix()
	var p params
	var branches []string
	for i := range filters {
		f := &filters[i]
		fp, ok := parseFilter(f)
		if !ok || f.Search != "" {
			continue
		}
		branches = append(branches, selectFilter(&p, &fp, now, "e.created_at, e.id", false, 0, nil))
	}
	if len(branches) == 0 {
		return nil
	}
	rows, err := s.read.Query(ctx, "("+strings.Join(branches, ") UNION ALL (")+")", p.args...)
	if err != nil {
		return fmt.Errorf("list ids: %w", err)
	}
	var seen map[[32]byte]bool
	if len(branches) > 1 {
		seen = map[[32]byte]bool{}
	}
	n := 0
	var created int64
	var id []byte
	_, err = pgx.ForEachRow(rows, []any{&created, &id}, func() error {
		if seen != nil {
			if seen[[32]byte(id)] {
				return nil
			}
			seen[[32]byte(id)] = true
		}
		if n++; max > 0 && n > max {
			return storage.ErrTooMany
		}
		return fn(created, id)
	})
	return err
}

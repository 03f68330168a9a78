package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

var (
	_ storage.Moderation = (*Store)(nil)
	_ storage.Eraser     = (*Store)(nil)
)

// ListEntries returns one moderation list, ordered by key.
func (s *Store) ListEntries(ctx context.Context, list string) ([]storage.ListEntry, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT key, reason FROM moderation WHERE list = $1 ORDER BY key COLLATE "C"`, list)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", list, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.ListEntry, error) {
		var e storage.ListEntry
		err := r.Scan(&e.Key, &e.Reason)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", list, err)
	}
	if out == nil {
		out = []storage.ListEntry{}
	}
	return out, nil
}

// PutListEntry adds key to list and removes it from removeFrom, in one
// transaction.
func (s *Store) PutListEntry(ctx context.Context, list, key, reason string, removeFrom ...string) error {
	return s.writeTx(ctx, "put list entry", func(tx pgx.Tx) error {
		if len(removeFrom) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM moderation WHERE list = ANY($1) AND key = $2`, removeFrom, key); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO moderation (list, key, reason) VALUES ($1, $2, $3)
			ON CONFLICT (list, key) DO UPDATE SET reason = excluded.reason`, list, key, reason)
		return err
	})
}

// DeleteListEntry removes key from list. Of two transactions deleting
// one row, the second waits for the first and then finds nothing to
// delete, so only one is told it removed it.
func (s *Store) DeleteListEntry(ctx context.Context, list, key string) (removed bool, err error) {
	err = s.writeTx(ctx, "delete list entry", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM moderation WHERE list = $1 AND key = $2`, list, key)
		removed = tag.RowsAffected() > 0
		return err
	})
	return removed && err == nil, err
}

// Settings returns every stored setting.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	out := map[string]string{}
	var k, v string
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		out[k] = v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return out, nil
}

// SetSetting stores one setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	return s.writeTx(ctx, "set setting", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// writeTx runs fn in one transaction, again if PostgreSQL gave up on it for
// a deadlock.
func (s *Store) writeTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	err := retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			// Delivered at commit: other nodes reload their lists.
			_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", channelModeration)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// deleteChunk is how many events one DeleteMatching statement removes.
const deleteChunk = 1000

// DeleteMatching removes stored events matching any filter, a chunk of one
// statement (one transaction) at a time; see storage.Eraser. Limits are
// ignored and expired events are left to DeleteExpired, as Query would not
// serve them. A search filter deletes what Query finds for it (see
// searchIDs), so that deleting by a search deletes what a REQ shows.
func (s *Store) DeleteMatching(ctx context.Context, filters []nostr.Filter) (int64, error) {
	var total int64
	for _, f := range filters {
		if f.Search == "" {
			continue
		}
		for {
			ids, err := s.searchIDs(ctx, f, deleteChunk)
			if err != nil || len(ids) == 0 {
				return total, err
			}
			n, err := s.deletePlain(ctx, []nostr.Filter{{IDs: ids}})
			total += n
			if err != nil || n == 0 || len(ids) < deleteChunk {
				if err != nil {
					return total, err
				}
				break
			}
		}
	}
	n, err := s.deletePlain(ctx, filters)
	return total + n, err
}

// searchIDs returns the ids of up to limit events Query serves for the
// search filter f, read on the primary: what is deleted is what is stored.
func (s *Store) searchIDs(ctx context.Context, f nostr.Filter, limit int) ([]string, error) {
	f.Limit, f.LimitZero = limit, false
	var ids []string
	_, err := s.query(ctx, s.pool, []nostr.Filter{f}, func(raw []byte) error {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("stored event without a readable id: %w", err)
		}
		ids = append(ids, ev.ID)
		return nil
	})
	return ids, err
}

// deletePlain is DeleteMatching for the filters without search.
func (s *Store) deletePlain(ctx context.Context, filters []nostr.Filter) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	var total int64
	for i := range filters {
		f := &filters[i]
		fp, ok := parseFilter(f)
		if !ok || f.Search != "" {
			continue
		}
		var p params
		sel := selectFilter(&p, &fp, time.Now().Unix(), "e.seq", false, deleteChunk, nil)
		n, err := s.deleteChunks(ctx, "delete matching", deleteChunk, "DELETE FROM events WHERE seq IN ("+sel+")", p.args...)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Scan streams the events matching any filter to fn, each filter in a
// statement of its own; see storage.Eraser. Search filters are served by
// Query, first, with the same ranking a REQ gets.
func (s *Store) Scan(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) error {
	var seen map[[32]byte]bool
	if len(filters) > 1 {
		seen = map[[32]byte]bool{}
	}
	for i := range filters {
		if filters[i].Search == "" {
			continue
		}
		_, err := s.Query(ctx, filters[i:i+1], func(raw []byte) error {
			if seen != nil {
				var ev struct {
					ID string `json:"id"`
				}
				var id [32]byte
				if err := json.Unmarshal(raw, &ev); err != nil || len(ev.ID) != 64 {
					return fmt.Errorf("stored event without a readable id: %.80s", raw)
				}
				if _, err := hex.Decode(id[:], []byte(ev.ID)); err != nil {
					return fmt.Errorf("stored event without a readable id: %.80s", raw)
				}
				if seen[id] {
					return nil
				}
				seen[id] = true
			}
			return fn(raw)
		})
		if err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	now := time.Now().Unix()
	for i := range filters {
		f := &filters[i]
		limit, ok := limitOf(f)
		if !ok || f.Search != "" {
			continue
		}
		fp, ok := parseFilter(f)
		if !ok {
			continue
		}
		var p params
		rows, err := s.read.Query(ctx, selectFilter(&p, &fp, now, "e.id, e.raw", true, limit, nil), p.args...)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		var id, raw []byte
		var fnErr error // fn's own error goes back as it is
		_, err = pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
			if seen != nil {
				if seen[[32]byte(id)] {
					return nil
				}
				seen[[32]byte(id)] = true
			}
			fnErr = fn(raw)
			return fnErr
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	return nil
}

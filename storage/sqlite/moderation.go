package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

var (
	_ storage.Moderation = (*Store)(nil)
	_ storage.Eraser     = (*Store)(nil)
)

// ListEntries returns one moderation list, ordered by key.
func (s *Store) ListEntries(ctx context.Context, list string) ([]storage.ListEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT key, reason FROM moderation WHERE list = ? ORDER BY key`, list)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", list, err)
	}
	defer rows.Close()
	out := []storage.ListEntry{}
	for rows.Next() {
		var e storage.ListEntry
		if err := rows.Scan(&e.Key, &e.Reason); err != nil {
			return nil, fmt.Errorf("list %s: scan: %w", list, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", list, err)
	}
	return out, nil
}

// PutListEntry adds key to list and removes it from removeFrom, in one
// transaction.
func (s *Store) PutListEntry(ctx context.Context, list, key, reason string, removeFrom ...string) error {
	return s.writeTx(ctx, "put list entry", func(tx *sql.Tx) error {
		for _, other := range removeFrom {
			if _, err := tx.ExecContext(ctx, `DELETE FROM moderation WHERE list = ? AND key = ?`, other, key); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO moderation (list, key, reason) VALUES (?, ?, ?)
			ON CONFLICT (list, key) DO UPDATE SET reason = excluded.reason`, list, key, reason)
		return err
	})
}

// DeleteListEntry removes key from list.
func (s *Store) DeleteListEntry(ctx context.Context, list, key string) (removed bool, err error) {
	err = s.writeTx(ctx, "delete list entry", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM moderation WHERE list = ? AND key = ?`, list, key)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		removed = n > 0
		return err
	})
	return removed && err == nil, err
}

// Settings returns every stored setting.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("settings: scan: %w", err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return out, nil
}

// SetSetting stores one setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	return s.writeTx(ctx, "set setting", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// writeTx runs fn in one write transaction on the writer connection. It
// queues behind a running Save batch, which holds the only connection.
func (s *Store) writeTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	defer tx.Rollback() // a no-op after Commit
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// deleteChunk is how many events one DeleteMatching transaction removes.
const deleteChunk = 1000

// DeleteMatching removes stored events matching any filter, a chunk per
// transaction: the ids are found on a read connection, then deleted on the
// writer, until a chunk comes back short.
func (s *Store) DeleteMatching(ctx context.Context, filters []nostr.Filter) (int64, error) {
	var total int64
	for i := range filters {
		f := filters[i]
		f.Limit, f.LimitZero = deleteChunk, false
		for {
			ids, err := s.matchingIDs(ctx, &f)
			if err != nil {
				return total, fmt.Errorf("delete matching: %w", err)
			}
			if len(ids) == 0 {
				break
			}
			var n int64
			err = s.writeTx(ctx, "delete matching", func(tx *sql.Tx) error {
				// Moderation deletes for good: freed pages are zeroed.
				if err := setSecureDelete(ctx, tx, true); err != nil {
					return err
				}
				defer setSecureDelete(ctx, tx, false) //nolint:errcheck // the transaction's outcome is what counts
				st, err := tx.PrepareContext(ctx, `DELETE FROM events WHERE id = ?`)
				if err != nil {
					return err
				}
				defer st.Close()
				for _, id := range ids {
					res, err := st.ExecContext(ctx, id[:])
					if err != nil {
						return err
					}
					k, _ := res.RowsAffected()
					n += k
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += n
			if len(ids) < deleteChunk {
				break
			}
		}
	}
	return total, nil
}

// matchingIDs returns the ids of up to f.Limit events matching f.
func (s *Store) matchingIDs(ctx context.Context, f *nostr.Filter) ([][32]byte, error) {
	if f.Search != "" {
		return s.searchIDs(ctx, f)
	}
	q, ok, err := buildQuery(f, time.Now().Unix())
	if err != nil || !ok {
		return nil, err
	}
	var ids [][32]byte
	err = s.scanQuery(ctx, q, func(id, _ []byte) error {
		var k [32]byte
		copy(k[:], id)
		ids = append(ids, k)
		return nil
	})
	return ids, err
}

// searchIDs is matchingIDs for a search filter. buildQuery serves no
// search (a search is ranked, not one statement), so a search goes
// through Query, as a REQ does: deleting or scanning by a search acts on
// exactly what a REQ for it finds.
func (s *Store) searchIDs(ctx context.Context, f *nostr.Filter) ([][32]byte, error) {
	var ids [][32]byte
	_, err := s.Query(ctx, []nostr.Filter{*f}, func(raw []byte) error {
		_, id, err := keyFromJSON(raw)
		ids = append(ids, id)
		return err
	})
	return ids, err
}

// Scan streams the events matching any filter to fn; see storage.Eraser.
// A search filter is served by Query (see searchIDs), the others by one
// statement each.
func (s *Store) Scan(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) error {
	seen := newIDSet(len(filters))
	now := time.Now().Unix()
	for i := range filters {
		if filters[i].Search != "" {
			_, err := s.Query(ctx, filters[i:i+1], func(raw []byte) error {
				_, id, err := keyFromJSON(raw)
				if err != nil || !seen.first(id) {
					return err
				}
				return fn(raw)
			})
			if err != nil {
				return err
			}
			continue
		}
		q, ok, err := buildQuery(&filters[i], now)
		if err != nil {
			return fmt.Errorf("scan filter %d: %w", i, err)
		}
		if !ok {
			continue
		}
		err = s.scanQuery(ctx, q, func(id, raw []byte) error {
			var k [32]byte
			copy(k[:], id)
			if !seen.first(k) {
				return nil
			}
			return fn(raw)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scanQuery runs one built query in a read transaction and calls fn for
// each row while it is read. fn's slices are valid only during the call.
func (s *Store) scanQuery(ctx context.Context, q builtQuery, fn func(id, raw []byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("scan: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, q.sql, q.args...)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer rows.Close()
	var (
		created int64
		id, raw sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&created, &id, &raw); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if err := fn(id, raw); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

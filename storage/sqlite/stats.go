package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/wisp-relay/wisp/storage"
)

// KindCount is how many events of one kind are stored.
type KindCount struct {
	Kind   int
	Events int64
}

// DBStats describes a database for operators (wisp stats).
type DBStats struct {
	SchemaVersion int   // PRAGMA user_version
	KnownVersion  int   // the newest schema this build knows
	DBBytes       int64 // the database file
	WALBytes      int64 // its write-ahead log (0 when there is none)
	Events        int64 // stored events, expired ones not yet purged included
	Expired       int64 // expired events waiting for the sweep
	ByKind        []KindCount
	Oldest        time.Time // created_at of the oldest event (zero without events)
	Newest        time.Time // created_at of the newest event
	SearchKinds   []int     // kinds indexed for search
}

// ReadStats reads the figures of the database at path through a read-only
// connection of its own, so it works while the relay runs. It does not
// migrate: a database from an older wisp is described as it is.
func ReadStats(ctx context.Context, path string) (DBStats, error) {
	st := DBStats{KnownVersion: len(migrations())}
	var err error
	if st.DBBytes, err = fileSize(path); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	if st.WALBytes, err = fileSize(path + "-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("stats: %w", err)
	}
	db, err := openReadOnly(ctx, path)
	if err != nil {
		return st, err
	}
	defer db.Close()
	// One read transaction, so the figures agree with each other.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&st.SchemaVersion); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	if st.SchemaVersion == 0 {
		return st, errors.New("stats: not a wisp database (schema version 0)")
	}
	rows, err := tx.QueryContext(ctx, "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
	if err != nil {
		return st, fmt.Errorf("stats: count by kind: %w", err)
	}
	for rows.Next() {
		var kc KindCount
		if err := rows.Scan(&kc.Kind, &kc.Events); err != nil {
			rows.Close()
			return st, fmt.Errorf("stats: count by kind: %w", err)
		}
		st.ByKind = append(st.ByKind, kc)
		st.Events += kc.Events
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("stats: count by kind: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE expiration IS NOT NULL AND expiration <= ?",
		time.Now().Unix()).Scan(&st.Expired); err != nil {
		return st, fmt.Errorf("stats: count expired: %w", err)
	}
	var oldest, newest sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT min(created_at), max(created_at) FROM events").Scan(&oldest, &newest); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	if oldest.Valid {
		st.Oldest, st.Newest = time.Unix(oldest.Int64, 0).UTC(), time.Unix(newest.Int64, 0).UTC()
	}
	var hasSearch bool
	if err := tx.QueryRowContext(ctx, "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'search_kinds'").Scan(&hasSearch); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	if hasSearch {
		rows, err := tx.QueryContext(ctx, "SELECT kind FROM search_kinds ORDER BY kind")
		if err != nil {
			return st, fmt.Errorf("stats: search kinds: %w", err)
		}
		for rows.Next() {
			var k int
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return st, fmt.Errorf("stats: search kinds: %w", err)
			}
			st.SearchKinds = append(st.SearchKinds, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, fmt.Errorf("stats: search kinds: %w", err)
		}
	}
	return st, nil
}

// FileSizes returns the size of the database file and of its WAL, for
// metrics; a missing WAL counts 0.
func (s *Store) FileSizes() (db, wal int64, err error) {
	if db, err = fileSize(s.file); err != nil {
		return 0, 0, err
	}
	if wal, err = fileSize(s.file + "-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return db, 0, err
	}
	return db, wal, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// KindCounts returns how many events of each kind are stored, the most
// numerous first, at most limit kinds: one pass over the kind index, on a
// read connection (the operator's dashboard asks, while someone watches,
// waiting 100 times as long as the count took).
func (s *Store) KindCounts(ctx context.Context, limit int) ([]KindCount, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC, kind LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("count by kind: %w", err)
	}
	defer rows.Close()
	var out []KindCount
	for rows.Next() {
		var kc KindCount
		if err := rows.Scan(&kc.Kind, &kc.Events); err != nil {
			return nil, fmt.Errorf("count by kind: %w", err)
		}
		out = append(out, kc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count by kind: %w", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// KindCount is how many events of one kind are stored.
type KindCount struct {
	Kind   int
	Events int64
}

// DBStats describes a database for operators (wisp stats).
type DBStats struct {
	SchemaVersion int   // wisp_schema.version
	KnownVersion  int   // the newest schema this build knows
	DBBytes       int64 // pg_database_size: tables, indexes and their dead rows
	Events        int64 // stored events, expired ones not yet purged included
	Expired       int64 // expired events waiting for the sweep
	ByKind        []KindCount
	Oldest        time.Time // created_at of the oldest event (zero without events)
	Newest        time.Time // created_at of the newest event
	SearchKinds   []int     // kinds indexed for search
}

// ReadStats reads the figures of the database at url through a connection
// of its own, in one read-only snapshot, so it works while relays run. It
// does not migrate: a database from an older wisp is described as it is.
// Counting reads every event, so it takes a while on a large database.
func ReadStats(ctx context.Context, url string) (DBStats, error) {
	st := DBStats{KnownVersion: len(migrations())}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer conn.Close(context.Background())
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if st.SchemaVersion, err = schemaVersion(ctx, tx); err != nil {
			return err
		}
		if st.SchemaVersion == 0 {
			return errors.New("not a wisp database (no schema version)")
		}
		if err := tx.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&st.DBBytes); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
		if err != nil {
			return fmt.Errorf("count by kind: %w", err)
		}
		var kc KindCount
		if _, err := pgx.ForEachRow(rows, []any{&kc.Kind, &kc.Events}, func() error {
			st.ByKind = append(st.ByKind, kc)
			st.Events += kc.Events
			return nil
		}); err != nil {
			return fmt.Errorf("count by kind: %w", err)
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE expiration IS NOT NULL AND expiration <= $1",
			time.Now().Unix()).Scan(&st.Expired); err != nil {
			return fmt.Errorf("count expired: %w", err)
		}
		var oldest, newest *int64
		if err := tx.QueryRow(ctx, "SELECT min(created_at), max(created_at) FROM events").Scan(&oldest, &newest); err != nil {
			return err
		}
		if oldest != nil {
			st.Oldest, st.Newest = time.Unix(*oldest, 0).UTC(), time.Unix(*newest, 0).UTC()
		}
		st.SearchKinds, err = readSearchKinds(ctx, tx)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

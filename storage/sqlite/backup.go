package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrExists: the backup's destination is already there; a backup never
// overwrites a file.
var ErrExists = errors.New("file already exists")

// openReadOnly opens the database at path through one read-only connection
// of its own. It works while another process (a running relay) writes the
// database: WAL readers and the writer do not block each other.
func openReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db, err := sql.Open("sqlite3", "file:"+escapePath(path)+fmt.Sprintf("?mode=ro&_busy_timeout=%d", busyTimeoutMS))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// BackupInfo describes a backup that was written.
type BackupInfo struct {
	Bytes  int64         // size of the copy
	Events int64         // events in the copy
	Took   time.Duration // wall time
}

// Backup writes a consistent copy of the database at path to dest while
// the relay keeps running, from this or another process. VACUUM INTO reads
// the database in one read transaction, so the copy holds exactly what was
// committed when it began (every event answered OK true by then) and
// nothing half-written; it is also compacted. The copy is written beside
// dest, synced, checked to open, and only then renamed to dest, so dest is
// either complete or absent. dest must not exist.
func Backup(ctx context.Context, path, dest string) (BackupInfo, error) {
	start := time.Now()
	if _, err := os.Lstat(dest); err == nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", dest, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", dest, err)
	}
	src, err := openReadOnly(ctx, path)
	if err != nil {
		return BackupInfo{}, err
	}
	defer src.Close()

	// VACUUM INTO wants a new or empty file: a fresh empty temporary file
	// in dest's directory, so that the final rename stays on one file system.
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.tmp")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmpName)
		}
	}()
	if _, err := src.ExecContext(ctx, "VACUUM INTO ?", tmpName); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: vacuum into %s: %w", tmpName, err)
	}

	events, err := checkCopy(ctx, tmpName)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := syncFile(tmpName); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	// Refuse to replace a file that appeared meanwhile: link, then unlink.
	if err := os.Link(tmpName, dest); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return BackupInfo{}, fmt.Errorf("backup to %s: %w", dest, ErrExists)
		}
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	ok = true
	os.Remove(tmpName)
	if err := syncFile(filepath.Dir(dest)); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	st, err := os.Stat(dest)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	return BackupInfo{Bytes: st.Size(), Events: events, Took: time.Since(start)}, nil
}

// checkCopy opens a fresh copy and counts its events.
func checkCopy(ctx context.Context, path string) (int64, error) {
	db, err := openReadOnly(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("backup: check copy: %w", err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check); err != nil {
		return 0, fmt.Errorf("backup: check copy: %w", err)
	}
	if check != "ok" {
		return 0, fmt.Errorf("backup: check copy: %s", check)
	}
	n, err := countEvents(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("backup: check copy: %w", err)
	}
	return n, nil
}

// countEvents reads the running count, or counts on a database from before
// it existed.
func countEvents(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, "SELECT n FROM event_count").Scan(&n)
	if err != nil {
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n)
	}
	return n, err
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

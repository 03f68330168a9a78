package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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
	// Stale are the temporary files of killed backups that this one
	// removed from the destination's directory.
	Stale []string
}

// backupTempPattern names the temporary copies of backups, so that a
// later backup can tell them apart from anything else in the directory.
const backupTempPattern = ".wisp-backup-*.tmp"

// Backup writes a consistent copy of the database at path to dest while
// the relay keeps running, from this or another process. VACUUM INTO reads
// the database in one read transaction, so the copy holds exactly what was
// committed when it began (every event answered OK true by then) and
// nothing half-written; it is also compacted. The copy is written beside
// dest, synced, checked to open, and only then renamed to dest, so dest is
// either complete or absent. dest must not exist.
//
// The temporary copy (.wisp-backup-*.tmp) is removed when the backup fails
// or ctx ends; a backup killed outright leaves it, and the next backup to
// the same directory removes it: each backup holds a lock on its own
// temporary file, which the kernel drops when the process dies, so a file
// that nobody has locked is a dead backup's, while one locked is a running
// backup's and is left alone.
func Backup(ctx context.Context, path, dest string) (BackupInfo, error) {
	return BackupProgress(ctx, path, dest, nil)
}

// BackupProgress is Backup that calls progress, if not nil, now and then
// while the copy is written, with the bytes written so far and about how
// many it will have (the pages in use in the database).
func BackupProgress(ctx context.Context, path, dest string, progress func(written, total int64)) (BackupInfo, error) {
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

	dir := filepath.Dir(dest)
	stale := removeStaleTemps(dir)
	fail := func(err error) (BackupInfo, error) { return BackupInfo{Stale: stale}, err }

	// VACUUM INTO wants a new or empty file: a fresh empty temporary file
	// in dest's directory, so that the final rename stays on one file system.
	tmp, err := createLockedTemp(dir)
	if err != nil {
		return fail(fmt.Errorf("backup: %w", err))
	}
	defer tmp.Close() // drops the lock, after the removal below
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			removeTemp(tmpName)
		}
	}()
	stop := func() {}
	if progress != nil {
		stop = watchCopy(ctx, src, tmpName, progress)
	}
	_, err = src.ExecContext(ctx, "VACUUM INTO ?", tmpName)
	stop()
	if err != nil {
		return fail(fmt.Errorf("backup: vacuum into %s: %w", tmpName, err))
	}

	events, err := checkCopy(ctx, tmpName)
	if err != nil {
		return fail(err)
	}
	if err := syncFile(tmpName); err != nil {
		return fail(fmt.Errorf("backup: %w", err))
	}
	// Refuse to replace a file that appeared meanwhile: link, then unlink.
	if err := os.Link(tmpName, dest); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(fmt.Errorf("backup to %s: %w", dest, ErrExists))
		}
		return fail(fmt.Errorf("backup: %w", err))
	}
	ok = true
	os.Remove(tmpName)
	if err := syncFile(filepath.Dir(dest)); err != nil {
		return fail(fmt.Errorf("backup: %w", err))
	}
	st, err := os.Stat(dest)
	if err != nil {
		return fail(fmt.Errorf("backup: %w", err))
	}
	return BackupInfo{Bytes: st.Size(), Events: events, Took: time.Since(start), Stale: stale}, nil
}

// watchCopy reports the size of the copy being written every quarter of
// a second, until stop.
func watchCopy(ctx context.Context, src *sql.DB, tmpName string, progress func(written, total int64)) (stop func()) {
	var pages, free, size int64
	// Read before VACUUM INTO takes the one connection.
	_ = src.QueryRowContext(ctx, "SELECT page_count, freelist_count, page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size").Scan(&pages, &free, &size)
	total := (pages - free) * size
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if st, err := os.Stat(tmpName); err == nil {
					progress(st.Size(), total)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		if st, err := os.Stat(tmpName); err == nil {
			progress(st.Size(), total) // the whole copy, once written
		}
	}
}

// createLockedTemp creates an empty temporary file in dir and locks it (see
// Backup). Another backup looking for stale files may hold the lock for a
// moment, or (with a skewed file system clock) even remove the file: then
// a new one is made. Where files cannot be locked the file is used
// unlocked, and no backup removes it either.
func createLockedTemp(dir string) (*os.File, error) {
	for range 10 {
		f, err := os.CreateTemp(dir, backupTempPattern)
		if err != nil {
			return nil, err
		}
		locked, err := tryLock(f)
		if err != nil {
			return f, nil
		}
		if locked {
			mine, err1 := f.Stat()
			named, err2 := os.Stat(f.Name())
			if err1 == nil && err2 == nil && os.SameFile(mine, named) {
				return f, nil
			}
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil, errors.New("cannot lock a temporary file: other backups keep holding them")
}

// freshTempAge is how long a new temporary file may stay empty and
// unlocked: the moment between its creation and its lock, which VACUUM
// INTO does not start before.
const freshTempAge = time.Minute

// removeStaleTemps removes the temporary files of killed backups in dir
// and returns their names: those nobody holds a lock on, unless empty and
// new (another backup may be about to lock it). A file it cannot open or
// lock is left, since it may be in use.
func removeStaleTemps(dir string) []string {
	names, err := filepath.Glob(filepath.Join(dir, backupTempPattern))
	if err != nil {
		return nil
	}
	var removed []string
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		if locked, err := tryLock(f); err == nil && locked {
			if st, err := f.Stat(); err == nil && (st.Size() > 0 || time.Since(st.ModTime()) > freshTempAge) {
				removeTemp(name)
				removed = append(removed, name)
			}
		}
		f.Close()
	}
	return removed
}

// removeTemp removes a temporary copy with the journal SQLite keeps
// beside it while VACUUM INTO writes.
func removeTemp(name string) {
	os.Remove(name + "-journal")
	os.Remove(name)
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

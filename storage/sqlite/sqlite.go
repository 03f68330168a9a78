// Package sqlite is the SQLite event store: one writer connection for the
// relay's batching writer and a pool of read-only connections for queries,
// both on the same WAL database file.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// Errors of this engine.
var (
	// ErrNotWAL: the database refused WAL mode (an in-memory database, or a
	// file system without shared memory); readers would then block the writer.
	ErrNotWAL = errors.New("journal mode is not wal")
	// ErrCheckpointBusy: a checkpoint could not finish because readers still
	// use the WAL; the next one will catch up.
	ErrCheckpointBusy = errors.New("checkpoint blocked by readers")
	// ErrBadEvent: an item Save cannot store (no event, id or pubkey not 64
	// lowercase hex, empty raw, ephemeral kind). The relay validates events
	// before they reach the store, so this means a bug upstream.
	ErrBadEvent = errors.New("event cannot be stored")
)

// busyTimeoutMS is how long a connection waits on a lock before SQLITE_BUSY.
// Only the checkpoint and a second process can hold one for long.
const busyTimeoutMS = 5000

var _ storage.Store = (*Store)(nil)

// driverName is mattn/go-sqlite3 with wisp's SQL functions registered on
// every connection (see searchMatch).
const driverName = "sqlite3_wisp"

func init() {
	hook := func(c *sqlite3.SQLiteConn) error {
		// pure (SQLITE_DETERMINISTIC): the result depends on the arguments
		// alone, which lets the planner use it wherever an expression may go.
		if err := c.RegisterFunc(searchMatchFunc, searchMatch, true); err != nil {
			return fmt.Errorf("register %s: %w", searchMatchFunc, err)
		}
		return nil
	}
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: hook})
	sql.Register(writerDriverName, writerDriver{&sqlite3.SQLiteDriver{ConnectHook: hook}})
}

// Options tune the store.
type Options struct {
	// ReadConns is the size of the read-only connection pool (0 means 4).
	ReadConns int
	// SearchKinds are the kinds whose content is indexed for NIP-50 search.
	// nil keeps the database's setting (none in a new database); a non-nil
	// list, even empty, replaces it, indexing or dropping stored events.
	SearchKinds []int
	// CountCap is how many events Count counts before it stops and answers
	// approximately (0 means DefaultCountCap).
	CountCap int
	// FullSync makes every commit wait until the WAL is on disk (PRAGMA
	// synchronous=FULL) so that a power loss or an OS crash loses nothing
	// committed. The default, NORMAL, syncs only at checkpoints: a commit
	// survives the process crashing but not the machine, which may lose
	// the last commits since a checkpoint, already answered OK true.
	FullSync bool
	// Upkeep is the background work the store does until Close (see
	// upkeep.go): expiry and retention; CheckpointInterval is how often the
	// WAL is truncated and the planner's statistics refreshed (0: never).
	Upkeep             storage.Upkeep
	CheckpointInterval time.Duration
	// manualUpkeep turns the background work off, Close's included: for
	// tests that drive IndexSearch and checkpoints themselves.
	manualUpkeep bool
	// PageBytes bounds the events one Query reads from the database before
	// it hands them on and reads more (0 means DefaultPageBytes); see
	// pages.go.
	PageBytes int
	// probe tunes the probe of filters of many authors (probe.go); only
	// tests set it.
	probe probeTuning
}

// Store is an event store in one SQLite database file.
type Store struct {
	// mu makes Close wait for calls in flight; methods hold it for reading.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once

	file string
	w    *sql.DB // the one writer connection, BEGIN IMMEDIATE
	r    *sql.DB // read-only pool
	ck   *sql.DB // one connection for passive checkpoints, off the writer

	vanish vanishState // NIP-62 requests, see vanish.go

	searchKinds []int // indexed for search, see search.go
	// Save batches big enough to mean load, see LoadedBatches.
	loadedBatches atomic.Int64
	countCap      int // see count.go
	pageBytes     int // see pages.go
	probe         probeTuning
	upkeep        upkeep
}

// Open opens (creating if needed) the database at path, migrates it to the
// current schema and prepares the writer's statements.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open %q: need a plain file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	s := &Store{file: path}
	ok := false
	defer func() {
		if !ok {
			s.closeDBs()
		}
	}()

	// _mutex=no: database/sql never shares a connection between goroutines.
	// The writer's larger page cache keeps the hot index pages of ingest in
	// memory (the size is in KiB when negative).
	uri := "file:" + escapePath(path)
	syncName, syncLevel := synchronous(opts.FullSync)
	var err error
	s.w, err = sql.Open(writerDriverName, uri+fmt.Sprintf(
		"?_journal_mode=WAL&_synchronous=%s&_foreign_keys=on&_busy_timeout=%d&_txlock=immediate&_mutex=no&_cache_size=-65536",
		syncName, busyTimeoutMS))
	if err != nil {
		return nil, fmt.Errorf("open writer: %w", err)
	}
	// One connection, kept forever: SQLite allows one writer anyway, and the
	// prepared statements live on it.
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	if err := setNewPageSize(ctx, s.w); err != nil {
		return nil, err
	}
	if err := checkPragmas(ctx, s.w, syncLevel); err != nil {
		return nil, err
	}
	// SQLite runs the automatic checkpoint inside whichever commit crosses
	// the threshold, that is on the writer. CheckpointPassive, run often
	// from another connection, does that work off the writer's path; the
	// raised threshold stays as the bound when nobody runs it.
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", autoCheckpointPages)); err != nil {
		return nil, fmt.Errorf("set wal_autocheckpoint: %w", err)
	}
	if err := migrate(ctx, s.w); err != nil {
		return nil, err
	}
	if err := s.vanish.load(ctx, s.w); err != nil {
		return nil, err
	}
	if s.searchKinds, err = configureSearch(ctx, s.w, opts.SearchKinds); err != nil {
		return nil, err
	}
	s.countCap = opts.CountCap
	if s.countCap <= 0 {
		s.countCap = DefaultCountCap
	}
	s.probe = opts.probe.withDefaults()
	s.pageBytes = opts.PageBytes
	if s.pageBytes <= 0 {
		s.pageBytes = DefaultPageBytes
	}

	// The readers are opened after the writer has put the file in WAL mode:
	// a read-only connection cannot change the journal mode itself. Query
	// SQL depends only on a filter's shape, so a statement cache pays off.
	s.r, err = sql.Open(driverName, uri+fmt.Sprintf(
		"?mode=ro&_busy_timeout=%d&_mutex=no&_cache_size=-16384&_stmt_cache_size=64", busyTimeoutMS))
	if err != nil {
		return nil, fmt.Errorf("open readers: %w", err)
	}
	s.r.SetMaxOpenConns(opts.ReadConns)
	s.r.SetMaxIdleConns(opts.ReadConns)
	var mode string
	if err := s.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("check reader: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("reader journal mode %q: %w", mode, ErrNotWAL)
	}

	s.ck, err = sql.Open(driverName, uri+fmt.Sprintf("?_busy_timeout=%d&_mutex=no&_cache_size=-2048", busyTimeoutMS))
	if err != nil {
		return nil, fmt.Errorf("open checkpointer: %w", err)
	}
	s.ck.SetMaxOpenConns(1)
	s.ck.SetMaxIdleConns(1)

	if err := s.prepareWriter(ctx); err != nil {
		return nil, err
	}
	ok = true
	if !opts.manualUpkeep {
		s.startUpkeep(opts)
	}
	return s, nil
}

// newPageSize is the page size of a database Open creates. A commit writes
// every page its batch dirtied to the WAL, and the indexes in random order
// (id, pubkey, tags' values) dirty about a page per event each: 2 KiB
// pages cut the writer's CPU per event by 10-20 % against 4 KiB
// (BENCHMARKS.md, "Writer on the driver connection"). An existing
// database keeps its page size.
const newPageSize = 2048

// setNewPageSize gives an empty database newPageSize. The DSN has put it
// in WAL mode already, where the page size is fixed, so it goes back to a
// rollback journal for the VACUUM that applies the size, then to WAL.
func setNewPageSize(ctx context.Context, db *sql.DB) error {
	var objects int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&objects); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if objects > 0 {
		return nil
	}
	for _, q := range []string{
		"PRAGMA journal_mode = DELETE",
		fmt.Sprintf("PRAGMA page_size = %d", newPageSize),
		"VACUUM",
		"PRAGMA journal_mode = WAL",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("set page size: %s: %w", q, err)
		}
	}
	return nil
}

// synchronous is the writer's PRAGMA synchronous (see Options.FullSync):
// its name and the number the pragma reads back.
func synchronous(full bool) (name string, level int) {
	if full {
		return "FULL", 2
	}
	return "NORMAL", 1
}

// checkPragmas verifies that the DSN settings really took effect: SQLite
// silently keeps the old journal mode when it cannot switch.
func checkPragmas(ctx context.Context, db *sql.DB, syncLevel int) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode %q: %w", mode, ErrNotWAL)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are off")
	}
	var level int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if level != syncLevel {
		return fmt.Errorf("synchronous is %d, want %d", level, syncLevel)
	}
	return nil
}

// escapePath makes path safe inside a file: URI, where '?' and '#' end the
// path and '%' starts an escape.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Close stops the store's background work, completes the search index and
// checkpoints the WAL (each within its time; see upkeep.go), waits for
// calls in flight, then closes every connection. Calls after Close return
// storage.ErrClosed; a second Close does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(s.stopUpkeep) // needs the store open: before the lock below
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Refresh planner statistics for the next start (cheap when nothing
	// changed); failing to do so is no reason to fail Close.
	_, _ = s.w.Exec("PRAGMA optimize")
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.r != nil {
		if err := s.r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close readers: %w", err))
		}
	}
	if s.ck != nil {
		if err := s.ck.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close checkpointer: %w", err))
		}
	}
	if s.w != nil {
		if err := s.w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close writer: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Checkpoint copies the WAL into the database file and truncates it, so the
// WAL does not grow without bound. Run it from a background loop.
func (s *Store) Checkpoint(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	var busy, logFrames, done int
	err := s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint (%d of %d frames): %w", done, logFrames, ErrCheckpointBusy)
	}
	return nil
}

// autoCheckpointPages is the WAL size (pages) at which a commit checkpoints
// by itself; see CheckpointPassive.
const autoCheckpointPages = 8000

// CheckpointPassive copies what it can of the WAL into the database without
// waiting for readers or blocking the writer. Run every second or so, it
// keeps the WAL small and the checkpoint work off the writer's commits.
func (s *Store) CheckpointPassive(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	var busy, logFrames, done int
	err := s.ck.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &done)
	if err != nil {
		return fmt.Errorf("passive checkpoint: %w", err)
	}
	return nil
}

// Optimize lets SQLite refresh the statistics its query planner uses; cheap
// when nothing changed much. Run it from a background loop.
func (s *Store) Optimize(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	if _, err := s.w.ExecContext(ctx, "PRAGMA optimize"); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	return nil
}

// Has reports whether an event with this id is stored; an id that is not 64
// lowercase hex is never stored.
func (s *Store) Has(ctx context.Context, id string) (bool, error) {
	var key [32]byte
	if !evkey.DecodeHex32(id, &key) {
		return false, s.openErr()
	}
	var one [1]driver.Value
	found, err := s.lookup(ctx, "SELECT 1 FROM events WHERE id = ?", key[:], one[:])
	if err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	return found, nil
}

// StoredSig returns the signature stored with the event id. It reads it
// from the stored JSON (wisp keeps no column for it): one row read, a
// little more than Has, which only looks at the id index.
func (s *Store) StoredSig(ctx context.Context, id string) (string, bool, error) {
	var key [32]byte
	if !evkey.DecodeHex32(id, &key) {
		return "", false, s.openErr()
	}
	var sig [1]driver.Value
	found, err := s.lookup(ctx, "SELECT json_extract(raw, '$.sig') FROM events WHERE id = ?", key[:], sig[:])
	if err != nil {
		return "", false, fmt.Errorf("stored sig: %w", err)
	}
	if !found {
		return "", false, nil
	}
	str, _ := sig[0].(string) // NULL: a stored event without "sig" has none
	return str, true, nil
}

// openErr is storage.ErrClosed after Close, else nil.
func (s *Store) openErr() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	return nil
}

// lookup runs query, which reads one row at most by the id key, on a read
// connection's driver, leaving the row in dest. The duplicate check of
// every incoming event comes here: without database/sql's statement, rows
// and conversions it costs a quarter less (BENCHMARKS.md, "Writer on the
// driver connection"); the connection's statement cache keeps query
// prepared. One lookup by the primary key is too short to need
// interrupting, so ctx is only checked before it.
func (s *Store) lookup(ctx context.Context, query string, key []byte, dest []driver.Value) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, storage.ErrClosed
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()
	found := false
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("driver connection is a %T", dc)
		}
		rows, err := c.QueryContext(context.Background(), query, []driver.NamedValue{{Ordinal: 1, Value: key}})
		if err != nil {
			return err
		}
		err = rows.Next(dest)
		cerr := rows.Close()
		switch {
		case err == io.EOF:
			return cerr
		case err != nil:
			return err
		}
		found = true
		return cerr
	})
	return found, err
}

// expireChunk is how many expired events one DeleteExpired transaction
// removes, so that a large backlog does not hold the write lock for long.
const expireChunk = 1000

// DeleteExpired removes events whose expiration is at or before now, in
// chunks; Save batches can run between chunks.
func (s *Store) DeleteExpired(ctx context.Context, now int64) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	var total int64
	for {
		// Tag rows go with their event through ON DELETE CASCADE.
		res, err := s.w.ExecContext(ctx, `DELETE FROM events WHERE seq IN (
			SELECT seq FROM events WHERE expiration IS NOT NULL AND expiration <= ? LIMIT ?)`,
			now, expireChunk)
		if err != nil {
			return total, fmt.Errorf("delete expired: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("delete expired: %w", err)
		}
		total += n
		if n < expireChunk {
			return total, nil
		}
	}
}

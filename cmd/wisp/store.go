package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisp-relay/wisp/dashboard"
	"github.com/wisp-relay/wisp/internal/progress"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/postgres"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// eventStore is what the commands need of a store. Both engines are one:
// SQLite in WISP_DATA_DIR, or PostgreSQL at WISP_DATABASE_URL. The relay
// and its helpers take it as a storage.Store and find the optional
// interfaces by assertion; the engine's own methods (a storage.Watcher,
// SQLite's search indexer) stay reachable, since the wrappers below embed
// the engine's store.
type eventStore interface {
	storage.Store
	storage.Moderation
	storage.Eraser
	storage.SeqLister
	storage.Searcher
	storage.HLLCounter
	storage.IDLister
	storage.PrefixLookup

	// engine names the engine: sqlite or postgres (metrics' label).
	engine() string
	// where says where the database is, for logs: the file, or the URL
	// without its password.
	where() string
	// sizes are the database's bytes and its WAL's, for metrics and the
	// dashboard (PostgreSQL: pg_database_size, no WAL figure).
	sizes() (db, wal int64, err error)
	// kindCounts are the most numerous kinds, for the dashboard.
	kindCounts(ctx context.Context, limit int) ([]dashboard.KindCount, error)
	// finishLoad completes what a bulk load leaves to do (SQLite's search
	// index), showing its progress on stderr.
	finishLoad(ctx context.Context, stderr io.Writer) error
}

var (
	_ eventStore = (*sqliteStore)(nil)
	_ eventStore = (*pgStore)(nil)
)

// usesPostgres says whether the configuration selects PostgreSQL.
func (c Config) usesPostgres() bool { return c.DatabaseURL != "" }

// storeUse is what a store is opened for: the relay (its pools and
// retention) or a command (a few connections).
type storeUse int

const (
	forCommand storeUse = iota
	forServe
)

// openStore opens the configured database; the store logs its background
// work to log (nil: nowhere). For SQLite it prepares the data directory.
func openStore(ctx context.Context, c Config, use storeUse, log *slog.Logger) (eventStore, error) {
	var up storage.Upkeep
	up.Sweep, up.Logger = c.ExpirySweep, log
	if use == forServe {
		up.Retention, _ = parseRetention(c.Retention) // validated
	}
	if c.usesPostgres() {
		return openPostgres(ctx, c, use, up)
	}
	if err := prepareDataDir(c.DataDir); err != nil {
		return nil, err
	}
	opts := sqlite.Options{SearchKinds: c.searchKinds(), FullSync: c.fullSync(), Upkeep: up, ReadConns: 2}
	if use == forServe {
		opts.ReadConns, opts.CheckpointInterval = c.ReadConns, c.CheckpointInterval
	}
	s, err := sqlite.Open(ctx, c.dbPath(), opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", c.dbPath(), err)
	}
	return &sqliteStore{Store: s, path: c.dbPath()}, nil
}

// withStore runs fn over the configured database, which it opens with few
// connections (a command does one thing at a time) and closes after,
// whatever fn returns.
func withStore(ctx context.Context, environ []string, fn func(cfg Config, store eventStore) error) (err error) {
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, forCommand, nil)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close database: %w", cerr))
		}
	}()
	return fn(cfg, store)
}

// sqliteStore is the SQLite engine, the embedded default.
type sqliteStore struct {
	*sqlite.Store
	path string
}

func (s *sqliteStore) engine() string { return "sqlite" }
func (s *sqliteStore) where() string  { return s.path }

func (s *sqliteStore) sizes() (db, wal int64, err error) { return s.FileSizes() }

func (s *sqliteStore) kindCounts(ctx context.Context, limit int) ([]dashboard.KindCount, error) {
	kcs, err := s.KindCounts(ctx, limit)
	out := make([]dashboard.KindCount, len(kcs))
	for i, kc := range kcs {
		out[i] = dashboard.KindCount{Kind: kc.Kind, Events: kc.Events}
	}
	return out, err
}

// finishLoad indexes for search what the store has not indexed yet (a
// bulk load outruns the indexer), showing how far it is; Close would do
// it too, silently.
func (s *sqliteStore) finishLoad(ctx context.Context, stderr io.Writer) error {
	lag, err := s.SearchLag(ctx)
	if err != nil || lag <= 0 {
		return err
	}
	prog := progress.New(stderr)
	defer prog.Stop()
	var done int64
	for {
		el := prog.Elapsed()
		prog.Update("indexing for search: %d of %d events, %s (%.0f/s)", done, lag, progress.Of(done, lag, el), progress.Rate(done, el))
		n, err := s.IndexSearch(ctx, 2000)
		if err != nil {
			return fmt.Errorf("index for search: %w", err)
		}
		if done += int64(n); n < 2000 {
			return nil
		}
	}
}

// pgStore is the PostgreSQL engine, which several wisp processes share.
// aux is one connection of its own for the operator's figures, so that a
// dashboard or a scrape never waits behind the relay's queries.
type pgStore struct {
	*postgres.Store
	url string
	aux *pgxpool.Pool
}

// commandConns is the pool of a command (export, import, sync, ...) on
// PostgreSQL: its writer, a query, and room for the relay's checks.
const commandConns = 4

func openPostgres(ctx context.Context, c Config, use storeUse, up storage.Upkeep) (*pgStore, error) {
	opts := postgres.Options{SearchKinds: c.searchKinds(), Upkeep: up, MaxConns: commandConns, ReadURL: c.DatabaseReadURL}
	if use == forServe {
		opts.MaxConns = c.DatabaseMaxConns
	}
	shown := redactURL(c.DatabaseURL)
	s, err := postgres.Open(ctx, c.DatabaseURL, opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", shown, err)
	}
	acfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil { // postgres.Open parsed it
		s.Close()
		return nil, fmt.Errorf("open database %s: %w", shown, err)
	}
	acfg.MaxConns, acfg.MinConns = 1, 0
	acfg.ConnConfig.RuntimeParams["application_name"] = "wisp figures"
	aux, err := pgxpool.NewWithConfig(ctx, acfg) // connects when first used
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open database %s: %w", shown, err)
	}
	return &pgStore{Store: s, url: c.DatabaseURL, aux: aux}, nil
}

// Close closes the figures' connection, then the store.
func (s *pgStore) Close() error {
	s.aux.Close()
	return s.Store.Close()
}

func (s *pgStore) engine() string { return "postgres" }
func (s *pgStore) where() string  { return redactURL(s.url) }

// figuresTimeout bounds one read of the operator's figures.
const figuresTimeout = 5 * time.Second

func (s *pgStore) sizes() (db, wal int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), figuresTimeout)
	defer cancel()
	err = s.aux.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&db)
	return db, 0, err
}

func (s *pgStore) kindCounts(ctx context.Context, limit int) ([]dashboard.KindCount, error) {
	ctx, cancel := context.WithTimeout(ctx, figuresTimeout)
	defer cancel()
	rows, err := s.aux.Query(ctx, "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY count(*) DESC, kind LIMIT $1", limit)
	if err != nil {
		return nil, fmt.Errorf("count kinds: %w", err)
	}
	var out []dashboard.KindCount
	var kc dashboard.KindCount
	if _, err := pgx.ForEachRow(rows, []any{&kc.Kind, &kc.Events}, func() error {
		out = append(out, kc)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count kinds: %w", err)
	}
	return out, nil
}

// finishLoad: PostgreSQL indexes for search as it saves.
func (s *pgStore) finishLoad(context.Context, io.Writer) error { return nil }

// redactURL is a database URL fit for a log: without its password.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a database URL that does not parse)"
	}
	return u.Redacted()
}

// dbStats are the figures of wisp stats, from either engine.
type dbStats struct {
	where                       string
	schemaVersion, knownVersion int
	size                        string // what the database takes on disk
	events, expired             int64
	byKind                      []dashboard.KindCount // by kind, ascending
	oldest, newest              time.Time
	searchKinds                 []int
}

// readStats reads the figures of the configured database, without opening
// (and so migrating) it, while relays run on it.
func readStats(ctx context.Context, c Config) (dbStats, error) {
	if c.usesPostgres() {
		st, err := postgres.ReadStats(ctx, c.DatabaseURL)
		if err != nil {
			return dbStats{}, fmt.Errorf("database %s: %w", redactURL(c.DatabaseURL), err)
		}
		out := dbStats{where: redactURL(c.DatabaseURL), schemaVersion: st.SchemaVersion, knownVersion: st.KnownVersion,
			size:   byteSize(st.DBBytes) + " (pg_database_size)",
			events: st.Events, expired: st.Expired, oldest: st.Oldest, newest: st.Newest, searchKinds: st.SearchKinds}
		for _, kc := range st.ByKind {
			out.byKind = append(out.byKind, dashboard.KindCount{Kind: kc.Kind, Events: kc.Events})
		}
		return out, nil
	}
	st, err := sqlite.ReadStats(ctx, c.dbPath())
	if err != nil {
		return dbStats{}, err
	}
	out := dbStats{where: c.dbPath(), schemaVersion: st.SchemaVersion, knownVersion: st.KnownVersion,
		size:   fmt.Sprintf("%s database, %s write-ahead log", byteSize(st.DBBytes), byteSize(st.WALBytes)),
		events: st.Events, expired: st.Expired, oldest: st.Oldest, newest: st.Newest, searchKinds: st.SearchKinds}
	for _, kc := range st.ByKind {
		out.byKind = append(out.byKind, dashboard.KindCount{Kind: kc.Kind, Events: kc.Events})
	}
	slices.SortFunc(out.byKind, func(a, b dashboard.KindCount) int { return cmp.Compare(a.Kind, b.Kind) })
	return out, nil
}

// Package postgres is the PostgreSQL event store, through pgx's connection
// pool. Several wisp processes may use one database at once: every Save
// holds one transaction-level advisory lock, so that saves, their
// replaceable and deletion logic and their sequence numbers are serialised
// across processes, while queries, counts and moderation run concurrently.
// docs/postgres.md describes the design.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
	"github.com/wisp-relay/wisp/storage/internal/unicode61"
)

// ErrBadEvent: an item Save cannot store (no event, id or pubkey not 64
// lowercase hex, empty raw, ephemeral kind). The relay validates events
// before they reach the store, so this means a bug upstream.
var ErrBadEvent = errors.New("event cannot be stored")

var _ storage.Store = (*Store)(nil)

// DefaultCountCap is how many events Count counts before it answers
// approximately, unless Options.CountCap says otherwise.
const DefaultCountCap = 1_000_000

// Options tune the store.
type Options struct {
	// MaxConns is the size of the connection pool (0: pgxpool's default,
	// the larger of 4 and the number of CPUs). Save uses one connection.
	MaxConns int
	// SearchKinds are the kinds whose content is indexed for NIP-50 search.
	// nil keeps the database's setting (none in a new database); a non-nil
	// list, even empty, replaces it, indexing or dropping stored events.
	// Every process on one database should be given the same list.
	SearchKinds []int
	// CountCap is how many events Count counts before it stops and answers
	// approximately (0 means DefaultCountCap).
	CountCap int
	// Upkeep is the background work the store does until Close (see
	// upkeep.go): expiry, retention, the search index's pending list.
	Upkeep storage.Upkeep
	// manualUpkeep turns the background work off: for tests that drive
	// it themselves.
	manualUpkeep bool
	// PageBytes bounds the events one Query reads from the database before
	// it hands them on and reads more (0 means DefaultPageBytes); see
	// query.go.
	PageBytes int
	// Timeout bounds how long a call waits on a server that stopped
	// answering (0 means DefaultTimeout; negative: no bound): it is the
	// deadline of a Save and of each statement whose caller gave none,
	// the connect timeout unless the URL sets connect_timeout, and about
	// how long TCP keepalive and TCP_USER_TIMEOUT take to drop a
	// connection to a host that went away (see timeout.go).
	Timeout time.Duration
	// ReadURL, when set, is a read replica of the database: stored reads
	// (Query, Count, CountHLL, ListIDs, HasIDPrefix, Scan; so REQ, COUNT,
	// NIP-50 search and NIP-77) go there, in a pool of their own of
	// MaxConns connections. Saves, moderation, the follower's reads
	// (EventsAfter, LastSeq) and what must see the store's own writes
	// (Has, StoredSig, the ids a delete removes) stay on the primary.
	ReadURL string
}

// Store is an event store in one PostgreSQL database.
type Store struct {
	// mu makes Close wait for calls in flight; methods hold it for reading.
	mu     sync.RWMutex
	closed bool

	pool *pgxpool.Pool
	// read is the pool of stored reads: the replica's (Options.ReadURL),
	// or pool.
	read    *pgxpool.Pool
	timeout time.Duration // Options.Timeout; 0: none
	// listenCfg configures Watch's own connection (not the pool's).
	listenCfg *pgx.ConnConfig
	// own are the server process ids of the pool's connections: a notice
	// from one of them is this store's own (see receive).
	own *pidSet
	// watchers share one listening connection (watch.go).
	watchers watchers
	// closing is closed when Close begins: a Watch in progress returns.
	closing chan struct{}
	// searchKinds are the indexed kinds as last read from the database
	// (sorted); Save reads them again in each transaction.
	searchKinds atomic.Pointer[[]int]
	countCap    int
	pageBytes   int
	upkeep      upkeep
	closeOnce   sync.Once
}

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string), migrates it to the current schema under an advisory
// lock and applies opts.SearchKinds.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	return open(ctx, url, opts, migrations())
}

func open(ctx context.Context, url string, opts Options, steps []string) (*Store, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0
	}
	cfg, err := poolConfig(url, opts, timeout)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	own := &pidSet{pids: map[uint32]struct{}{}}
	own.track(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	s := &Store{pool: pool, read: pool, timeout: timeout, listenCfg: cfg.ConnConfig.Copy(), own: own, closing: make(chan struct{}),
		countCap: opts.CountCap, pageBytes: opts.PageBytes}
	if opts.ReadURL != "" {
		rcfg, err := poolConfig(opts.ReadURL, opts, timeout)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("open: read URL: %w", err)
		}
		if s.read, err = pgxpool.NewWithConfig(ctx, rcfg); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open: read URL: %w", err)
		}
	}
	if s.countCap <= 0 {
		s.countCap = DefaultCountCap
	}
	if s.pageBytes <= 0 {
		s.pageBytes = DefaultPageBytes
	}
	if err := s.setUp(ctx, opts, steps); err != nil {
		s.closePools()
		return nil, err
	}
	if !opts.manualUpkeep {
		s.startUpkeep(opts.Upkeep)
	}
	return s, nil
}

// poolConfig is the pool configuration of the database at url.
func poolConfig(url string, opts Options, timeout time.Duration) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	bound(cfg.ConnConfig, timeout)
	if opts.MaxConns > 0 {
		cfg.MaxConns = int32(opts.MaxConns)
	}
	params := cfg.ConnConfig.RuntimeParams
	if params["application_name"] == "" {
		params["application_name"] = "wisp"
	}
	// Query SQL depends on a filter's shape, not its values, so statements
	// are cached; a generic plan for a shape would not know whether a kind
	// or a tag value is common, and LIMIT queries hinge on that.
	params["plan_cache_mode"] = "force_custom_plan"
	// OK true means durable: a Save returns once its commit is flushed.
	// A database or role set to synchronous_commit=off would answer
	// before, so such a session is set back to on; stronger settings
	// (remote_write, remote_apply for read replicas) are kept.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'")
		return err
	}
	return cfg, nil
}

// closePools closes the store's pools.
func (s *Store) closePools() {
	if s.read != s.pool {
		s.read.Close()
	}
	s.pool.Close()
}

// setUp migrates and configures search on one connection, holding the
// migration lock throughout.
func (s *Store) setUp(ctx context.Context, opts Options, steps []string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer conn.Release()
	if err := migrate(ctx, conn, steps); err != nil {
		return err
	}
	kinds, err := configureSearch(ctx, conn, opts.SearchKinds)
	if err != nil {
		return err
	}
	s.searchKinds.Store(&kinds)
	return nil
}

// Close stops the store's background work, waits for calls in flight, then
// closes the pool. Calls after Close return storage.ErrClosed; a second
// Close does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.stopUpkeep() // needs the store open: before the lock below
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closePools()
	return nil
}

// enter holds s open for one call; the caller must call s.mu.RUnlock.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return storage.ErrClosed
	}
	return nil
}

// Has reports whether an event with this id is stored; an id that is not 64
// lowercase hex is never stored.
func (s *Store) Has(ctx context.Context, id string) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var key [32]byte
	if !evkey.DecodeHex32(id, &key) {
		return false, nil
	}
	var one int
	err := s.pool.QueryRow(ctx, "SELECT 1 FROM events WHERE id = $1", key[:]).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("has: %w", err)
	}
	return true, nil
}

// StoredSig returns the signature of the stored event with this id, read
// from its JSON; see storage.Store.
func (s *Store) StoredSig(ctx context.Context, id string) (string, bool, error) {
	if err := s.enter(); err != nil {
		return "", false, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var key [32]byte
	if !evkey.DecodeHex32(id, &key) {
		return "", false, nil
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT raw FROM events WHERE id = $1", key[:]).Scan(&raw)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("stored sig: %w", err)
	}
	var ev struct {
		Sig string `json:"sig"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return "", false, fmt.Errorf("stored sig: event %s: %w", id, err)
	}
	return ev.Sig, true, nil
}

// expireChunk is how many expired events one DeleteExpired statement
// removes, so that a large backlog is never one long transaction.
const expireChunk = 1000

// DeleteExpired removes events whose expiration is at or before now, in
// chunks of one statement (one transaction) each.
func (s *Store) DeleteExpired(ctx context.Context, now int64) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return s.deleteChunks(ctx, "delete expired", expireChunk, `DELETE FROM events WHERE seq IN (
		SELECT seq FROM events WHERE expiration IS NOT NULL AND expiration <= $1 LIMIT $2)`, now, expireChunk)
}

// deleteChunks runs a DELETE (whose last argument is the chunk size) until
// it removes fewer than chunk rows, and returns how many it removed. Tag
// rows go with their event (the events_delete_tags trigger).
func (s *Store) deleteChunks(ctx context.Context, op string, chunk int64, sql string, args ...any) (int64, error) {
	var total int64
	for {
		var n int64
		err := retry(ctx, func() error {
			ctx, cancel := s.bounded(ctx)
			defer cancel()
			tag, err := s.pool.Exec(ctx, sql, args...)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("%s: %w", op, err)
		}
		total += n
		if n < chunk {
			if total > 0 {
				s.notify(ctx, channelEvents)
			}
			return total, nil
		}
	}
}

// retry runs fn again when PostgreSQL gave up on its transaction for a
// reason that a new attempt does not have: a deadlock (two transactions
// deleting the same rows in different orders) or a serialization failure.
func retry(ctx context.Context, fn func() error) error {
	const attempts = 4
	for i := 1; ; i++ {
		err := fn()
		if err == nil || i == attempts || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i) * 10 * time.Millisecond):
		}
	}
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// SearchKinds returns the kinds whose content is indexed for search.
func (s *Store) SearchKinds() []int { return slices.Clone(*s.searchKinds.Load()) }

// SearchMatcher matches live events as a stored search finds them: an
// indexed kind, and the search's words in the content, split as the
// engine's word vectors are (unicode61.Words).
func (s *Store) SearchMatcher(search string) func(ev *nostr.Event) bool {
	terms := unicode61.Terms(search)
	return func(ev *nostr.Event) bool {
		return slices.Contains(*s.searchKinds.Load(), ev.Kind) && unicode61.Matches(terms, ev.Content)
	}
}
